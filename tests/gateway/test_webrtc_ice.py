"""Which host candidates the gateway offers: from settings, else from where the server listens."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aioice.ice
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from gateway.settings import load_settings
from gateway.webrtc.ice import host_addresses_for, interface_addresses
from gateway.wiring import create_app


@pytest.mark.parametrize(
    ("configured", "bind", "expected"),
    [
        (None, "127.0.0.1", ["127.0.0.1"]),
        (None, "localhost", ["127.0.0.1"]),
        (None, "::1", ["127.0.0.1"]),
        (None, "127.0.0.53", ["127.0.0.1"]),
        (None, "0.0.0.0", []),
        (None, "::", []),
        (None, "198.18.0.1", []),
        (None, "gateway.example", []),
        (["10.0.0.11"], "0.0.0.0", ["10.0.0.11"]),
        ([], "127.0.0.1", []),
    ],
)
def test_host_addresses_for(configured: list[str] | None, bind: str, expected: list[str]) -> None:
    assert host_addresses_for(configured, bind) == expected


def test_beyond_loopback_offers_interface_addresses(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Listening on 0.0.0.0 with no host_addresses: every interface address, logged (it once offered
    127.0.0.1 only, which libnice-based players and players on other machines cannot reach)."""
    try:
        with caplog.at_level(logging.INFO, logger="gateway.webrtc.whep"):
            app = create_app(load_settings(None, data_dir=tmp_path / "d", server={"host": "0.0.0.0"}))
        assert app.state.ld.whep.host_addresses == []
        offered = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)
        assert offered == interface_addresses()
        assert "127.0.0.1" not in offered
        logged = [r.getMessage() for r in caplog.records if "host candidates" in r.getMessage()]
        assert logged and "every interface address" in logged[0] and "listening on 0.0.0.0" in logged[0]
        assert all(a in logged[0] for a in offered)
    finally:
        create_app(load_settings(None, data_dir=tmp_path / "d2"))  # back to the loopback default
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]


def test_loopback_bind_keeps_loopback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.webrtc.whep"):
        app = create_app(load_settings(None, data_dir=tmp_path / "d"))
    assert app.state.ld.whep.host_addresses == ["127.0.0.1"]
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]
    assert any("WebRTC host candidates: 127.0.0.1 (listening on 127.0.0.1)" in r.getMessage() for r in caplog.records)


def test_host_addresses_must_be_addresses(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as e:
        load_settings(None, data_dir=tmp_path, webrtc={"host_addresses": ["gateway.example"]})
    assert "host_addresses" in str(e.value) and "'gateway.example' is not an IP address" in str(e.value)


def test_serve_host_option_reaches_the_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve --host 0.0.0.0`` is where the server listens, so the app offers interface addresses
    (the option once went to uvicorn only and the app still offered 127.0.0.1)."""
    import uvicorn

    import gateway.logs
    from gateway.cli import app as cli

    ran: dict[str, Any] = {}

    def fake_run(app: Any, **kw: Any) -> None:
        ran.update(kw, addresses=app.state.ld.whep.host_addresses)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.setattr(gateway.logs, "configure_logging", lambda *a: None)  # keep pytest's log capture
    monkeypatch.setenv("LIANDONG_DATA_DIR", str(tmp_path))
    try:
        result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "8123", "--insecure"])
        assert result.exit_code == 0, result.output
        assert ran["host"] == "0.0.0.0" and ran["port"] == 8123 and ran["addresses"] == []
    finally:
        create_app(load_settings(None, data_dir=tmp_path / "d2"))
