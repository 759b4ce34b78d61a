"""``liandong cameras discover`` and ``cameras import --onvif`` against the fixture's ONVIF device
(unicast WS-Discovery and SOAP on loopback only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from camera_registry.egress import CameraNetworks
from camera_registry.ptz_endpoints import PtzEndpoint, PtzEndpoints
from fixtures.onvif_camera import OnvifCamera
from gateway.cli import app
from storage.db import Database, run_with_database
from storage.secretbox import SecretBox

SECRET = "s3cr3t-onvif"


def test_discover_then_import_then_discover_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("LIANDONG_DATA_DIR", str(data))
    runner = CliRunner()
    with OnvifCamera(
        password=SECRET,
        rtsp_url="rtsp://127.0.0.1:8554/h264",
        sub_rtsp_url="rtsp://127.0.0.1:8554/h264_360p",
        model="LD-PTZ-7",
    ) as cam:
        host, port = cam.discovery_address
        # Nothing named: no probe at all (never a multicast on an interface the admin did not name).
        r = runner.invoke(app, ["cameras", "discover"])
        assert r.exit_code == 2 and "--target" in r.output
        r = runner.invoke(app, ["cameras", "discover", "--target", f"{host}:{port}", "--json", "--wait", "1"])
        assert r.exit_code == 0, r.output
        found = [json.loads(ln) for ln in r.output.splitlines() if ln.startswith("{")]
        assert found == [
            {"xaddrs": [cam.url], "name": "Liandong PTZ fixture", "model": "LD-PTZ-7", "ptz": True, "in_registry": None}
        ]
        # A wrong password: nothing written, exit 2, the secret never printed.
        r = runner.invoke(
            app, ["cameras", "import", "--onvif", cam.url, "--user", "admin", "--password-stdin"], input="wrong\n"
        )
        assert r.exit_code == 2 and "NotAuthorized" in r.output
        args = ["cameras", "import", "--onvif", cam.url, "--user", "admin", "--password-stdin"]
        r = runner.invoke(app, [*args, "--id", "gate-3", "--area", "七宝镇", "--json"], input=f"{SECRET}\n")
        assert r.exit_code == 0, r.output
        assert SECRET not in r.output
        rep = json.loads(r.output.strip().splitlines()[-1])
        assert (rep["created"], rep["rejected"], rep["written"]) == (1, 0, True)
        dev = rep["device"]
        assert dev["camera_id"] == "gate-3" and dev["model"] == "LD-PTZ-7" and dev["ptz"] is True
        assert [p["token"] for p in dev["profiles"]] == ["main", "sub"]
        assert dev["sub_stream"] == "rtsp://127.0.0.1:8554/h264_360p"
        # The same inventory report as a CSV import: a second import changes nothing.
        r = runner.invoke(app, [*args, "--id", "gate-3", "--area", "七宝镇", "--json"], input=f"{SECRET}\n")
        assert json.loads(r.output.strip().splitlines()[-1])["unchanged"] == 1
        r = runner.invoke(app, ["cameras", "discover", "--target", f"{host}:{port}", "--json", "--wait", "1"])
        assert json.loads(r.output.strip().splitlines()[-1])["in_registry"] == "gate-3"
        r = runner.invoke(app, ["cameras", "export", "--format", "json"])
        exported = json.loads(r.output)
        assert exported[0]["source_url"] == "rtsp://127.0.0.1:8554/h264" and SECRET not in r.output

    # The PTZ control is stored with sealed credentials.
    async def endpoint(db: Database) -> PtzEndpoint | None:
        return await PtzEndpoints(db, SecretBox.from_data_dir(data), CameraNetworks()).get("gate-3")

    ep = run_with_database(f"sqlite+aiosqlite:///{data}/liandong.db", endpoint)
    assert ep is not None and (ep.url, ep.profile, ep.username, ep.password) == (cam.url, "main", "admin", SECRET)
    assert SECRET not in repr(ep)


def test_policy_department_sets_the_ptz_priority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from acl.policy_models import Department

    data = tmp_path / "data"
    monkeypatch.setenv("LIANDONG_DATA_DIR", str(data))
    runner = CliRunner()
    args = ["policy", "department", "qibao", "--name", "七宝镇分中心", "--level", "subdistrict"]
    r = runner.invoke(app, [*args, "--ptz-priority", "300"])
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, [*args, "--ptz-priority", "1001"]).exit_code != 0

    async def priority(db: Database) -> int | None:
        async with db.session() as s:
            d = await s.get(Department, "qibao")
            return None if d is None else d.ptz_priority

    assert run_with_database(f"sqlite+aiosqlite:///{data}/liandong.db", priority) == 300
