"""Thumbnail caches: in memory (TTL, LRU bound) and in a real Redis, shared by two gateway nodes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio

from acl.models import Role
from fixtures.camera_server import FixtureCameraServer
from gateway.settings import load_settings
from snapshot.cache import MemoryCache, RedisCache, Thumbnail
from tests.live import live_gateway
from tests.redis_server import redis_server
from tests.snapshot.helpers import settled_connections


async def test_memory_cache_ttl_bound_and_delete() -> None:
    c = MemoryCache(max_entries=2)
    t = Thumbnail(b"jpeg", 1.0, "e1", 3)
    await c.put("a", 320, t, 0.2)
    assert await c.get("a", 320) == t
    assert await c.get("a", 160) is None
    await asyncio.sleep(0.25)
    assert await c.get("a", 320) is None
    for cam in ("a", "b", "c"):
        await c.put(cam, 320, t, 10)
    assert await c.get("a", 320) is None and await c.get("c", 320) == t
    await c.delete("c", [160, 320])
    assert await c.get("c", 320) is None and await c.get("b", 320) == t


async def test_redis_cache_roundtrip_expiry_and_delete(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        c = RedisCache(redis.asyncio.from_url(url))
        try:
            t = Thumbnail(b"\xff\xd8jpeg-bytes", 1700000000.5, "etag1", 2)
            await c.put("cam-1", 320, t, 0.3)
            assert await c.get("cam-1", 320) == t
            assert await c.get("cam-1", 640) is None
            await asyncio.sleep(0.4)
            assert await c.get("cam-1", 320) is None
            await c.put("cam-1", 160, t, 10)
            await c.delete("cam-1", [160, 320])
            assert await c.get("cam-1", 160) is None
        finally:
            await c.close()


@pytest.mark.media
async def test_two_nodes_share_thumbnails_through_redis(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url, FixtureCameraServer(mounts=("h264_360p",)) as cams:
        # Two gateway nodes on one database and one Redis.
        settings = load_settings(None, data_dir=tmp_path / "d", redis_url=url, snapshot={"cache_ttl_s": 30})
        async with live_gateway(settings) as a, live_gateway(settings) as b:
            admin = await a.add_user("admin", Role.admin)
            await a.add_camera(admin, "cam", cams.url("h264_360p"))
            before = await settled_connections(cams, "h264_360p")
            ra = await a.client.get("/api/cameras/cam/snapshot.jpg?width=160", headers=admin)
            assert ra.status_code == 200 and ra.headers["x-snapshot-source"] == "cold"
            rb = await b.client.get("/api/cameras/cam/snapshot.jpg?width=160", headers=admin)
            assert rb.status_code == 200 and rb.headers["x-snapshot-source"] == "cache"
            assert rb.content == ra.content and rb.headers["etag"] == ra.headers["etag"]
            assert await settled_connections(cams, "h264_360p") == before + 1
            # Deleting the camera drops its thumbnails everywhere they are shared.
            assert (await a.client.delete("/api/cameras/cam", headers=admin)).status_code == 204
            assert a.ld.snapshots.last_taken("cam", 160) is None
            assert await b.ld.snapshots.cache.get("cam", 160) is None
