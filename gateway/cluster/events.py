"""Console events through a Redis Stream, so an SSE console on any node gets every node's events.

``publish`` appends to the stream (``XADD ... MAXLEN ~ kept``) from one background writer that
keeps order and retries while Redis is away (bounded: ``pending_max`` events). Every node reads
the whole stream into the same local replay buffer the single-node bus uses, so event ids are the
stream's ids on every node and a console that reconnects to another node with ``Last-Event-ID``
resumes where it was.

Each node reads through **its own consumer group** (group and consumer named by the node id, which
is stable over restarts). Every node still sees every event: one group per node is fan-out, not
work sharing. What the group adds over a plain ``XREAD`` from the last id the node saw:

- **Delivery into each node, at least once, across its restart.** An entry the node has read
  stays pending in its group until it is in the node's replay buffer (``XACK`` after that). A node
  that dies between the two re-reads its pending entries first when it starts again under the same
  id (``XREADGROUP ... 0``), then goes on with new ones (``>``). It does the same after any lost
  connection, and when it finds something of its own pending between two reads (checked every
  5 s): a read whose reply was lost on the way, which the client library retries by itself with
  ``>``, past the lost entries.
- **The position is kept in Redis**, not only in the process: on start the node fills its buffer
  with the newest events (as before), creates its group where that buffer ends if the group is
  missing, and otherwise carries on from where the group stands. Ids at or below the newest one in
  the buffer are acknowledged and skipped, so the buffer never holds an event twice.
- **Lag is visible**: ``XINFO GROUPS`` gives each node's pending count and how many entries it has
  not read yet; ``GET /api/cluster`` shows them, so a node falling behind can be seen.

When the group is gone (Redis restarted without persistence: ``NOGROUP``) the node creates it
again at the newest id it has and reads on, with the same backoff as for a lost connection. A
node that stops (or dies) keeps its group, so it resumes from its position when it comes back;
groups of nodes that have had no heartbeat and whose consumer has been idle for longer than
``cluster.event_group_idle_s`` are deleted by the other nodes (checked every
``event_group_idle_s / 5`` seconds, between 1 s and 5 minutes), so groups of retired nodes do not
pile up, each showing an ever-growing lag. Node ids must be unique: two nodes with one id would
share a group and each take in only part of the events.

The console's own guarantee is unchanged: its position is its ``Last-Event-ID``, which every node
understands because the ids are the stream's.

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

__all__ = ["STREAM_KEY", "RedisEventBus", "entry_fields", "event_id", "stream_id"]

log = logging.getLogger(__name__)

STREAM_KEY = "liandong:events"


def event_id(stream_id_: bytes | str) -> int:
    """``"1700000000000-3"`` -> ``1700000000000003``."""
    s = stream_id_.decode() if isinstance(stream_id_, bytes) else stream_id_
    ms, _, seq = s.partition("-")
    return int(ms) * 1000 + int(seq or 0)


def stream_id(event_id_: int) -> str:
    """The inverse of :func:`event_id`."""
    return f"{event_id_ // 1000}-{event_id_ % 1000}"


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _order(sid: str) -> tuple[int, int]:
    """A stream id as a sortable pair (the integer event id collides past 1000 entries per ms)."""
    ms, _, seq = sid.partition("-")
    return int(ms), int(seq or 0)


def entry_fields(
    type_: str, data: dict[str, Any], audience: Audience = Audience(), *, revision: int = 0
) -> dict[str, str]:
    """One event as stream entry fields (also written by the CLI for its policy changes).

    ``revision`` is the policy revision the publisher had: readers hold the event until their
    policy is at least that new."""
    return {
        "type": type_,
        "data": json.dumps(data, ensure_ascii=False),
        **audience.to_fields(),
        "ts": repr(time.time()),
        "rev": str(revision),
    }


class RedisEventBus(LocalEventBus):
    """The cluster's :class:`~gateway.events.EventBus`: a Redis Stream shared by every node."""

    def __init__(
        self,
        client: Any,
        *,
        group: str,
        key: str = STREAM_KEY,
        keep: int = 10_000,
        stream_keep: int = 10_000,
        heartbeat_s: float = 15.0,
        queue: int = 1000,
        pending_max: int = 10_000,
        group_idle_s: float = 3600.0,
        policy_revision: Callable[[], int] = lambda: 0,
        catch_up: Callable[[], Awaitable[Any]] | None = None,
        heartbeating: Callable[[list[str]], Awaitable[set[str]]] | None = None,
    ) -> None:
        super().__init__(keep, heartbeat_s, queue)
        self.r = client
        self.key = key
        self.stream_keep = stream_keep
        # This node's consumer group (and its one consumer): the node id, stable over restarts.
        self.group = group
        self.group_idle_s = group_idle_s
        # Which of these node ids heartbeat now (the node's leases; without it no group is ever removed).
        self.heartbeating = heartbeating
        self._dead_since: dict[str, float] = {}  # groups without a consumer: when first seen without heartbeat
        self._loaded = False
        self._stopping = False
        # Between two reads nothing of ours should be pending; if something is, a reply was lost on
        # the way (the client retries a failed read by itself, with ">", past the lost entries).
        self.pending_check_s = 5.0
        self._outbox: deque[dict[str, str]] = deque(maxlen=pending_max)
        self._outbox_ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._last = "0-0"  # the newest stream id read
        self._floor = 0  # events with ids <= floor are gone from the buffer
        self._tasks: list[asyncio.Task[None]] = []
        # An event is rendered by a policy at least as new as the one its publisher had: an alarm's
        # incident grant is committed on one node just before its event, and a console elsewhere
        # must not see the event with the new cameras cut out because its node reloads a moment later.
        # The revision of the policy this node enforces, and how to load a newer one.
        self.policy_revision = policy_revision
        self.catch_up = catch_up
        self.catch_up_after_s = 0.3
        self.published = 0
        self.dropped = 0
        self.acked = 0  # entries acknowledged in this node's group
        self.skipped = 0  # entries read again that were already in the buffer (not delivered twice)
        self.groups_removed: list[str] = []  # groups of dead nodes this node deleted

    # -- publishing ----------------------------------------------------------------------------
    def _publish(self, type_: str, data: dict[str, Any], audience: Audience) -> Event:
        """Queue the event for the stream; consoles get it (with its stream id) once it is read back."""
        if len(self._outbox) == self._outbox.maxlen:
            self.dropped += 1
            log.error("cluster events: outbox full while Redis is away; the oldest event is dropped")
        self._outbox.append(entry_fields(type_, data, audience, revision=self.policy_revision()))
        self._outbox_ready.set()
        self._drained.clear()
        return Event(0, type_, data, audience)

    async def _writer(self) -> None:
        delay = 0.2
        while not self._stopping:
            await self._outbox_ready.wait()
            while self._outbox and not self._stopping:
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
            self._last = _text(sid)
        if len(rows) == keep and rows:
            self._floor = max(self._floor, event_id(rows[-1][0]) - 1)
        self._loaded = True

    async def _join(self) -> None:
        """(Re)connected: fill the buffer if that has not worked yet, and make sure our group exists."""
        if not self._loaded:
            await self.load()
        try:
            # Where the buffer ends: what comes after it is new to this node.
            await self.r.xgroup_create(self.key, self.group, id=self._last, mkstream=True)
            log.info("cluster events: consumer group %s created at %s", self.group, self._last)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
            # The group exists: carry on from its position (entries already loaded are skipped).

    async def _take(self, entries: list[tuple[bytes | str, dict[bytes, bytes] | None]]) -> None:
        """Put read entries into the buffer (once each), then acknowledge them all."""
        ids: list[str] = []
        for sid_, f in entries:
            sid = _text(sid_)
            ids.append(sid)
            if not f:
                continue  # a pending entry trimmed from the stream before this node took it in
            if _order(sid) <= _order(self._last):
                self.skipped += 1  # already in the buffer (loaded at start, or read before a restart)
                continue
            await self._policy_at_least(int(f.get(b"rev", b"0") or 0))
            self._last = sid
            try:
                self._deliver(self._event(sid, f))
            except (ValueError, KeyError):
                log.warning("cluster events: skipped a malformed entry %s", sid)
        if ids:
            await self.r.xack(self.key, self.group, *ids)
            self.acked += len(ids)

    async def _reader(self) -> None:
        delay = 0.2
        joined = False
        cursor: str | None = None  # while re-reading our pending entries: the last one seen; then None
        checked = time.monotonic()
        while not self._stopping:
            try:
                if not joined:
                    await self._join()
                    joined, cursor = True, "0-0"
                elif cursor is None and time.monotonic() - checked > self.pending_check_s:
                    checked = time.monotonic()
                    if (await self.r.xpending(self.key, self.group))["pending"]:
                        log.warning("cluster events: entries read but never received (a lost reply); reading again")
                        cursor = "0-0"
                got = await self.r.xreadgroup(
                    self.group,
                    self.group,
                    {self.key: cursor or ">"},
                    count=500,
                    block=None if cursor else 1000,
                )
                entries = [e for _key, es in got or [] for e in es]
                if cursor is not None:  # our pending entries first (read before a crash, not acknowledged)
                    if not entries:
                        cursor = None
                        continue
                    cursor = _text(entries[-1][0])
                await self._take(entries)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as e:
                # Also NOGROUP (Redis restarted without persistence, or the group was deleted):
                # rejoin creates it again where this node's buffer ends and re-reads pending entries.
                joined = False
                why = "group gone" if "NOGROUP" in str(e) else type(e).__name__
                log.warning("cluster events: XREADGROUP failed (%s); retrying in %.1f s", why, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2

    # -- consumer groups -----------------------------------------------------------------------
    async def groups(self) -> dict[str, dict[str, Any]]:
        """Each node's group: pending (read, not yet acknowledged), lag (entries not read yet;
        None while Redis cannot count them) and the last id delivered to it."""
        try:
            rows = await self.r.xinfo_groups(self.key)
        except ResponseError:  # no stream yet
            return {}
        out: dict[str, dict[str, Any]] = {}
        for g in rows:
            lag = g.get("lag")
            out[_text(g["name"])] = {
                "pending": int(g["pending"]),
                "lag": None if lag is None else int(lag),
                "last_delivered_id": _text(g["last-delivered-id"]),
                "consumers": int(g["consumers"]),
            }
        return out

    async def remove_dead_groups(self) -> list[str]:
        """Delete the groups of nodes that have had no heartbeat for longer than ``group_idle_s``
        (measured by their consumer's idle time: a live node reads at least once a second).
        Returns the groups deleted."""
        if self.heartbeating is None:
            return []
        try:
            rows = await self.r.xinfo_groups(self.key)
        except ResponseError:
            return []
        others = [n for n in (_text(g["name"]) for g in rows) if n != self.group]
        live = await self.heartbeating(others) if others else set()
        now = time.monotonic()
        for name in list(self._dead_since):
            if name not in others or name in live:
                del self._dead_since[name]
        removed: list[str] = []
        for name in others:
            if name in live:
                continue
            consumers = await self.r.xinfo_consumers(self.key, name)
            if consumers:
                idle_s = min(int(c["idle"]) for c in consumers) / 1000
            else:  # created but never read from: count from when this node first saw it dead
                idle_s = now - self._dead_since.setdefault(name, now)
            if idle_s <= self.group_idle_s:
                continue
            await self.r.xgroup_destroy(self.key, name)
            self._dead_since.pop(name, None)
            removed.append(name)
            log.info("cluster events: removed the consumer group of node %s (no heartbeat, idle %.0f s)", name, idle_s)
        self.groups_removed.extend(removed)
        return removed

    async def _janitor(self) -> None:
        every = min(max(self.group_idle_s / 5, 1.0), 300.0)
        while not self._stopping:
            await asyncio.sleep(every)
            try:
                await self.remove_dead_groups()
            except (RedisError, OSError) as e:
                log.debug("cluster events: group clean-up skipped (%s)", type(e).__name__)

    async def start(self) -> None:
        """Load the recent events and start the reader (which joins this node's group), the writer
        and the clean-up of dead nodes' groups."""
        try:
            await self.load()
        except (RedisError, OSError) as e:
            log.warning("cluster events: could not load recent events (%s)", type(e).__name__)
        self._tasks = [
            asyncio.create_task(self._reader(), name="cluster-events-read"),
            asyncio.create_task(self._writer(), name="cluster-events-write"),
            asyncio.create_task(self._janitor(), name="cluster-events-groups"),
        ]

    async def stop(self) -> None:
        """Flush what can be flushed (1 s), then stop and close the connection. The group stays:
        the node resumes from its position when it starts again."""
        if self._outbox and self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), 1.0)
        self._stopping = True
        # redis-py can swallow a cancellation that arrives while it sets a command up (seen with
        # redis-py 8 on Python 3.11): the loops also end by the flag, a blocking read returns
        # within 1 s, and a task still running is cancelled again.
        running = [t for t in self._tasks if not t.done()]
        for _ in range(3):
            if not running:
                break
            for t in running:
                t.cancel()
            _done, pending = await asyncio.wait(running, timeout=2.0)
            running = list(pending)
        if running:
            log.warning("cluster events: %d task(s) did not stop", len(running))
        for t in self._tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                log.warning("cluster events: task %s had failed: %r", t.get_name(), t.exception())
        with contextlib.suppress(RedisError, OSError):
            await self.r.aclose()
