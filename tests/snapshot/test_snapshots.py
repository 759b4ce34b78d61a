"""Snapshots against the real fixture cameras: live keyframe, cold single flight, stale, ETag, masks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from acl.models import Role
from fixtures.camera_server import FixtureCameraServer, free_port
from gateway.settings import load_settings
from tests.live import LiveGateway, live_gateway, start_viewer

pytestmark = pytest.mark.media


@pytest.fixture(scope="module")
def cams() -> Iterator[FixtureCameraServer]:
    with FixtureCameraServer(mounts=("h264", "h264_360p", "h265")) as srv:
        yield srv


@pytest.fixture
async def gw(tmp_path: Path, cams: FixtureCameraServer) -> AsyncIterator[tuple[LiveGateway, dict[str, str]]]:
    settings = load_settings(None, data_dir=tmp_path / "d", hub={"idle_close_s": 1.0}, snapshot={"cache_ttl_s": 30})
    async with live_gateway(settings) as g:
        admin = await g.add_user("admin", Role.admin)
        await g.add_camera(admin, "live", cams.url("h264", "u:snap-secret"))
        await g.add_camera(admin, "cold", cams.url("h264_360p"))
        await g.add_camera(admin, "hevc", cams.url("h265"))
        await g.add_camera(admin, "gone", f"rtsp://127.0.0.1:{free_port()}/x")
        yield g, admin


def jpeg_size(data: bytes) -> tuple[int, int]:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return img.shape[1], img.shape[0]


async def test_live_camera_uses_hub_keyframe_no_new_session(
    gw: tuple[LiveGateway, dict[str, str]], cams: FixtureCameraServer
) -> None:
    g, admin = gw
    viewer = await start_viewer(g, "live", admin)
    try:
        await viewer.frames(5, timeout=15)
        before = cams.total_connections("h264")
        rs = await asyncio.gather(
            *(g.client.get("/api/cameras/live/snapshot.jpg?width=320", headers=admin) for _ in range(20))
        )
        assert all(r.status_code == 200 for r in rs)
        assert rs[0].headers["x-snapshot-source"] in ("live", "cache")
        assert jpeg_size(rs[0].content) == (320, 180)
        assert cams.total_connections("h264") == before  # no new RTSP session
        assert g.ld.snapshots.decodes <= 2  # once per keyframe, whatever the number of requests
        etag = rs[0].headers["etag"]
        r = await g.client.get("/api/cameras/live/snapshot.jpg?width=320", headers={**admin, "If-None-Match": etag})
        assert r.status_code in (200, 304)  # 200 only if a new keyframe arrived in between
        if r.status_code == 304:
            assert r.content == b""
        assert "last-modified" in rs[0].headers and "x-snapshot-taken" in rs[0].headers
    finally:
        await viewer.close()


async def test_cold_camera_single_flight(gw: tuple[LiveGateway, dict[str, str]], cams: FixtureCameraServer) -> None:
    g, admin = gw
    before = cams.total_connections("h264_360p")
    rs = await asyncio.gather(
        *(g.client.get("/api/cameras/cold/snapshot.jpg?width=160", headers=admin) for _ in range(100))
    )
    assert [r.status_code for r in rs] == [200] * 100
    assert cams.total_connections("h264_360p") == before + 1  # 100 requests, one upstream session
    assert jpeg_size(rs[0].content) == (160, 90)
    r = await g.client.get("/api/cameras/cold/snapshot.jpg?width=160", headers=admin)
    assert r.headers["x-snapshot-source"] == "cache"
    r2 = await g.client.get(
        "/api/cameras/cold/snapshot.jpg?width=160", headers={**admin, "If-None-Match": r.headers["etag"]}
    )
    assert r2.status_code == 304
    assert (await g.client.get("/api/cameras/hevc/snapshot.jpg?width=320", headers=admin)).status_code == 200


async def test_offline_camera_and_stale_thumbnail(
    gw: tuple[LiveGateway, dict[str, str]], cams: FixtureCameraServer
) -> None:
    g, admin = gw
    r = await g.client.get("/api/cameras/gone/snapshot.jpg?width=320", headers=admin)
    assert r.status_code == 503 and "connection refused" in r.text
    ok = await g.client.get("/api/cameras/cold/snapshot.jpg?width=640", headers=admin)
    assert ok.status_code == 200
    g.ld.snapshots.cache = type(g.ld.snapshots.cache)()  # expire the cache
    await asyncio.to_thread(cams.set_offline, True)
    try:
        r = await g.client.get("/api/cameras/cold/snapshot.jpg?width=640", headers=admin)
    finally:
        await asyncio.to_thread(cams.set_offline, False)
    assert r.status_code == 200 and r.headers["x-snapshot-stale"] and r.headers["x-camera-status"] == "offline"
    assert r.content == ok.content


async def test_width_bounds_and_permission(gw: tuple[LiveGateway, dict[str, str]]) -> None:
    g, admin = gw
    assert (await g.client.get("/api/cameras/cold/snapshot.jpg?width=333", headers=admin)).status_code == 422
    assert (await g.client.get("/api/cameras/cold/snapshot.jpg?width=99999", headers=admin)).status_code == 422
    assert (await g.client.get("/api/cameras/nope/snapshot.jpg", headers=admin)).status_code == 404
    op = await g.add_user("op")
    assert (await g.client.get("/api/cameras/cold/snapshot.jpg", headers=op)).status_code == 403
    assert (await g.client.get("/api/cameras/cold/snapshot.jpg")).status_code == 401
    r = await g.client.post("/api/snapshots/interest", json={"camera_ids": ["cold", "live"]}, headers=op)
    assert r.json() == {"accepted": 0}  # only cameras the caller may view count
    r = await g.client.post("/api/snapshots/interest", json={"camera_ids": ["cold", "live"]}, headers=admin)
    assert r.json() == {"accepted": 2} and g.ld.snapshots.watched() == ["cold", "live"]


async def test_privacy_masks(gw: tuple[LiveGateway, dict[str, str]]) -> None:
    g, admin = gw
    plain = await g.client.get("/api/cameras/cold/snapshot.jpg?width=320", headers=admin)
    body = {"masks": [{"points": [[0, 0], [0.5, 0], [0.5, 0.5], [0, 0.5]], "mode": "fill"}]}
    assert (await g.client.put("/api/cameras/cold/masks", json=body, headers=admin)).status_code == 200
    bad = {"masks": [{"points": [[0, 0], [2, 0], [1, 1]]}]}
    r = await g.client.put("/api/cameras/cold/masks", json=bad, headers=admin)
    assert r.status_code == 422 and "masks.0.points" in r.text
    masked = await g.client.get("/api/cameras/cold/snapshot.jpg?width=320", headers=admin)
    assert masked.headers["etag"] != plain.headers["etag"]
    img = cv2.imdecode(np.frombuffer(masked.content, np.uint8), cv2.IMREAD_COLOR)
    q = img[10:80, 10:150].astype(int)
    assert abs(q.mean() - 40) < 8 and q.std() < 8  # the masked quarter is a flat fill
    assert img[100:170, 170:310].std() > 20  # the rest still shows the picture
