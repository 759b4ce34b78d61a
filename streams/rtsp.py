"""A camera's upstream: one RTSP session, PyAV demux (no decoding) in a thread, with reconnects."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Protocol

from av.container import InputContainer

from streams.packets import AccessUnitAssembler
from streams.ports import StreamInfo, UpstreamCallbacks, UpstreamState, UpstreamTimeouts

__all__ = ["CameraOpener", "RtspUpstream"]

log = logging.getLogger(__name__)
_RAN_WELL_S = 5.0  # a session that lasted this long and dropped is retried at once, not after the backoff
_BYTES_POST_S = 0.25  # how often the received byte count is handed to the loop (bitrate, metrics)


class CameraOpener(Protocol):
    """Where the stream core opens cameras (``camera_registry.opener.CheckedOpener`` in the app): which
    hosts may be reached and which FFmpeg protocols may run are its decision, not the puller's."""

    def open(self, url: str, *, options: dict[str, str], timeout: tuple[float, float]) -> InputContainer:
        """``av.open`` the camera (blocking) with these demuxer ``options``; returns the input container."""
        ...

    def failure_reason(self, error: BaseException) -> str:
        """A fixed, credential-free reason for an open or read error (shown to operators)."""
        ...


class RtspUpstream:
    """Pulls one camera in a background thread and hands access units to the event loop (an
    :class:`~streams.ports.Upstream`).

    The ``callbacks`` run on ``loop``. The URL (with credentials) is kept only in memory and never logged.
    """

    def __init__(
        self,
        camera_id: str,
        url: str,
        loop: asyncio.AbstractEventLoop,
        *,
        callbacks: UpstreamCallbacks,
        timeouts: UpstreamTimeouts = UpstreamTimeouts(),
        opener: CameraOpener,
    ) -> None:
        self.camera_id = camera_id
        self._url = url
        self._opener = opener  # checks where the camera may be reached on every (re)connect, after DNS
        self._loop = loop
        self._cb = callbacks
        self.timeouts = timeouts
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"upstream-{camera_id}", daemon=True)
        self.attempts = 0

    def start(self) -> None:
        """Start pulling."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop (it exits within the read timeout)."""
        self._stop.set()

    async def join(self, wait_s: float = 10.0) -> None:
        """Wait for the thread to end, off the event loop."""
        await asyncio.to_thread(self._thread.join, wait_s)

    @property
    def alive(self) -> bool:
        """The thread is running."""
        return self._thread.is_alive()

    def _post(self, fn: Callable[..., None], *args: object) -> None:
        if self._stop.is_set() and fn is self._cb.on_unit:
            return
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed during shutdown
            self._stop.set()

    def _run(self) -> None:
        delay = self.timeouts.backoff_initial_s
        failures = 0
        first = True
        while not self._stop.is_set():
            self._post(self._cb.on_state, UpstreamState.connecting if first else UpstreamState.reconnecting, None)
            first = False
            self.attempts += 1
            started = time.monotonic()
            reason = self._session()
            if self._stop.is_set():
                break
            ran_well = reason is None and time.monotonic() - started >= _RAN_WELL_S
            if reason is None:  # the session ran and ended: retry soon
                failures = 0
                delay = self.timeouts.backoff_initial_s
                reason = "camera closed the stream"
            else:
                failures += 1
            state = UpstreamState.failed if failures >= self.timeouts.failed_after else UpstreamState.reconnecting
            self._post(self._cb.on_state, state, reason)
            wait = delay * random.uniform(0.8, 1.2)
            if ran_well:
                # A stream that ran for a while dropped (a flap): viewers are waiting, retry at once (a
                # little jitter, in case a network blip dropped many cameras at the same moment).
                wait = random.uniform(0.0, 0.1)
            log.info("camera %s upstream: %s; retrying in %.1f s", self.camera_id, reason, wait)
            if self._stop.wait(wait):
                break
            delay = min(delay * 2, self.timeouts.backoff_max_s)
        self._post(self._cb.on_state, UpstreamState.idle, None)

    def _session(self) -> str | None:
        """One RTSP session; returns a failure reason, or None when it ran and then ended."""
        # No "fflags nobuffer": it discards the packets read while probing, and the first of them is
        # the keyframe a cold viewer needs (measured: +1 s to first frame with a 2 s GOP).
        options = {
            "rtsp_transport": "tcp",
            "timeout": str(int(self.timeouts.read_s * 1_000_000)),
            "analyzeduration": "1000000",
            "probesize": "500000",
        }
        try:
            timeout = (self.timeouts.open_s, self.timeouts.read_s)
            container = self._opener.open(self._url, options=options, timeout=timeout)
        except Exception as e:  # every open failure becomes a state with a safe reason
            return self._opener.failure_reason(e)
        ran = False
        try:
            if not container.streams.video:
                return "no video stream"
            vs = container.streams.video[0]
            ctx = vs.codec_context
            rate = vs.average_rate or vs.guessed_rate
            extradata = bytes(ctx.extradata or b"")
            self._post(
                self._cb.on_info,
                StreamInfo(ctx.name, ctx.width, ctx.height, extradata, float(rate) if rate else None),
            )
            self._post(self._cb.on_state, UpstreamState.live, None)
            asm = AccessUnitAssembler(ctx.name, extradata)
            tb = vs.time_base
            # Byte counts go to the loop in batches: every post wakes the loop up (a syscall), and a
            # multi-slice camera delivers several packets per picture.
            unposted, posted_at = 0, 0.0
            for pkt in container.demux(vs):
                if self._stop.is_set():
                    break
                if pkt.size == 0:
                    break  # end of stream
                ran = True
                data = bytes(pkt)
                unposted += len(data)
                for au in asm.feed(data, pkt.pts, tb):
                    self._post(self._cb.on_unit, au)
                if time.monotonic() - posted_at >= _BYTES_POST_S:
                    self._post(self._cb.on_bytes, unposted)
                    unposted, posted_at = 0, time.monotonic()
            return None if ran else "no packets"
        except Exception as e:  # a read error ends the session; the loop reconnects
            return None if ran else self._opener.failure_reason(e)
        finally:
            try:
                container.close()
            except Exception:  # closing a broken connection may fail too
                log.debug("close failed for camera %s", self.camera_id)
