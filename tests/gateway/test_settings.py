"""Settings: TOML file, environment, defaults, and unknown keys rejected."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.settings import SettingsError, load_settings


def test_example_config_loads(repo_root: Path) -> None:
    s = load_settings(repo_root / "fixtures" / "liandong.example.toml")
    assert s.server.port == 8000
    assert s.webrtc.ice_servers == []
    assert s.webrtc.host_addresses is None  # decided by where the server listens (gateway.webrtc.ice)
    assert s.acl.district_geojson == Path("fixtures/district.geojson")


def test_defaults_use_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIANDONG_DATA_DIR", str(tmp_path))
    s = load_settings()
    assert s.data_dir == tmp_path
    assert s.database_url.endswith(f"{tmp_path}/liandong.db")
    assert s.database_url.startswith("sqlite+aiosqlite:///")


def test_env_overrides_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[server]\nport = 9000\n[hub]\nidle_close_s = 3\n", encoding="utf-8")
    monkeypatch.setenv("LIANDONG_SERVER__PORT", "9100")
    s = load_settings(cfg)
    assert s.server.port == 9100
    assert s.hub.idle_close_s == 3


@pytest.mark.parametrize(
    "body",
    ["bogus = 1\n", "[server]\nprot = 80\n", "[nosuch]\na = 1\n"],
)
def test_unknown_keys_are_errors(tmp_path: Path, body: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(body, encoding="utf-8")
    with pytest.raises(ValidationError) as e:
        load_settings(cfg)
    assert "extra" in str(e.value).lower() or "forbidden" in str(e.value).lower()


def test_bad_values_name_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[server]\nport = 70000\n", encoding="utf-8")
    with pytest.raises(ValidationError) as e:
        load_settings(cfg)
    assert "server.port" in str(e.value) or "port" in str(e.value)


def test_unknown_env_key_is_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIANDONG_SERVER__PROT", "1")
    with pytest.raises(ValidationError):
        load_settings()


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "absent.toml")
