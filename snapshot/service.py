"""Thumbnails for the camera wall: from the hub's cached keyframe when live, else one shared cold pull.

Per request, in order:

1. the camera is live in the hub: its latest keyframe is decoded once (whatever the number of
   requests and widths) and rendered once per width; the ETag names the keyframe;
2. the hub is opening the camera right now: wait for its first keyframe rather than open a second
   session;
3. a cached thumbnail (memory or Redis) or a recently pulled frame is young enough: use it;
4. one cold pull, shared by every concurrent request, through the bounded pool;
5. the pull fails: the last good thumbnail, marked stale, or :class:`SnapshotUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from camera_registry.egress import CameraNetworks
from snapshot.cache import MemoryCache, SnapshotCache, Thumbnail
from snapshot.cold import CameraWentLive, ColdFrame, ColdPuller, ColdPullError
from snapshot.interest import InterestBoard
from snapshot.masks import MaskSet, MaskStore
from snapshot.render import decode_keyframe, render_jpeg
from snapshot.settings import SnapshotSettings
from storage.db import Database
from streams import AccessUnit, StreamInfo

__all__ = ["LiveKeyframes", "SnapshotResult", "SnapshotService", "SnapshotUnavailable"]

log = logging.getLogger(__name__)

# Decoded frames kept so that other widths (and the next requests) need no decode or pull.
# A 720p BGR frame is 2.7 MB: 32 of them bound this at under 100 MB.
_FRAMES_KEPT = 32
# How often to look for the hub's first keyframe while it opens a camera.
_HUB_POLL_S = 0.05


class LiveKeyframes(Protocol):
    """What the snapshot service needs from the stream hub (:class:`streams.StreamHub`)."""

    def latest_keyframe(self, camera_id: str) -> AccessUnit | None:
        """The cached keyframe access unit (``.data`` Annex B with parameter sets, ``.seq``,
        ``.wallclock`` epoch seconds) of a live camera, or None."""
        ...

    def info(self, camera_id: str) -> StreamInfo | None:
        """Stream info (``.codec``) of a camera open in the hub, or None."""
        ...

    def describe(self, camera_id: str) -> dict[str, Any]:
        """The camera's hub state (``{"state": "idle"|"connecting"|"live"|...}``)."""
        ...


class SnapshotUnavailable(Exception):
    """No thumbnail can be had (camera offline or failing and never seen)."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    """A thumbnail and where it came from (live | cache | cold | stale)."""

    thumb: Thumbnail
    source: str
    camera_status: str = "online"
    stale_reason: str | None = None


@dataclass(frozen=True, slots=True)
class _Frame:
    key: str  # names the picture: the hub keyframe or the cold pull
    image: np.ndarray
    taken_at: float


def _etag(camera_id: str, width: int, frame_key: str, masks_version: int) -> str:
    raw = f"{camera_id}|{width}|{frame_key}|{masks_version}".encode()
    return hashlib.sha256(raw).hexdigest()[:20]


class SnapshotService:
    """Answers snapshot requests; decodes at most once per keyframe per camera; refreshes watched cameras."""

    def __init__(
        self,
        settings: SnapshotSettings,
        hub: LiveKeyframes,
        resolve_url: Callable[[str], Awaitable[str]],
        db: Database,
        cache: SnapshotCache | None = None,
        networks: CameraNetworks | None = None,
        through_hub: Callable[[str], Awaitable[ColdFrame]] | None = None,
    ) -> None:
        self.settings = settings
        self.hub = hub
        self.cache: SnapshotCache = cache or MemoryCache()
        self.masks = MaskStore(db)
        self.interest = InterestBoard(settings.interest_ttl_s)
        self.cold = ColdPuller(
            resolve_url,
            settings.cold_pool_size,
            settings.cold_timeout_s,
            went_live=lambda cid: self.hub.latest_keyframe(cid) is not None,
            networks=networks,
            through_hub=through_hub,
            on_pulled=self._keep_pulled,
        )
        self._frames: OrderedDict[str, _Frame] = OrderedDict()
        self._decoding: dict[tuple[str, str], asyncio.Future[_Frame]] = {}
        self._rendering: dict[tuple[str, int, str], asyncio.Future[Thumbnail]] = {}
        self._stale: OrderedDict[tuple[str, int], Thumbnail] = OrderedDict()
        self._widths_served: dict[str, set[int]] = {}  # bounded by cameras x configured widths
        self._refresher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.decodes = 0  # hub keyframes decoded
        self.renders = 0
        self.refreshed = 0

    # -- requests --------------------------------------------------------------------------
    async def get(self, camera_id: str, width: int, *, max_age_s: float | None = None) -> SnapshotResult:
        """A thumbnail of ``camera_id`` at ``width`` pixels, taken at most ``max_age_s`` ago
        (default: the cache TTL) unless the camera is offline and only a stale one exists."""
        max_age = self.settings.cache_ttl_s if max_age_s is None else max_age_s
        masks = await self.masks.for_camera(camera_id)
        for _ in range(3):  # at most: live, went-live-while-queued, cold
            kf = await self._hub_keyframe(camera_id)
            if kf is not None:
                return await self._from_hub(camera_id, width, kf, masks)
            try:
                return await self._from_cold(camera_id, width, masks, max_age)
            except CameraWentLive:
                continue
        raise SnapshotUnavailable("error", "camera keeps changing state")  # pragma: no cover - defensive

    async def _hub_keyframe(self, camera_id: str) -> Any:
        kf = self.hub.latest_keyframe(camera_id)
        if kf is not None or self.hub.describe(camera_id).get("state") not in ("connecting", "live"):
            return kf
        # The hub is opening this camera (a viewer just asked): its first keyframe beats a 2nd session.
        deadline = time.monotonic() + self.settings.cold_timeout_s
        while time.monotonic() < deadline:
            await asyncio.sleep(_HUB_POLL_S)
            kf = self.hub.latest_keyframe(camera_id)
            if kf is not None or self.hub.describe(camera_id).get("state") not in ("connecting", "live"):
                return kf
        return None

    async def _from_hub(self, camera_id: str, width: int, kf: Any, masks: MaskSet) -> SnapshotResult:
        # seq restarts with every upstream connection: the capture time makes the key unique.
        key = f"hub:{kf.seq}:{kf.wallclock:.6f}"
        etag = _etag(camera_id, width, key, masks.version)
        hit = await self.cache.get(camera_id, width)
        if hit is not None and hit.etag == etag:
            return SnapshotResult(hit, "cache")
        try:
            frame = await self._decode_hub(camera_id, key, kf)
        except Exception as e:  # a damaged keyframe: the next one may decode
            log.warning("camera %s: keyframe did not decode (%s)", camera_id, type(e).__name__)
            return self._stale_or_raise(camera_id, width, masks, "error", "keyframe did not decode")
        return SnapshotResult(await self._render(camera_id, width, frame, masks, etag), "live")

    def _stale_or_raise(self, camera_id: str, width: int, masks: MaskSet, status: str, reason: str) -> SnapshotResult:
        old = self._stale.get((camera_id, width))
        # Never a stale picture drawn with other masks (a render under way when the masks changed).
        if old is None or old.masks_version != masks.version:
            raise SnapshotUnavailable(status, reason)
        return SnapshotResult(old, "stale", status, reason)

    async def _decode_hub(self, camera_id: str, key: str, kf: Any) -> _Frame:
        have = self._frames.get(camera_id)
        if have is not None and have.key == key:
            return have
        fut = self._decoding.get((camera_id, key))
        if fut is None:
            info = self.hub.info(camera_id)
            codec = info.codec if info is not None else "h264"
            fut = asyncio.ensure_future(self._decode_off_loop(camera_id, key, codec, kf))
            self._decoding[(camera_id, key)] = fut
            fut.add_done_callback(lambda _f: self._decoding.pop((camera_id, key), None))
        return await asyncio.shield(fut)

    async def _decode_off_loop(self, camera_id: str, key: str, codec: str, kf: Any) -> _Frame:
        self.decodes += 1
        image = await asyncio.to_thread(decode_keyframe, codec, kf.data)
        frame = _Frame(key, image, float(kf.wallclock))
        self._keep_frame(camera_id, frame)
        return frame

    async def _from_cold(self, camera_id: str, width: int, masks: MaskSet, max_age: float) -> SnapshotResult:
        now = time.time()
        hit = await self.cache.get(camera_id, width)
        if hit is not None and hit.masks_version == masks.version and now - hit.taken_at <= max_age:
            return SnapshotResult(hit, "cache")
        frame = self._frames.get(camera_id)
        source = "cache"
        if frame is None or now - frame.taken_at > max_age:
            try:
                pulled = await self.cold.pull(camera_id)
            except ColdPullError as e:
                return self._stale_or_raise(camera_id, width, masks, e.status, e.reason)
            frame = self._frames.get(camera_id) or self._keep_pulled(camera_id, pulled)  # kept by the pull
            source = "cold"
        etag = _etag(camera_id, width, frame.key, masks.version)
        return SnapshotResult(await self._render(camera_id, width, frame, masks, etag), source)

    def _keep_pulled(self, camera_id: str, pulled: ColdFrame) -> _Frame:
        """Keep a cold pull's frame (inside the shared pull, so requests that come after it see it);
        a newer frame already kept (the hub's) stays."""
        frame = self._frames.get(camera_id)
        if frame is None or frame.taken_at < pulled.taken_at:
            frame = _Frame(f"cold:{pulled.taken_at:.6f}", pulled.image, pulled.taken_at)
            self._keep_frame(camera_id, frame)
        return frame

    def _keep_frame(self, camera_id: str, frame: _Frame) -> None:
        self._frames[camera_id] = frame
        self._frames.move_to_end(camera_id)
        while len(self._frames) > _FRAMES_KEPT:
            self._frames.popitem(last=False)

    async def _render(self, camera_id: str, width: int, frame: _Frame, masks: MaskSet, etag: str) -> Thumbnail:
        """Scale, mask and encode once per (camera, width, picture, masks), however many ask."""
        key = (camera_id, width, etag)
        fut = self._rendering.get(key)
        if fut is None:
            fut = asyncio.ensure_future(self._render_off_loop(camera_id, width, frame, masks, etag))
            self._rendering[key] = fut
            fut.add_done_callback(lambda _f: self._rendering.pop(key, None))
        return await asyncio.shield(fut)

    async def _render_off_loop(self, camera_id: str, width: int, frame: _Frame, masks: MaskSet, etag: str) -> Thumbnail:
        self.renders += 1
        jpeg = await asyncio.to_thread(render_jpeg, frame.image, width, masks.masks, self.settings.jpeg_quality)
        thumb = Thumbnail(jpeg, frame.taken_at, etag, masks.version)
        self._widths_served.setdefault(camera_id, set()).add(width)
        await self.cache.put(camera_id, width, thumb, self.settings.cache_ttl_s)
        if self.settings.stale_keep:
            self._stale[(camera_id, width)] = thumb
            self._stale.move_to_end((camera_id, width))
            while len(self._stale) > self.settings.stale_keep:
                self._stale.popitem(last=False)
        return thumb

    def last_taken(self, camera_id: str, width: int) -> float | None:
        """When the newest thumbnail this node rendered for the camera was taken (epoch s), if it
        is still kept (``stale_keep``)."""
        thumb = self._stale.get((camera_id, width))
        return thumb.taken_at if thumb else None

    async def forget(self, camera_id: str) -> None:
        """The camera was deleted: drop its thumbnails (fresh and stale) and decoded frames."""
        self._frames.pop(camera_id, None)
        for key in [k for k in self._stale if k[0] == camera_id]:
            del self._stale[key]
        self._widths_served.pop(camera_id, None)
        await self.cache.delete(camera_id, self.settings.widths)

    # -- masks -----------------------------------------------------------------------------
    async def set_masks(self, camera_id: str, masks: list[dict[str, Any]], author: str) -> None:
        """Replace a camera's masks. Thumbnails change at once: the ETag and the cache check include
        the masks' version, and unmasked stale thumbnails are dropped."""
        await self.masks.set(camera_id, masks, author)
        for key in [k for k in self._stale if k[0] == camera_id]:
            del self._stale[key]

    # -- background refresh ----------------------------------------------------------------
    def report_interest(self, console: str, camera_ids: list[str], width: int | None = None) -> int:
        """A console shows these cameras (already filtered to what its user may view)."""
        generation = self.interest.generation
        accepted = self.interest.report(console, camera_ids, width)
        if self.interest.generation != generation:
            self._wake.set()  # cameras nobody watched: refresh now, not at the end of the interval
        return accepted

    def _refresh_widths(self, camera_id: str, asked: tuple[int, ...]) -> tuple[int, ...]:
        # The widths consoles named, and those this camera's thumbnails were served at.
        widths = set(asked) | self._widths_served.get(camera_id, set())
        if not widths:
            widths = {320 if 320 in self.settings.widths else self.settings.widths[0]}
        return tuple(sorted(widths))

    async def refresh_once(self) -> int:
        """Refresh every watched camera whose thumbnail is older than the refresh interval, most-watched
        first, at most ``cold_pool_size`` at a time; returns how many were refreshed."""
        max_age = self.settings.refresh_interval_s
        sem = asyncio.Semaphore(self.settings.cold_pool_size)
        done = 0

        async def one(camera_id: str, widths: tuple[int, ...]) -> None:
            nonlocal done
            async with sem:  # FIFO: tasks are created most-watched first, so they start in that order
                ok = False
                for w in widths:
                    with contextlib.suppress(SnapshotUnavailable):
                        res = await self.get(camera_id, w, max_age_s=max_age)
                        ok = ok or res.source != "stale"
                done += ok

        watched = self.interest.watched()
        await asyncio.gather(*(one(w.camera_id, self._refresh_widths(w.camera_id, w.widths)) for w in watched))
        self.refreshed += done
        return done

    async def _refresh_loop(self) -> None:
        while True:
            started = time.monotonic()
            self._wake.clear()
            try:
                await self.refresh_once()
            except Exception:  # the loop must survive any one camera's failure
                log.exception("snapshot refresh failed")
            # Sleep out the interval, but start at once when consoles show cameras nobody watched.
            left = self.settings.refresh_interval_s - (time.monotonic() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, left))

    def start(self) -> None:
        """Start the background refresher."""
        if self._refresher is None:
            self._refresher = asyncio.create_task(self._refresh_loop(), name="snapshot-refresh")

    async def close(self) -> None:
        """Stop the refresher and the cold pool."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        await self.cold.close()
        await self.cache.close()
