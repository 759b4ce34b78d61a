"""One short pull per cold camera, shared by every concurrent request, through a bounded pool."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import av
import numpy as np

from camera_registry.probe import classify_error
from camera_registry.urls import FFMPEG_PROTOCOL_WHITELIST

__all__ = ["ColdFrame", "ColdPullError", "ColdPuller"]

log = logging.getLogger(__name__)


class ColdPullError(Exception):
    """The camera could not be read; the message is a short, credential-free reason."""


@dataclass(frozen=True, slots=True)
class ColdFrame:
    """A decoded keyframe and when it was taken."""

    image: np.ndarray
    taken_at: float


def pull_keyframe(url: str, timeout_s: float) -> ColdFrame:
    """Open the camera with fast probing, decode only keyframes, return the first one (blocking)."""
    options = {
        "rtsp_transport": "tcp",
        "protocol_whitelist": FFMPEG_PROTOCOL_WHITELIST,
        "timeout": str(int(timeout_s * 1_000_000)),
        "analyzeduration": "200000",
        "probesize": "32768",
    }
    deadline = time.monotonic() + timeout_s
    try:
        with av.open(url, options=options, timeout=(timeout_s, timeout_s)) as c:
            vs = c.streams.video[0]
            vs.codec_context.skip_frame = "NONKEY"
            for pkt in c.demux(vs):
                if time.monotonic() > deadline:
                    raise TimeoutError("no keyframe in time")
                for frame in pkt.decode():
                    return ColdFrame(frame.to_ndarray(format="bgr24"), time.time())
    except Exception as e:  # every failure becomes a safe reason
        raise ColdPullError(classify_error(e)[1]) from None
    raise ColdPullError("stream ended before a keyframe")


class ColdPuller:
    """Single flight per camera, at most ``pool_size`` pulls at once."""

    def __init__(self, resolve_url: Callable[[str], Awaitable[str]], pool_size: int, timeout_s: float) -> None:
        self._resolve = resolve_url
        self._pool = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="snapshot-cold")
        self._sem = asyncio.Semaphore(pool_size)
        self._inflight: dict[str, asyncio.Future[ColdFrame]] = {}
        self.timeout_s = timeout_s
        self.pulls = 0

    async def pull(self, camera_id: str) -> ColdFrame:
        """The camera's current keyframe; concurrent callers for one camera share one pull."""
        fut = self._inflight.get(camera_id)
        if fut is None:
            fut = asyncio.ensure_future(self._pull(camera_id))
            self._inflight[camera_id] = fut
            fut.add_done_callback(lambda _f: self._inflight.pop(camera_id, None))
        return await asyncio.shield(fut)

    async def _pull(self, camera_id: str) -> ColdFrame:
        url = await self._resolve(camera_id)
        async with self._sem:
            self.pulls += 1
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, pull_keyframe, url, self.timeout_s)

    def close(self) -> None:
        """Stop the pool (pulls under way finish in their threads)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
