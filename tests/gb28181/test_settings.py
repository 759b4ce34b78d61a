"""The ``gb28181`` settings section: env names, bounds, unknown keys, the secret kept secret."""

from __future__ import annotations

import pytest

from gateway.settings import load_settings


def test_env_names_and_a_secret_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIANDONG_GB28181__ENABLED", "true")
    monkeypatch.setenv("LIANDONG_GB28181__PASSWORD", "s3cret")
    monkeypatch.setenv("LIANDONG_GB28181__MEDIA_PORTS", "[31000, 31010]")
    s = load_settings(None).gb28181
    assert s.enabled and s.media_ports == (31000, 31010)
    assert s.password.get_secret_value() == "s3cret" and "s3cret" not in repr(s)


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"platform_id": "123"}, "platform_id"),
        ({"media_ports": [40000, 30000]}, "media_ports"),
        ({"device_passwords": {"not-an-id": "x"}}, "device_passwords"),
        ({"bogus": 1}, "bogus"),
        ({"media_transport": "sctp"}, "media_transport"),
    ],
)
def test_bad_values_name_their_field(section: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        load_settings(None, gb28181=section)
