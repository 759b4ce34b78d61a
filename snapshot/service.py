"""Thumbnails for the camera wall: from the hub's cached keyframe when live, else one shared cold pull."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from sqlalchemy import select

from gateway.settings import SnapshotSettings
from snapshot.cache import MemoryCache, SnapshotCache, Thumbnail
from snapshot.cold import ColdPuller, ColdPullError
from snapshot.models import CameraMask
from snapshot.render import Mask, decode_keyframe, render_jpeg
from storage.db import Database

__all__ = ["LiveKeyframes", "SnapshotResult", "SnapshotService", "SnapshotUnavailable"]

log = logging.getLogger(__name__)


class LiveKeyframes(Protocol):
    """What the snapshot service needs from the stream hub."""

    def latest_keyframe(self, camera_id: str) -> Any:
        """The cached keyframe access unit (``.data``, ``.seq``, ``.wallclock``) of a live camera, or None."""
        ...

    def info(self, camera_id: str) -> Any:
        """Stream info (``.codec``) of a camera open in the hub, or None."""
        ...


class SnapshotUnavailable(Exception):
    """No thumbnail can be had (camera offline and never seen); the message says why."""


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    """A thumbnail and where it came from."""

    thumb: Thumbnail
    source: str  # live | cache | cold | stale
    stale_reason: str | None = None


def _etag(camera_id: str, width: int, taken_at: float, masks_version: int) -> str:
    raw = f"{camera_id}|{width}|{taken_at:.3f}|{masks_version}".encode()
    return hashlib.sha256(raw).hexdigest()[:20]


class SnapshotService:
    """Answers snapshot requests; decodes at most once per keyframe per camera."""

    def __init__(
        self,
        settings: SnapshotSettings,
        hub: LiveKeyframes,
        resolve_url: Callable[[str], Awaitable[str]],
        db: Database,
        cache: SnapshotCache | None = None,
    ) -> None:
        self.settings = settings
        self.hub = hub
        self.db = db
        self.cache: SnapshotCache = cache or MemoryCache()
        self.cold = ColdPuller(resolve_url, settings.cold_pool_size, settings.cold_timeout_s)
        self._decoded: OrderedDict[str, tuple[int, np.ndarray, float]] = OrderedDict()
        self._decoding: dict[tuple[str, int], asyncio.Future[np.ndarray]] = {}
        self._stale: OrderedDict[tuple[str, int], Thumbnail] = OrderedDict()
        self._masks: dict[str, tuple[int, list[Mask]]] = {}
        self._masks_version = 0
        self._interest: dict[str, tuple[float, int]] = {}
        self._refresher: asyncio.Task[None] | None = None
        self.decodes = 0

    # -- requests --------------------------------------------------------------------------
    async def get(self, camera_id: str, width: int) -> SnapshotResult:
        """A thumbnail of ``camera_id`` at ``width`` pixels."""
        masks_v, masks = await self._masks_for(camera_id)
        kf = self.hub.latest_keyframe(camera_id)
        info = self.hub.info(camera_id)
        if kf is not None and info is not None:
            etag = _etag(camera_id, width, kf.wallclock, masks_v)
            hit = await self.cache.get(camera_id, width)
            if hit is not None and hit.etag == etag:
                return SnapshotResult(hit, "cache")
            image = await self._decode_live(camera_id, info.codec, kf)
            thumb = await self._render(camera_id, width, image, kf.wallclock, (masks_v, masks), etag)
            return SnapshotResult(thumb, "live")
        hit = await self.cache.get(camera_id, width)
        if hit is not None and hit.masks_version == masks_v:
            return SnapshotResult(hit, "cache")
        try:
            frame = await self.cold.pull(camera_id)
        except ColdPullError as e:
            old = self._stale.get((camera_id, width))
            if old is None:
                raise SnapshotUnavailable(str(e)) from None
            return SnapshotResult(old, "stale", str(e))
        etag = _etag(camera_id, width, frame.taken_at, masks_v)
        thumb = await self._render(camera_id, width, frame.image, frame.taken_at, (masks_v, masks), etag)
        return SnapshotResult(thumb, "cold")

    async def _decode_live(self, camera_id: str, codec: str, kf: Any) -> np.ndarray:
        have = self._decoded.get(camera_id)
        if have is not None and have[0] == kf.seq:
            self._decoded.move_to_end(camera_id)
            return have[1]
        key = (camera_id, kf.seq)
        fut = self._decoding.get(key)
        if fut is None:
            fut = asyncio.ensure_future(asyncio.to_thread(decode_keyframe, codec, kf.data))
            self._decoding[key] = fut
            self.decodes += 1
            try:
                image = await fut
            finally:
                self._decoding.pop(key, None)
            self._decoded[camera_id] = (kf.seq, image, kf.wallclock)
            while len(self._decoded) > 64:  # decoded 720p frames are ~2.7 MB each
                self._decoded.popitem(last=False)
            return image
        return await asyncio.shield(fut)

    async def _render(
        self,
        camera_id: str,
        width: int,
        image: np.ndarray,
        taken_at: float,
        masks: tuple[int, Sequence[Mask]],
        etag: str,
    ) -> Thumbnail:
        jpeg = await asyncio.to_thread(render_jpeg, image, width, masks[1], self.settings.jpeg_quality)
        thumb = Thumbnail(jpeg, taken_at, etag, masks[0])
        await self.cache.put(camera_id, width, thumb, self.settings.cache_ttl_s)
        if self.settings.stale_keep:
            self._stale[(camera_id, width)] = thumb
            self._stale.move_to_end((camera_id, width))
            while len(self._stale) > self.settings.stale_keep:
                self._stale.popitem(last=False)
        return thumb

    # -- masks -----------------------------------------------------------------------------
    async def _masks_for(self, camera_id: str) -> tuple[int, list[Mask]]:
        hit = self._masks.get(camera_id)
        if hit is not None:
            return hit
        async with self.db.session() as s:
            row = await s.get(CameraMask, camera_id)
        masks = [
            Mask(tuple((float(x), float(y)) for x, y in m["points"]), m.get("mode", "fill"))
            for m in (row.masks if row else [])
        ]
        entry = (self._masks_version, masks)
        self._masks[camera_id] = entry
        return entry

    async def set_masks(self, camera_id: str, masks: list[dict[str, Any]], author: str) -> None:
        """Replace a camera's masks (thumbnails change at once: the ETag includes the mask version)."""
        async with self.db.session() as s:
            row = await s.get(CameraMask, camera_id)
            if row is None:
                s.add(CameraMask(camera_id=camera_id, masks=masks, updated_by=author))
            else:
                row.masks = masks
                row.updated_by = author
        self._masks_version += 1
        self._masks.pop(camera_id, None)
        for key in [k for k in self._stale if k[0] == camera_id]:
            del self._stale[key]

    async def masks(self, camera_id: str) -> list[dict[str, Any]]:
        """A camera's masks as stored."""
        async with self.db.session() as s:
            row = (await s.execute(select(CameraMask).where(CameraMask.camera_id == camera_id))).scalar()
        return list(row.masks) if row else []

    # -- background refresh ----------------------------------------------------------------
    def interest(self, camera_ids: Sequence[str]) -> int:
        """Consoles are showing these cameras: keep their thumbnails fresh for a while."""
        until = time.monotonic() + self.settings.interest_ttl_s
        for cid in camera_ids:
            _, n = self._interest.get(cid, (0.0, 0))
            self._interest[cid] = (until, n + 1)
        return len(camera_ids)

    def watched(self) -> list[str]:
        """Cameras with live interest, most-watched first."""
        now = time.monotonic()
        for cid in [c for c, (until, _) in self._interest.items() if until < now]:
            del self._interest[cid]
        return [c for c, _ in sorted(self._interest.items(), key=lambda kv: -kv[1][1])]

    async def refresh_once(self, width: int = 320) -> int:
        """Refresh every watched camera's thumbnail (bounded by the cold pool); returns how many."""
        done = 0

        async def one(cid: str) -> None:
            nonlocal done
            with contextlib.suppress(SnapshotUnavailable):
                await self.get(cid, width)
                done += 1

        await asyncio.gather(*(one(c) for c in self.watched()))
        return done

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.refresh_interval_s)
            try:
                await self.refresh_once()
            except Exception:  # the loop must survive any one camera's failure
                log.exception("snapshot refresh failed")

    def start(self) -> None:
        """Start the background refresher."""
        self._refresher = asyncio.create_task(self._refresh_loop(), name="snapshot-refresh")

    async def close(self) -> None:
        """Stop the refresher and the cold pool."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        self.cold.close()
