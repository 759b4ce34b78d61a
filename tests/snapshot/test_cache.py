"""Thumbnail caches: in memory (TTL, LRU bound) and in a real Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio

from snapshot.cache import MemoryCache, RedisCache, Thumbnail
from tests.redis_server import redis_server


async def test_memory_cache_ttl_and_bound() -> None:
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


async def test_redis_cache_roundtrip_and_expiry(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        client = redis.asyncio.from_url(url)
        try:
            c = RedisCache(client)
            t = Thumbnail(b"\xff\xd8jpeg-bytes", 1700000000.5, "etag1", 2)
            await c.put("cam-1", 320, t, 0.3)
            assert await c.get("cam-1", 320) == t
            assert await c.get("cam-1", 640) is None
            await asyncio.sleep(0.4)
            assert await c.get("cam-1", 320) is None
        finally:
            await client.aclose()
