"""Rendered thumbnails by (camera, width): in memory by default, Redis when several nodes share them."""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["MemoryCache", "RedisCache", "SnapshotCache", "Thumbnail"]


@dataclass(frozen=True, slots=True)
class Thumbnail:
    """A rendered JPEG and when its frame was taken (epoch seconds)."""

    jpeg: bytes
    taken_at: float
    etag: str
    masks_version: int = 0


class SnapshotCache(Protocol):
    """Where thumbnails are kept between requests."""

    async def get(self, camera_id: str, width: int) -> Thumbnail | None:
        """A thumbnail, or None."""
        ...

    async def put(self, camera_id: str, width: int, thumb: Thumbnail, ttl_s: float) -> None:
        """Keep a thumbnail for ``ttl_s`` seconds."""
        ...

    async def delete(self, camera_id: str, widths: Sequence[int]) -> None:
        """Forget a camera's thumbnails at these widths."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class MemoryCache:
    """An LRU of thumbnails with per-entry expiry (bounded memory: ``max_entries``)."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self.max_entries = max_entries
        self._d: OrderedDict[tuple[str, int], tuple[float, Thumbnail]] = OrderedDict()

    async def get(self, camera_id: str, width: int) -> Thumbnail | None:
        key = (camera_id, width)
        hit = self._d.get(key)
        if hit is None:
            return None
        expires, thumb = hit
        if time.monotonic() > expires:
            self._d.pop(key, None)
            return None
        self._d.move_to_end(key)
        return thumb

    async def put(self, camera_id: str, width: int, thumb: Thumbnail, ttl_s: float) -> None:
        self._d[(camera_id, width)] = (time.monotonic() + ttl_s, thumb)
        self._d.move_to_end((camera_id, width))
        while len(self._d) > self.max_entries:
            self._d.popitem(last=False)

    async def delete(self, camera_id: str, widths: Sequence[int]) -> None:
        for w in widths:
            self._d.pop((camera_id, w), None)

    async def close(self) -> None:
        self._d.clear()


class RedisCache:
    """Thumbnails in Redis (``liandong:snap:<camera>:<width>``), shared by gateway nodes."""

    def __init__(self, client: Any, prefix: str = "liandong:snap:") -> None:
        self.r = client
        self.prefix = prefix

    async def get(self, camera_id: str, width: int) -> Thumbnail | None:
        raw = await self.r.hmget(f"{self.prefix}{camera_id}:{width}", "jpeg", "meta")
        if not raw or raw[0] is None or raw[1] is None:
            return None
        meta = json.loads(raw[1])
        return Thumbnail(raw[0], float(meta["taken_at"]), str(meta["etag"]), int(meta.get("masks", 0)))

    async def put(self, camera_id: str, width: int, thumb: Thumbnail, ttl_s: float) -> None:
        key = f"{self.prefix}{camera_id}:{width}"
        meta = json.dumps({"taken_at": thumb.taken_at, "etag": thumb.etag, "masks": thumb.masks_version})
        async with self.r.pipeline(transaction=True) as p:
            p.hset(key, mapping={"jpeg": thumb.jpeg, "meta": meta})
            p.pexpire(key, max(1, int(ttl_s * 1000)))
            await p.execute()

    async def delete(self, camera_id: str, widths: Sequence[int]) -> None:
        if widths:
            await self.r.delete(*(f"{self.prefix}{camera_id}:{w}" for w in widths))

    async def close(self) -> None:
        await self.r.aclose()
