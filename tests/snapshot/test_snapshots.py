"""Snapshots against the real fixture cameras and a real gateway: live keyframe without a new session,
cold single flight, bounded pool, offline status and stale thumbnails, ETag/304, widths, masks, permissions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.camera_server import FixtureCameraServer, free_port
from tests.live import LiveGateway, gateway_with, start_viewer
from tests.media import cameras_fixture
from tests.snapshot.helpers import jpeg_image, settled_connections

pytestmark = pytest.mark.media

SECRET = "snap-secret"


cams = cameras_fixture("h264", "h264_360p", "h265")


@contextlib.asynccontextmanager
async def gateway(
    tmp_path: Path, cams: FixtureCameraServer, **snapshot: Any
) -> AsyncIterator[tuple[LiveGateway, dict[str, str]]]:
    """A gateway with cameras live (720p), cold (360p), hevc, and gone (nothing listens)."""
    cameras = {"live": cams.url("h264", f"u:{SECRET}"), "cold": cams.url("h264_360p"), "hevc": cams.url("h265")}
    snapshot = {"cache_ttl_s": 30, **snapshot}
    async with gateway_with(tmp_path / "d", cameras, hub={"idle_close_s": 1.0}, snapshot=snapshot) as (g, admin):
        # A free port taken while the gateway holds its own: nothing listens there.
        await g.add_camera(admin, "gone", f"rtsp://u:{SECRET}@127.0.0.1:{free_port()}/x")
        yield g, admin


@pytest.fixture
async def gw(tmp_path: Path, cams: FixtureCameraServer) -> AsyncIterator[tuple[LiveGateway, dict[str, str]]]:
    async with gateway(tmp_path, cams) as pair:
        yield pair


async def test_live_camera_uses_hub_keyframe_no_new_session(
    gw: tuple[LiveGateway, dict[str, str]], cams: FixtureCameraServer
) -> None:
    g, admin = gw
    viewer = await start_viewer(g, "live", admin)
    try:
        await viewer.frames(5, timeout=15)
        before = await settled_connections(cams, "h264")
        svc = g.ld.snapshots
        decodes, renders = svc.decodes, svc.renders
        rs = await asyncio.gather(
            *(g.client.get(f"/api/cameras/live/snapshot.jpg?width={w}", headers=admin) for w in [320] * 30 + [160] * 10)
        )
        assert all(r.status_code == 200 for r in rs)
        assert {r.headers["x-snapshot-source"] for r in rs} <= {"live", "cache"}
        assert jpeg_image(rs[0].content).shape[:2] == (180, 320)
        assert jpeg_image(rs[-1].content).shape[:2] == (90, 160)
        assert await settled_connections(cams, "h264") == before  # no new RTSP session
        # Once per keyframe (a new one may arrive during the burst), whatever the requests and widths.
        assert svc.decodes - decodes <= 2 and svc.renders - renders <= 4
        r = rs[0]
        assert r.headers["x-camera-status"] == "online" and float(r.headers["x-snapshot-age"]) < 3
        assert "last-modified" in r.headers and "x-snapshot-taken" in r.headers
    finally:
        await viewer.close()


async def test_hub_opening_the_camera_is_preferred_to_a_cold_pull(
    gw: tuple[LiveGateway, dict[str, str]], cams: FixtureCameraServer
) -> None:
    g, admin = gw
    before = await settled_connections(cams, "h264")
    viewer = await start_viewer(g, "live", admin)  # the hub is connecting now, no keyframe yet
    try:
        r = await g.client.get("/api/cameras/live/snapshot.jpg?width=320", headers=admin)
        assert r.status_code == 200 and r.headers["x-snapshot-source"] == "live"
        assert await settled_connections(cams, "h264") == before + 1  # the hub's session only
    finally:
        await viewer.close()


async def test_cold_camera_single_flight(gw: tuple[LiveGateway, dict[str, str]], cams: FixtureCameraServer) -> None:
    g, admin = gw
    before = await settled_connections(cams, "h264_360p")
    rs = await asyncio.gather(
        *(g.client.get("/api/cameras/cold/snapshot.jpg?width=160", headers=admin) for _ in range(100))
    )
    assert [r.status_code for r in rs] == [200] * 100
    assert await settled_connections(cams, "h264_360p") == before + 1  # 100 requests, one upstream session
    assert g.ld.snapshots.cold.pulls == 1
    assert jpeg_image(rs[0].content).shape[:2] == (90, 160)
    assert len({r.headers["etag"] for r in rs}) == 1
    # Another width of the same picture: rendered from the pulled frame, no second session.
    r = await g.client.get("/api/cameras/cold/snapshot.jpg?width=320", headers=admin)
    assert r.status_code == 200 and r.headers["x-snapshot-taken"] == rs[0].headers["x-snapshot-taken"]
    assert (await g.client.get("/api/cameras/hevc/snapshot.jpg?width=320", headers=admin)).status_code == 200
    assert await settled_connections(cams, "h264_360p") == before + 1


async def test_etag_and_last_modified_give_304(gw: tuple[LiveGateway, dict[str, str]]) -> None:
    g, admin = gw
    url = "/api/cameras/cold/snapshot.jpg?width=160"
    first = await g.client.get(url, headers=admin)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    r = await g.client.get(url, headers={**admin, "If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
    r = await g.client.get(url, headers={**admin, "If-None-Match": f'"other", W/{etag}'})
    assert r.status_code == 304
    r = await g.client.get(url, headers={**admin, "If-None-Match": '"other"'})
    assert r.status_code == 200 and r.content == first.content
    assert (await g.client.get(url, headers={**admin, "If-Modified-Since": modified})).status_code == 304
    old = "Mon, 01 Jan 2024 00:00:00 GMT"
    assert (await g.client.get(url, headers={**admin, "If-Modified-Since": old})).status_code == 200


async def test_bounded_pool(tmp_path: Path, cams: FixtureCameraServer) -> None:
    async with gateway(tmp_path, cams, cold_pool_size=2) as (g, admin):
        for i in range(4):
            await g.add_camera(admin, f"p{i}", cams.url("h264"))
        # A viewer keeps the mount streaming, so each pull joins mid-GOP and lasts up to 2 s: pulls overlap.
        viewer = await start_viewer(g, "live", admin)
        try:
            await viewer.frames(3, timeout=15)
            before = await settled_connections(cams, "h264")
            seen: list[int] = []

            async def sample() -> None:
                while True:
                    seen.append(cams.clients("h264"))
                    await asyncio.sleep(0.02)

            sampler = asyncio.create_task(sample())
            try:
                rs = await asyncio.gather(
                    *(g.client.get(f"/api/cameras/p{i}/snapshot.jpg", headers=admin) for i in range(4))
                )
            finally:
                sampler.cancel()
        finally:
            await viewer.close()
        assert [r.status_code for r in rs] == [200] * 4
        puller = g.ld.snapshots.cold
        assert puller.peak_active == 2 and puller.pulls == 4
        assert await settled_connections(cams, "h264") == before + 4
        assert max(seen) <= 1 + 2, seen  # the hub's session and at most the pool's at once


async def test_offline_camera_and_stale_thumbnail(
    tmp_path: Path, cams: FixtureCameraServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with gateway(tmp_path, cams, cache_ttl_s=0.5) as (g, admin):
        r = await g.client.get("/api/cameras/gone/snapshot.jpg?width=320", headers=admin)
        assert r.status_code == 503 and r.headers["x-camera-status"] == "offline"
        assert r.json()["detail"]["reason"] == "connection refused" and "retry-after" in r.headers
        ok = await g.client.get("/api/cameras/cold/snapshot.jpg?width=640", headers=admin)
        assert ok.status_code == 200 and ok.headers["x-snapshot-source"] == "cold"
        await asyncio.sleep(0.6)  # the thumbnail is older than the cache TTL now
        await asyncio.to_thread(cams.set_offline, True)
        try:
            r = await g.client.get("/api/cameras/cold/snapshot.jpg?width=640", headers=admin)
            never = await g.client.get("/api/cameras/cold/snapshot.jpg?width=160", headers=admin)
            # New privacy masks: the old, unmasked picture is not shown any more, even as a stale one.
            mask = {"masks": [{"points": [[0, 0], [1, 0], [1, 1]]}]}
            assert (await g.client.put("/api/cameras/cold/masks", json=mask, headers=admin)).status_code == 200
            masked_offline = await g.client.get("/api/cameras/cold/snapshot.jpg?width=640", headers=admin)
            await g.client.put("/api/cameras/cold/masks", json={"masks": []}, headers=admin)
        finally:
            await asyncio.to_thread(cams.set_offline, False)
        assert r.status_code == 200 and r.headers["x-snapshot-source"] == "stale"
        assert r.headers["x-snapshot-stale"] and r.headers["x-camera-status"] in ("offline", "error")
        assert r.headers["x-snapshot-taken"] == ok.headers["x-snapshot-taken"] and r.content == ok.content
        assert float(r.headers["x-snapshot-age"]) >= 0.6 and "no-cache" in r.headers["cache-control"]
        assert never.status_code == 503  # no earlier thumbnail at that width
        assert masked_offline.status_code == 503
        # Back online: a fresh one.
        r = await g.client.get("/api/cameras/cold/snapshot.jpg?width=640", headers=admin)
        assert r.status_code == 200 and r.headers["x-snapshot-source"] == "cold"
    assert SECRET not in caplog.text


async def test_width_bounds_and_permissions(gw: tuple[LiveGateway, dict[str, str]]) -> None:
    g, admin = gw
    for bad in ("333", "99999", "0", "abc"):
        r = await g.client.get(f"/api/cameras/cold/snapshot.jpg?width={bad}", headers=admin)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "width", (bad, r.text)
    assert (await g.client.get("/api/cameras/nope/snapshot.jpg", headers=admin)).status_code == 404
    op = await g.add_user("op")  # an operator without grants: deny by default
    assert (await g.client.get("/api/cameras/cold/snapshot.jpg", headers=op)).status_code == 403
    assert (await g.client.get("/api/cameras/cold/snapshot.jpg")).status_code == 401
    r = await g.client.post("/api/snapshots/interest", json={"camera_ids": ["cold", "live"]}, headers=op)
    assert r.status_code == 200 and r.json()["accepted"] == 0  # only cameras the caller may view count
    assert g.ld.snapshots.interest.watched() == []
    r = await g.client.post("/api/snapshots/interest", json={"camera_ids": ["cold", "live"]}, headers=admin)
    assert r.json()["accepted"] == 2 and r.json()["ttl_s"] > 0
    assert [w.camera_id for w in g.ld.snapshots.interest.watched()] == ["cold", "live"]
    r = await g.client.post("/api/snapshots/interest", json={"camera_ids": ["cold"], "width": 333}, headers=admin)
    assert r.status_code == 422 and "width" in r.text
    assert (await g.client.post("/api/snapshots/interest", json={"camera_ids": ["cold"]})).status_code == 401


async def test_gone_camera_reply_holds_no_credentials(gw: tuple[LiveGateway, dict[str, str]]) -> None:
    g, admin = gw
    r = await g.client.get("/api/cameras/gone/snapshot.jpg?width=160", headers=admin)
    assert r.status_code == 503 and SECRET not in r.text and SECRET not in str(r.headers)


async def test_privacy_masks(gw: tuple[LiveGateway, dict[str, str]]) -> None:
    g, admin = gw
    plain = await g.client.get("/api/cameras/cold/snapshot.jpg?width=320", headers=admin)
    masks = [
        {"points": [[0, 0], [0.5, 0], [0.5, 0.5], [0, 0.5]], "mode": "fill"},
        {"points": [[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]], "mode": "blur"},
    ]
    r = await g.client.put("/api/cameras/cold/masks", json={"masks": masks}, headers=admin)
    assert r.status_code == 200, r.text
    assert (await g.client.get("/api/cameras/cold/masks", headers=admin)).json()["masks"] == masks
    for bad, field in (
        ({"masks": [{"points": [[0, 0], [2, 0], [1, 1]]}]}, "masks.0.points"),
        ({"masks": [{"points": [[0, 0], [1, 0]]}]}, "masks.0.points"),
        ({"masks": [{"points": [[0, 0], [1, 0], [1, 1]], "mode": "paint"}]}, "masks.0.mode"),
    ):
        r = await g.client.put("/api/cameras/cold/masks", json=bad, headers=admin)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, r.text
    assert (await g.client.put("/api/cameras/nope/masks", json={"masks": []}, headers=admin)).status_code == 404
    op = await g.add_user("op2")
    assert (await g.client.put("/api/cameras/cold/masks", json={"masks": []}, headers=op)).status_code == 403

    masked = await g.client.get("/api/cameras/cold/snapshot.jpg?width=320", headers=admin)
    assert masked.headers["etag"] != plain.headers["etag"]  # same picture, new masks: a new thumbnail
    assert masked.headers["x-snapshot-taken"] == plain.headers["x-snapshot-taken"]
    img, orig = jpeg_image(masked.content).astype(int), jpeg_image(plain.content).astype(int)
    fill = img[5:85, 5:155]
    assert abs(fill.mean() - 40) < 8 and fill.std() < 8  # top left: a flat fill
    # Bottom right: blurred (less detail than the original there), not filled.
    blur, orig_q = img[95:175, 165:315], orig[95:175, 165:315]
    assert blur.std() > 2 and abs(blur - orig_q).mean() > 1
    import cv2
    import numpy as np

    def sharp(a: Any) -> float:
        return float(cv2.Laplacian(np.asarray(a, dtype=np.uint8), cv2.CV_64F).var())

    assert sharp(blur) < sharp(orig_q) / 3
    # The unmasked quarter still shows the picture.
    assert abs(img[5:85, 165:315] - orig[5:85, 165:315]).mean() < 6

    # A live camera's thumbnails are masked too, and removing masks restores the picture.
    await g.client.put("/api/cameras/live/masks", json={"masks": masks[:1]}, headers=admin)
    viewer = await start_viewer(g, "live", admin)
    try:
        await viewer.frames(3, timeout=15)
        live = await g.client.get("/api/cameras/live/snapshot.jpg?width=320", headers=admin)
        assert live.headers["x-snapshot-source"] in ("live", "cache")
        q = jpeg_image(live.content).astype(int)[5:85, 5:155]
        assert abs(q.mean() - 40) < 8 and q.std() < 8
    finally:
        await viewer.close()
    await g.client.put("/api/cameras/cold/masks", json={"masks": []}, headers=admin)
    again = await g.client.get("/api/cameras/cold/snapshot.jpg?width=320", headers=admin)
    assert abs(jpeg_image(again.content).astype(int)[5:85, 5:155] - orig[5:85, 5:155]).mean() < 6
