"""Anonymous refusals (401s, rejected alarm signatures, failed and throttled logins) audited in
aggregate, off the request path.

Anyone who reaches the port can cause these, so writing one hash-chained audit entry per refusal
let a client grow the audit without bound, and every such write queued on the audit's one write
lock in front of stream starts. Here a refusal is only counted in memory (no await, no lock): per
kind and client address, the first refusal of a window is written in full, and when the window
closes one more entry says how many followed (``count=N`` in its detail, the window in its
``start``/``end``), with a bounded breakdown of what they were. Counts are exact: beyond
``max_addresses`` open windows, further addresses are counted together under address ``*``. A
background task does the writing; :meth:`RefusalAudit.close` writes everything still open.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["OVERFLOW_ADDRESS", "AuditSink", "RefusalAudit", "refusal_count"]

log = logging.getLogger(__name__)
OVERFLOW_ADDRESS = "*"
_MAX_WHATS = 32  # distinct descriptions kept per window; the rest are counted as "other"
_WHAT_CHARS = 200
_DETAIL_CHARS = 3500
_COUNT = re.compile(r"^count=(\d+);")


class AuditSink(Protocol):
    """Where the entries go (the hash-chained audit log in production)."""

    async def record(self, kind: str, **fields: Any) -> None:
        """Append one entry."""
        ...


def refusal_count(detail: str | None, start: str | None) -> int:
    """How many refusals an audit entry of a refusal kind stands for: 1 for a refusal written in
    full, N for a window's summary (``start`` set, detail ``count=N; ...``)."""
    if start is None:
        return 1
    m = _COUNT.match(detail or "")
    return int(m.group(1)) if m else 1


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")


@dataclass
class _Window:
    """Refusals of one kind from one address since ``opened``."""

    opened: float  # monotonic
    opened_wall: float
    more: int = 0  # refusals after the first (the first is written in full)
    whats: Counter[str] = field(default_factory=Counter)

    def add(self, what: str) -> None:
        self.more += 1
        what = what[:_WHAT_CHARS]
        if what in self.whats or len(self.whats) < _MAX_WHATS:
            self.whats[what] += 1
        else:
            self.whats["other"] += 1


class RefusalAudit:
    """Counts anonymous refusals in memory; a background task writes them to ``audit`` aggregated.

    :meth:`note` is synchronous and never touches the database, so a burst of refusals neither
    slows its own replies nor queues audit writes in front of an authorized action.
    """

    def __init__(
        self,
        audit: AuditSink,
        window_s: float,
        max_addresses: int,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.audit = audit
        self.window_s = window_s
        self.max_addresses = max_addresses
        self._clock = clock
        self._wall = wall
        self._windows: dict[tuple[str, str], _Window] = {}
        self._overflow: dict[str, _Window] = {}  # kind -> refusals from addresses beyond the cap
        self._pending: list[tuple[str, dict[str, Any]]] = []  # first refusals, to be written in full
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.noted = 0  # every refusal ever noted (for tests and the curious)

    def note(self, kind: str, address: str | None, what: str, **fields: Any) -> None:
        """Count one refusal of ``kind`` from ``address``. ``what`` says briefly what was refused (a
        path, a username) for the window's breakdown; ``fields`` are the audit fields written for
        the first refusal of a window."""
        self.noted += 1
        addr = (address or "-")[:64]
        key = (kind, addr)
        now = self._clock()
        w = self._windows.get(key)
        if w is not None and now - w.opened >= self.window_s:
            self._close(key, w)
            w = None
        if w is not None:
            w.add(what)
            return
        if len(self._windows) >= self.max_addresses:
            self._close_expired(now)
        if len(self._windows) >= self.max_addresses:
            ow = self._overflow.get(kind)
            if ow is None:
                ow = self._overflow[kind] = _Window(now, self._wall())
            ow.add(what)
            return
        self._windows[key] = _Window(now, self._wall())
        self._pending.append((kind, {**fields, "address": addr}))
        self._wake.set()

    def _close(self, key: tuple[str, str], w: _Window) -> None:
        del self._windows[key]
        if w.more:
            self._pending.append((key[0], self._summary(key[1], w, "more after the first")))

    def _close_expired(self, now: float, *, everything: bool = False) -> None:
        # Windows are kept in the order they opened (a reopened one is inserted anew): stop at the
        # first still open.
        for key, w in list(self._windows.items()):
            if not everything and now - w.opened < self.window_s:
                break
            self._close(key, w)
        for kind, ow in list(self._overflow.items()):
            if everything or now - ow.opened >= self.window_s:
                del self._overflow[kind]
                self._pending.append((kind, self._summary(OVERFLOW_ADDRESS, ow, "from addresses beyond the tracked")))

    def _summary(self, address: str, w: _Window, what: str) -> dict[str, Any]:
        detail = f"count={w.more}; {what} in this window:"
        shown_kinds = shown = 0
        for desc, n in w.whats.most_common():
            item = f" {n}x {desc};"
            if len(detail) + len(item) > _DETAIL_CHARS:
                detail += f" and {w.more - shown} more of {len(w.whats) - shown_kinds} other kinds"
                break
            detail += item
            shown_kinds += 1
            shown += n
        return {"address": address, "detail": detail, "start": _iso(w.opened_wall), "end": _iso(self._wall())}

    async def flush(self, *, close_all: bool = False) -> int:
        """Write the entries due now (every open window too with ``close_all``); the number written."""
        self._close_expired(self._clock(), everything=close_all)
        written = 0
        async with self._flushing:  # after another flush's writes: when this returns, all is written
            while self._pending:
                kind, fields = self._pending.pop(0)
                # One at a time: the audit's lock is FIFO, so an authorized action waits for one write
                # at most. Shielded: stopping the writer mid-write neither loses nor repeats the entry.
                await asyncio.shield(self.audit.record(kind, **fields))
                written += 1
        return written

    def start(self) -> None:
        """Start the background writer (in the running event loop)."""
        if self._task is None:
            self._wake = asyncio.Event()  # bound to this loop
            if self._pending:
                self._wake.set()
            self._task = asyncio.create_task(self._run(), name="refusal-audit")

    async def _run(self) -> None:
        tick = min(1.0, self.window_s / 4)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), tick)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # the writer must survive a failed write (the audit logs its own failures)
                log.exception("writing refusal audit entries failed")

    async def close(self) -> None:
        """Stop the writer and write every open window's count."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush(close_all=True)
