"""A reader of a camera stream: a bounded queue that drops whole GOPs when its consumer lags."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from streams.packets import AccessUnit

__all__ = ["Reader", "ReaderClosed"]

log = logging.getLogger(__name__)


class ReaderClosed(Exception):
    """The reader was detached (the stream or the session ended)."""


class Reader:
    """One consumer of a camera's access units (a WebRTC viewer, an HLS muxer, a snapshotter).

    The hub pushes from the event loop; the consumer awaits :meth:`get`. When the queue is full the
    reader drops everything queued and then skips until the next keyframe, so the consumer resumes
    on a decodable picture; the source and the other readers never wait.
    """

    def __init__(
        self,
        camera_id: str,
        protocol: str,
        max_units: int,
        on_drop: Callable[[Reader], None] | None = None,
        on_first: Callable[[Reader], None] | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.protocol = protocol
        self.max_units = max_units
        self.created = time.monotonic()
        self.first_unit_at: float | None = None
        self.delivered = 0
        self.dropped_gops = 0
        self.dropped_units = 0
        self.backlog_units = 0  # units that came from the GOP cache at attach time
        self.generation = 0  # bumped when the upstream restarts (timestamps start again)
        self.passive = False  # True: does not keep the upstream open (see StreamHub.attach)
        # True: a viewer whose pictures come from a shared consumer (WebRTC's per-camera RTP fan-out):
        # the reader only counts it (viewers, ownership, idle close, revocation) and queues nothing.
        self.counts_only = False
        self._q: deque[AccessUnit] = deque()
        self._wake = asyncio.Event()
        self._skip_to_key = True  # a reader always starts on a keyframe
        self._closed: str | None = None
        self._on_drop = on_drop
        self._on_first = on_first
        self._last_drop_log = 0.0

    @property
    def closed_reason(self) -> str | None:
        """Why the reader was closed, or None while open."""
        return self._closed

    def push(self, au: AccessUnit) -> None:
        """Queue one unit (called by the hub on the event loop)."""
        if self._closed is not None or self.counts_only:
            return
        if self._skip_to_key:
            if not au.keyframe:
                self.dropped_units += 1
                return
            self._skip_to_key = False
        if len(self._q) >= self.max_units:
            self.dropped_units += len(self._q) + (0 if au.keyframe else 1)
            self._q.clear()
            self.dropped_gops += 1
            if self._on_drop:
                self._on_drop(self)
            now = time.monotonic()
            if now - self._last_drop_log > 10:
                self._last_drop_log = now
                log.warning(
                    "slow %s reader of camera %s: dropped a GOP (%d so far)",
                    self.protocol,
                    self.camera_id,
                    self.dropped_gops,
                )
            if not au.keyframe:
                self._skip_to_key = True
                return
        self._q.append(au)
        self._wake.set()

    def restart(self) -> None:
        """The upstream reconnected: drop stale units and resume at the next keyframe."""
        self._q.clear()
        self._skip_to_key = True
        self.generation += 1

    async def get(self) -> AccessUnit:
        """The next unit; raises :class:`ReaderClosed` once closed."""
        while not self._q:
            if self._closed is not None:
                raise ReaderClosed(self._closed)
            self._wake.clear()
            await self._wake.wait()
        au = self._q.popleft()
        if self.first_unit_at is None:
            self.first_unit_at = time.monotonic()
            if self._on_first:
                self._on_first(self)
        self.delivered += 1
        return au

    def note_first_unit(self) -> None:
        """A counts-only reader's viewer got its first picture from the shared consumer (observed like :meth:`get`)."""
        if self.first_unit_at is None:
            self.first_unit_at = time.monotonic()
            if self._on_first:
                self._on_first(self)

    def skip_to_latest_keyframe(self) -> int:
        """Drop queued units before the newest queued keyframe (the consumer fell a GOP behind); returns how many."""
        idx = max((i for i, au in enumerate(self._q) if au.keyframe), default=0)
        for _ in range(idx):
            self._q.popleft()
        self.dropped_units += idx
        return idx

    def drain(self) -> list[AccessUnit]:
        """Take every queued unit now (a consumer catching up without waiting)."""
        out = list(self._q)
        self._q.clear()
        self.delivered += len(out)
        return out

    def pending(self) -> int:
        """Units waiting in the queue."""
        return len(self._q)

    def close(self, reason: str = "closed") -> None:
        """Stop the reader; a waiting :meth:`get` raises :class:`ReaderClosed`."""
        if self._closed is None:
            self._closed = reason
            self._q.clear()
            self._wake.set()
