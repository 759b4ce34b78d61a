"""``liandong alarm-sources``: add prints the secret once, rotate replaces it, list never shows it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app


def test_alarm_sources_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIANDONG_DATA_DIR", str(tmp_path))
    run = CliRunner()
    r = run.invoke(app, ["alarm-sources", "add", "bus-gps"])
    assert r.exit_code == 0, r.output
    secret = r.output.strip().splitlines()[-1]
    assert len(secret) >= 40
    assert run.invoke(app, ["alarm-sources", "add", "bus-gps"]).exit_code == 2
    assert run.invoke(app, ["alarm-sources", "add", "bad name!"]).exit_code == 2
    r = run.invoke(app, ["alarm-sources", "rotate", "bus-gps"])
    new = r.output.strip().splitlines()[-1]
    assert r.exit_code == 0 and new != secret
    listed = run.invoke(app, ["alarm-sources", "list"]).output
    assert "bus-gps" in listed and secret not in listed and new not in listed
    assert secret.encode() not in (tmp_path / "liandong.db").read_bytes()  # stored encrypted
    assert run.invoke(app, ["alarm-sources", "disable", "bus-gps"]).exit_code == 0
    assert "bus-gps\tinactive" in run.invoke(app, ["alarm-sources", "list"]).output
    assert run.invoke(app, ["alarm-sources", "enable", "bus-gps"]).exit_code == 0
    assert "bus-gps\tactive" in run.invoke(app, ["alarm-sources", "list"]).output
    r = run.invoke(app, ["alarm-sources", "rotate", "nobody"])
    assert r.exit_code == 2 and "no source" in r.output


def test_notify_seal_round_trips_through_the_secret_box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from storage.secretbox import SecretBox

    monkeypatch.setenv("LIANDONG_DATA_DIR", str(tmp_path))
    r = CliRunner().invoke(app, ["notify", "seal"], input="sms-password\n")
    assert r.exit_code == 0, r.output
    sealed = r.output.strip()
    assert "sms-password" not in sealed
    assert SecretBox.from_data_dir(tmp_path).decrypt(sealed) == "sms-password"
    assert CliRunner().invoke(app, ["notify", "seal"], input="\n").exit_code == 2
