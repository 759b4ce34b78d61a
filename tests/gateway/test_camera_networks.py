"""``cameras.allowed_networks`` through the gateway (issue 15, finding 12): import and edit (API and
CLI) refuse addresses outside, connects (probe, snapshot) refuse names resolving outside, and
errors name the field without echoing credentials."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from camera_registry.egress import REASON
from gateway.settings import Settings, load_settings
from gateway.wiring import build_services
from tests.camera_registry.test_egress import Listener

SECRET = "s3cr3t-Pw"
ROOT = Path(__file__).resolve().parents[2]
NETS = ["10.0.0.0/8"]  # a private range nothing here ever connects to


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(None, data_dir=tmp_path / "data", cameras={"allowed_networks": NETS})


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


def _cam(cid: str, url: str) -> dict[str, str]:
    return {"id": cid, "name": cid, "source_url": url}


async def test_api_create_edit_and_import_refuse_addresses_outside(
    app_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    h = admin_headers
    r = await app_client.post("/api/cameras", json=_cam("c1", f"rtsp://u:{SECRET}@127.0.0.1:554/x"), headers=h)
    assert r.status_code == 422, r.text
    assert "source_url" in r.text and "cameras.allowed_networks" in r.text and SECRET not in r.text
    r = await app_client.post("/api/cameras", json=_cam("c1", f"rtsp://u:{SECRET}@10.1.2.3:554/x"), headers=h)
    assert r.status_code == 201, r.text
    r = await app_client.patch("/api/cameras/c1", json={"source_url": f"rtsp://u:{SECRET}@192.168.1.9/x"}, headers=h)
    assert r.status_code == 422 and "source_url" in r.text and SECRET not in r.text, r.text
    assert (await app_client.get("/api/cameras/c1", headers=h)).json()["source_url"] == "rtsp://10.1.2.3:554/x"
    rows = [_cam("c2", "rtsp://10.9.9.9/a"), _cam("c3", f"rtsp://u:{SECRET}@[::1]:554/b")]
    r = await app_client.post("/api/cameras/import", json=rows, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["created"] == 1 and body["rejected"] == 1, body
    assert "cameras.allowed_networks" in json.dumps(body) and SECRET not in json.dumps(body)
    assert (await app_client.get("/api/cameras/c3", headers=h)).status_code == 404


async def test_connects_refuse_a_name_resolving_outside(
    app_client: httpx.AsyncClient, admin_headers: dict[str, str], listener: Listener
) -> None:
    """``localhost`` resolves to loopback, outside 10.0.0.0/8: the probe and the snapshot are refused
    before anything connects (the listener on 127.0.0.1 sees nothing)."""
    h = admin_headers
    url = f"rtsp://u:{SECRET}@localhost:{listener.port}/x"
    assert (await app_client.post("/api/cameras", json=_cam("c1", url), headers=h)).status_code == 201
    r = await app_client.post("/api/cameras/c1/probe", params={"timeout": 2}, headers=h)
    assert r.status_code == 200 and r.json()["reason"] == REASON, r.text
    r = await app_client.get("/api/cameras/c1/snapshot.jpg", headers=h)
    assert r.status_code != 200 and SECRET not in r.text
    assert listener.accepted == 0


def test_cli_import_refuses_addresses_outside(tmp_path: Path) -> None:
    inv = tmp_path / "cams.json"
    inv.write_text(json.dumps([_cam("c1", "rtsp://10.0.0.5/a"), _cam("c2", f"rtsp://u:{SECRET}@127.0.0.1/b")]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIANDONG_")}
    env |= {"LIANDONG_DATA_DIR": str(tmp_path / "data"), "LIANDONG_CAMERAS__ALLOWED_NETWORKS": json.dumps(NETS)}
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "cameras", "import", str(inv), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert "cameras.allowed_networks" in out and SECRET not in out, out
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["created"] == 1 and report["rejected"] == 1, report


def test_startup_warns_without_a_limit(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.app"):
        build_services(load_settings(None, data_dir=tmp_path / "a"))
    assert "cameras.allowed_networks is empty" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gateway.app"):
        build_services(load_settings(None, data_dir=tmp_path / "b", cameras={"allowed_networks": NETS}))
    assert "allowed_networks" not in caplog.text
