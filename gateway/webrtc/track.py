"""aiortc video tracks: one fed by a hub reader (aiortc packetizes per viewer), and one that feeds nothing.

``PassthroughTrack`` is the per-viewer path (``webrtc.egress = "per_viewer"``): aiortc packetizes,
encrypts and sends every access unit for every viewer. ``FanoutTrack`` is what aiortc's sender holds
on the shared path (``"shared"``, see :mod:`gateway.webrtc.fanout`): the sender negotiates and sends
RTCP, but its RTP loop waits on this track until the session ends, and the camera's fan-out sends.
"""

from __future__ import annotations

import asyncio
import fractions
import time

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from streams import CLOCK_RATE, Reader, ReaderClosed

__all__ = ["FanoutTrack", "PassthroughTrack"]

_TIME_BASE = fractions.Fraction(1, CLOCK_RATE)
# Cached frames sent at attach time are stamped this far apart, so the browser decodes the
# backlog at once and shows live video instead of replaying the GOP in real time.
_BACKLOG_STEP = 90  # 1 ms
# ...but not all in one burst: many viewers joining at once would overflow socket buffers.
_BACKLOG_PACE_S = 0.004


class PassthroughTrack(MediaStreamTrack):
    """Yields ``av.Packet`` objects; aiortc packetizes them (no decoding, no encoding)."""

    kind = "video"

    def __init__(self, reader: Reader) -> None:
        super().__init__()
        self.reader = reader
        self._offset: int | None = None
        self._generation = reader.generation
        self._last_out = 0
        self._catching_up = False
        self.sent = 0
        self.first_sent_at: float | None = None

    async def recv(self) -> av.Packet:  # type: ignore[type-arg]
        """The next access unit as a packet with a continuous 90 kHz timestamp."""
        if self.readyState != "live":
            raise MediaStreamError
        if self.sent == 0:
            # Start from the newest queued keyframe (the GOP cache, or more if the handshake was slow),
            # then catch up: queued units go out stamped 1 ms apart, paced, until the queue is live.
            self.reader.skip_to_latest_keyframe()
            self._catching_up = self.reader.pending() > 1
        elif self._catching_up:
            await asyncio.sleep(_BACKLOG_PACE_S)
        try:
            au = await self.reader.get()
        except ReaderClosed:
            self.stop()
            raise MediaStreamError from None
        if self.reader.generation != self._generation:
            # The camera reconnected and its timestamps started again: keep ours continuous.
            self._generation = self.reader.generation
            self._offset = None
        if self._catching_up:
            out = self._last_out + _BACKLOG_STEP if self.sent else 0
            if self.reader.pending() <= 1:
                self._catching_up = False
                self._offset = out - au.pts
        else:
            if self._offset is None:
                self._offset = self._last_out + 3600 - au.pts if self.sent else -au.pts
            out = au.pts + self._offset
            if out <= self._last_out and self.sent:
                out = self._last_out + 1
                self._offset = out - au.pts
        self._last_out = out
        pkt = av.Packet(au.data)
        pkt.pts = out
        pkt.dts = out
        pkt.time_base = _TIME_BASE
        if self.first_sent_at is None:
            self.first_sent_at = time.monotonic()
        self.sent += 1
        return pkt


class FanoutTrack(MediaStreamTrack):
    """A video track whose ``recv`` never yields: the camera's fan-out sends this viewer's RTP."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._ended = asyncio.Event()

    async def recv(self) -> av.Packet:  # type: ignore[type-arg]
        """Wait until the track stops (aiortc's sender loop parks here instead of polling)."""
        await self._ended.wait()
        raise MediaStreamError

    def stop(self) -> None:
        """End the track; aiortc's sender loop returns."""
        super().stop()
        self._ended.set()
