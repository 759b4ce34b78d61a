"""A GB/T 28181 channel through the whole gateway, as an operator sees it: an admin accepts the
waiting device over the API, a rule lets one department view the channel and not another, the
allowed operator plays it over WebRTC (aiortc decodes frames) and over LL-HLS (ffprobe reads it).
(BYE after the last reader is tested against the hub in test_devices.py.)"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from acl.models import Role
from fixtures.camera_server import free_port
from gateway.settings import load_settings
from tests.gateway.test_hls import ffprobe
from tests.gb28181.test_devices import DeviceProc, until
from tests.live import PASSWORD, LiveGateway, live_gateway, start_viewer

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg"),
]
DEV = "34020000001320000042"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gbw") / "clip.h264"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "4",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-bf", "0", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, clip: Path) -> AsyncIterator[tuple[LiveGateway, Any]]:
    sip, media = free_port(), free_port()
    settings = load_settings(
        None,
        data_dir=tmp_path_factory.mktemp("gbw-data"),
        hub={"idle_close_s": 1.0},
        webrtc={"host_addresses": ["127.0.0.1"]},
        gb28181={"enabled": True, "sip_port": sip, "password": "pw", "media_ports": (media, media + 10)},
    )
    async with live_gateway(settings) as g:
        args = ["--server", f"127.0.0.1:{sip}", "--device-id", DEV, "--password", "pw", "--video", str(clip)]
        dev = DeviceProc([*args, "--keepalive-s", "1", "--retry-s", "0.3"])
        try:
            yield g, dev
        finally:
            dev.kill()


async def test_admin_accepts_and_only_the_allowed_department_plays(world: tuple[LiveGateway, Any]) -> None:
    g, dev = world
    admin = await g.add_user("admin", Role.admin)
    await until(lambda: dev.saw("register 403"), "the device refused while unknown")
    listed = (await g.client.get("/api/admin/gb28181/devices", headers=admin)).json()
    assert any(d["device_id"] == DEV and d["state"] == "waiting" for d in listed)
    r = await g.client.post(f"/api/admin/gb28181/devices/{DEV}/accept", json={"area": "七宝镇"}, headers=admin)
    assert r.status_code == 200 and r.json()["was_waiting"] is True
    r = await g.client.post("/api/admin/gb28181/devices/123/accept", json={}, headers=admin)
    assert r.status_code == 422

    async def listed_camera() -> bool:
        return (await g.client.get(f"/api/cameras/{DEV}", headers=admin)).status_code == 200

    await until(listed_camera, "the channel as a camera")
    cam = (await g.client.get(f"/api/cameras/{DEV}", headers=admin)).json()
    assert cam["source_url"] == f"gb28181://{DEV}/{DEV}" and cam["area"] == "七宝镇"

    headers = {}
    for dept in ("police", "transport"):
        await g.client.put(f"/api/admin/departments/{dept}", json={"name": dept}, headers=admin)
        body = {"username": f"op-{dept}", "password": PASSWORD, "role": "operator"}
        uid = (await g.client.post("/api/admin/users", json=body, headers=admin)).json()["id"]
        r = await g.client.put(f"/api/admin/users/{uid}/memberships/{dept}", json={}, headers=admin)
        assert r.status_code == 200, r.text
        tok = await g.client.post("/api/auth/token", data={"username": f"op-{dept}", "password": PASSWORD})
        headers[dept] = {"Authorization": f"Bearer {tok.json()['access_token']}"}
    rule = {"subject": "dept:police", "target": f"cam:{DEV}", "action": "view_live"}
    assert (await g.client.post("/api/admin/rules", json=rule, headers=admin)).status_code == 201

    async def visible() -> bool:
        r = await g.client.get("/api/cameras", headers=headers["police"])
        return any(c["id"] == DEV for c in r.json()["items"])

    await until(visible, "the camera in the police operator's list")
    r = await g.client.get("/api/cameras", headers=headers["transport"])
    assert all(c["id"] != DEV for c in r.json()["items"])
    offer = await g.client.post(
        f"/api/cameras/{DEV}/whep", content="v=0", headers={**headers["transport"], "Content-Type": "application/sdp"}
    )
    assert offer.status_code in (403, 404)
    r = await g.client.post(f"/api/admin/gb28181/devices/{DEV}/accept", json={}, headers=headers["transport"])
    assert r.status_code == 403  # operators do not accept devices

    viewer = await start_viewer(g, DEV, headers["police"])
    try:
        frames = await viewer.frames(10, timeout=20)
        assert frames[-1].width == 320 and frames[-1].height == 240
    finally:
        await viewer.close()
    assert dev.saw("invite udp")

    tok = (await g.client.post(f"/api/auth/stream-token/{DEV}", headers=headers["police"])).json()["token"]
    info = await ffprobe(f"{g.base_url}/api/cameras/{DEV}/hls/index.m3u8?token={tok}")
    video = next(s for s in info["streams"] if s["codec_type"] == "video")  # type: ignore[union-attr]
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 320, 240)
    assert int(video["nb_read_packets"]) >= 25
