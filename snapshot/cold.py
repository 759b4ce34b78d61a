"""One short pull per cold camera, shared by every concurrent request, through a bounded pool.

Only the stream hub holds long-lived upstream sessions. A cold pull opens the camera with fast
probing, decodes the first keyframe (non-key frames are skipped by the decoder) and closes at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from camera_registry.egress import CameraNetworks
from camera_registry.probe import classify_error
from camera_registry.urls import FFMPEG_PROTOCOL_WHITELIST

__all__ = ["CameraWentLive", "ColdFrame", "ColdPullError", "ColdPuller", "pull_keyframe"]

log = logging.getLogger(__name__)


class ColdPullError(Exception):
    """The camera could not be read. ``status`` is offline|error, ``reason`` short and credential-free."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class CameraWentLive(Exception):
    """The camera became live in the hub while the pull waited for a slot: use the hub instead."""


@dataclass(frozen=True, slots=True)
class ColdFrame:
    """A decoded keyframe and when it was taken (epoch seconds)."""

    image: np.ndarray
    taken_at: float


def pull_keyframe(url: str, timeout_s: float, networks: CameraNetworks | None = None) -> ColdFrame:
    """Open the camera with fast probing, decode only keyframes, return the first one (blocking).

    Measured on the fixture: the pull ends within ~10 ms of the camera's next keyframe, so its
    latency is the wait for that keyframe (0 to one GOP); a camera that starts a new session with a
    keyframe answers in ~0.1 s (with probesize 32768 a 360p stream took 0.23 s: probing waited for data).
    """
    options = {
        "rtsp_transport": "tcp",
        "protocol_whitelist": FFMPEG_PROTOCOL_WHITELIST,
        "timeout": str(int(timeout_s * 1_000_000)),
        # Probing stops early (every fixture mount, SPS/PPS in the SDP or only in-band, H.265, sliced,
        # still decodes); the packets it read are still demuxed, so no keyframe is lost.
        "analyzeduration": "50000",
        "probesize": "8192",
    }
    deadline = time.monotonic() + timeout_s
    try:
        with (networks or CameraNetworks()).open(url, options=options, timeout=(timeout_s, timeout_s)) as c:
            vs = c.streams.video[0]
            vs.codec_context.skip_frame = "NONKEY"
            vs.codec_context.thread_count = 1  # one keyframe: decoder threads would only add thread churn
            for pkt in c.demux(vs):
                if time.monotonic() > deadline:
                    raise TimeoutError("no keyframe in time")
                for frame in pkt.decode():
                    return ColdFrame(frame.to_ndarray(format="bgr24"), time.time())
    except Exception as e:  # every failure becomes a fixed reason: FFmpeg's text may hold the URL
        status, reason = classify_error(e)
        raise ColdPullError(status.value, reason) from None
    raise ColdPullError("offline", "stream ended before a keyframe")


class ColdPuller:
    """Single flight per camera, at most ``pool_size`` upstream sessions at once, and at most
    ``pool_size`` session starts per second: a burst (a wall coming on screen) ramps up over a second
    instead of opening every session in the same instant, which on two cores stalled WebRTC viewers.

    ``went_live(camera_id)`` is asked when a pull gets its slot: if the hub has the camera by then,
    the pull is not made (:class:`CameraWentLive`).
    """

    def __init__(
        self,
        resolve_url: Callable[[str], Awaitable[str]],
        pool_size: int,
        timeout_s: float,
        went_live: Callable[[str], bool] | None = None,
        networks: CameraNetworks | None = None,
        through_hub: Callable[[str], Awaitable[ColdFrame]] | None = None,
        on_pulled: Callable[[str, ColdFrame], object] | None = None,
    ) -> None:
        self._resolve = resolve_url
        # Told of each pulled frame inside the shared pull, before it counts as finished: a request
        # arriving just after it ends finds the frame kept instead of starting a second pull.
        self._on_pulled = on_pulled
        # Sources FFmpeg cannot open (GB/T 28181 channels: the device must be INVITEd) are pulled
        # briefly through the stream hub instead, by this callable (a reader until the first keyframe).
        self._through_hub = through_hub
        self._networks = networks or CameraNetworks()
        self._went_live = went_live
        self._pool = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="snapshot-cold")
        self._sem = asyncio.Semaphore(pool_size)
        self._inflight: dict[str, asyncio.Future[ColdFrame]] = {}
        self._closed = False
        self.pool_size = pool_size
        self._spacing = 1.0 / pool_size
        self._next_start = 0.0
        self.timeout_s = timeout_s
        self.pulls = 0  # upstream sessions opened
        self.active = 0
        self.peak_active = 0

    @property
    def waiting(self) -> int:
        """Pulls queued or running."""
        return len(self._inflight)

    async def pull(self, camera_id: str) -> ColdFrame:
        """The camera's current keyframe; concurrent callers for one camera share one pull.
        After :meth:`close`, and for pulls that close ended, :class:`ColdPullError`."""
        if self._closed:
            raise ColdPullError("error", "shutting down")
        fut = self._inflight.get(camera_id)
        if fut is None:
            fut = asyncio.ensure_future(self._pull(camera_id))
            self._inflight[camera_id] = fut
            fut.add_done_callback(lambda _f: self._inflight.pop(camera_id, None))
        # A caller that gives up (client gone) does not cancel the pull the others share.
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if fut.cancelled() and self._closed and (task is None or not task.cancelling()):
                raise ColdPullError("error", "shutting down") from None  # close() ended the shared pull
            raise

    async def _pull(self, camera_id: str) -> ColdFrame:
        async with self._sem:
            await self._pace()
            if self._went_live is not None and self._went_live(camera_id):
                raise CameraWentLive(camera_id)
            try:
                url = await self._resolve(camera_id)
            except LookupError:
                raise ColdPullError("error", "camera not found") from None
            self.pulls += 1
            self.active += 1
            self.peak_active = max(self.peak_active, self.active)
            try:
                if self._through_hub is not None and not url.startswith(("rtsp://", "rtsps://")):
                    frame = await asyncio.wait_for(self._through_hub(camera_id), self.timeout_s)
                else:
                    loop = asyncio.get_running_loop()
                    frame = await loop.run_in_executor(self._pool, pull_keyframe, url, self.timeout_s, self._networks)
            finally:
                self.active -= 1
            if self._on_pulled is not None:
                self._on_pulled(camera_id, frame)
            return frame

    async def _pace(self) -> None:
        now = time.monotonic()
        start = max(now, self._next_start)
        self._next_start = start + self._spacing  # reserve the slot before sleeping: no lock needed
        if start > now:
            await asyncio.sleep(start - now)

    async def close(self) -> None:
        """End every pull (queued ones are not started; callers get :class:`ColdPullError`), then
        stop the pool. A pull already reading a camera ends in its thread within ``timeout_s``.

        The pulls are ended before the pool: a pull still queued for a slot would otherwise reach
        ``run_in_executor`` on a pool that was shut down ("cannot schedule new futures after
        shutdown") with nobody left to retrieve the error.
        """
        self._closed = True
        pulls = list(self._inflight.values())
        for fut in pulls:
            fut.cancel()
        await asyncio.gather(*pulls, return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
