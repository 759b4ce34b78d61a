"""Console events through a Redis Stream, so an SSE console on any node gets every node's events.

``publish`` appends to the stream (``XADD ... MAXLEN ~ kept``) from one background writer that
keeps order and retries while Redis is away (bounded: ``pending_max`` events). Every node reads
the whole stream (``XREAD BLOCK`` from the last id it saw) into the same local replay buffer the
single-node bus uses, so event ids are the stream's ids on every node and a console that
reconnects to another node with ``Last-Event-ID`` resumes where it was.

Why plain ``XREAD`` and not a consumer group per node: each node must see every event (fan-out,
not work sharing), and its position is simply the last id it read; the at-least-once guarantee
for a console comes from that position plus ``Last-Event-ID``, both of which survive a node change.

Ids: the stream id ``<ms>-<seq>`` becomes the integer ``ms * 1000 + seq`` (SSE ids must be
digits here); more than 1000 events in one millisecond would collide, far beyond what consoles see.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError, ResponseError

from gateway.events import Audience, Event, LocalEventBus

__all__ = ["RedisEventBus", "event_id", "stream_id"]

log = logging.getLogger(__name__)


def event_id(stream_id_: bytes | str) -> int:
    """``"1700000000000-3"`` -> ``1700000000000003``."""
    s = stream_id_.decode() if isinstance(stream_id_, bytes) else stream_id_
    ms, _, seq = s.partition("-")
    return int(ms) * 1000 + int(seq or 0)


def stream_id(event_id_: int) -> str:
    """The inverse of :func:`event_id`."""
    return f"{event_id_ // 1000}-{event_id_ % 1000}"


class RedisEventBus(LocalEventBus):
    """The cluster's :class:`~gateway.events.EventBus`: a Redis Stream shared by every node."""

    def __init__(
        self,
        client: Any,
        *,
        key: str = "liandong:events",
        keep: int = 10_000,
        stream_keep: int = 10_000,
        heartbeat_s: float = 15.0,
        queue: int = 1000,
        pending_max: int = 10_000,
    ) -> None:
        super().__init__(keep, heartbeat_s, queue)
        self.r = client
        self.key = key
        self.stream_keep = stream_keep
        self._outbox: deque[dict[str, str]] = deque(maxlen=pending_max)
        self._outbox_ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._last = "0-0"  # the newest stream id read
        self._floor = 0  # events with ids <= floor are gone from the buffer
        self._tasks: list[asyncio.Task[None]] = []
        # An event is rendered by a policy at least as new as the one its publisher had: an alarm's
        # incident grant is committed on one node just before its event, and a console elsewhere
        # must not see the event with the new cameras cut out because its node reloads a moment later.
        self.policy_revision: Callable[[], int] = lambda: 0
        self.catch_up: Callable[[], Awaitable[Any]] | None = None
        self.catch_up_after_s = 0.3
        self.published = 0
        self.dropped = 0

    # -- publishing ----------------------------------------------------------------------------
    def _publish(self, type_: str, data: dict[str, Any], audience: Audience) -> Event:
        """Queue the event for the stream; consoles get it (with its stream id) once it is read back."""
        if len(self._outbox) == self._outbox.maxlen:
            self.dropped += 1
            log.error("cluster events: outbox full while Redis is away; the oldest event is dropped")
        self._outbox.append(
            {
                "type": type_,
                "data": json.dumps(data, ensure_ascii=False),
                **audience.to_fields(),
                "ts": repr(time.time()),
                "rev": str(self.policy_revision()),
            }
        )
        self._outbox_ready.set()
        self._drained.clear()
        return Event(0, type_, data, audience)

    async def _writer(self) -> None:
        delay = 0.2
        while True:
            await self._outbox_ready.wait()
            while self._outbox:
                fields = self._outbox[0]
                try:
                    await self.r.xadd(self.key, fields, maxlen=self.stream_keep, approximate=True)
                except (RedisError, OSError) as e:
                    log.warning("cluster events: XADD failed (%s); retrying in %.1f s", type(e).__name__, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                delay = 0.2
                self.published += 1
                self._outbox.popleft()
            self._outbox_ready.clear()
            self._drained.set()

    # -- reading -------------------------------------------------------------------------------
    def _event(self, sid: bytes | str, f: dict[bytes, bytes]) -> Event:
        fields = {k.decode(): v.decode() for k, v in f.items()}
        return Event(
            event_id(sid),
            fields.get("type", "event"),
            json.loads(fields.get("data", "{}")),
            Audience.from_fields(fields),
            float(fields.get("ts", "0")),
        )

    def _deliver(self, ev: Event) -> None:
        if self._buffer.maxlen is not None and len(self._buffer) == self._buffer.maxlen:
            self._floor = self._buffer[0].id
        self._buffer.append(ev)
        self._next = ev.id + 1
        for sub in list(self._subs):
            try:
                sub.queue.put_nowait(ev)
            except asyncio.QueueFull:
                self._close(sub, "too far behind; reconnect to resume")

    def _missed(self, last_id: int) -> bool:
        return last_id < self._floor

    async def _policy_at_least(self, rev: int) -> None:
        """Hold delivery until this node's policy has the publisher's revision (bounded: 1 s)."""
        if self.policy_revision() >= rev:
            return
        started = time.monotonic()
        caught_up = False
        while self.policy_revision() < rev and time.monotonic() - started < 1.0:
            if not caught_up and self.catch_up is not None and time.monotonic() - started > self.catch_up_after_s:
                caught_up = True  # the change message did not come (yet): read the policy now
                try:
                    await self.catch_up()
                except Exception:  # delivery goes on with what we have
                    log.exception("cluster events: policy catch-up failed")
                continue
            await asyncio.sleep(0.01)

    async def load(self) -> None:
        """Fill the replay buffer with the stream's newest events (at start)."""
        keep = self._buffer.maxlen or 10_000
        rows = await self.r.xrevrange(self.key, "+", "-", count=keep)
        try:
            info = await self.r.xinfo_stream(self.key)
            deleted = info.get("max-deleted-entry-id") or b"0-0"
        except ResponseError:  # no stream yet
            deleted = b"0-0"
        self._floor = event_id(deleted)
        for sid, f in reversed(rows):
            self._deliver(self._event(sid, f))
            self._last = sid.decode() if isinstance(sid, bytes) else sid
        if len(rows) == keep and rows:
            self._floor = max(self._floor, event_id(rows[-1][0]) - 1)

    async def _reader(self) -> None:
        delay = 0.2
        while True:
            try:
                got = await self.r.xread({self.key: self._last}, block=1000, count=500)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as e:
                log.warning("cluster events: XREAD failed (%s); retrying in %.1f s", type(e).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            for _key, entries in got or []:
                for sid, f in entries:
                    await self._policy_at_least(int(f.get(b"rev", b"0") or 0))
                    self._last = sid.decode() if isinstance(sid, bytes) else sid
                    try:
                        self._deliver(self._event(sid, f))
                    except (ValueError, KeyError):
                        log.warning("cluster events: skipped a malformed entry %s", self._last)

    async def start(self) -> None:
        """Load the recent events and start the reader and the writer."""
        try:
            await self.load()
        except (RedisError, OSError) as e:
            log.warning("cluster events: could not load recent events (%s)", type(e).__name__)
        self._tasks = [
            asyncio.create_task(self._reader(), name="cluster-events-read"),
            asyncio.create_task(self._writer(), name="cluster-events-write"),
        ]

    async def stop(self) -> None:
        """Flush what can be flushed (1 s), then stop and close the connection."""
        if self._outbox and len(self._tasks) > 1:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), 1.0)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        with contextlib.suppress(RedisError, OSError):
            await self.r.aclose()
