"""Which cameras the consoles are showing now, so the refresher keeps those thumbnails fresh."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["InterestBoard", "Watched"]


@dataclass(frozen=True, slots=True)
class Watched:
    """A camera some consoles show: how many, and the widths they asked for (may be empty)."""

    camera_id: str
    consoles: int
    widths: tuple[int, ...]


class InterestBoard:
    """Consoles report cameras as they come on screen (and again while they stay there); each
    (console, camera) lapses ``ttl_s`` after its last report, so a closed tab stops counting by itself.

    Bounded: at most ``max_consoles`` consoles and ``max_per_console`` cameras each (the entries
    that would lapse first make room).
    """

    def __init__(self, ttl_s: float, max_consoles: int = 10_000, max_per_console: int = 5_000) -> None:
        self.ttl_s = ttl_s
        self.max_consoles = max_consoles
        self.max_per_console = max_per_console
        self._consoles: dict[str, dict[str, tuple[float, int | None]]] = {}
        self._watchers: dict[str, int] = {}  # camera -> consoles showing it
        self.generation = 0  # grows whenever a camera nobody watched becomes watched

    def report(self, console: str, camera_ids: Sequence[str], width: int | None = None) -> int:
        """``console`` shows ``camera_ids`` (at ``width`` if it says); returns how many count."""
        self._expire()
        if not camera_ids:
            return 0
        entries = self._consoles.get(console)
        if entries is None:
            if len(self._consoles) >= self.max_consoles:
                oldest = min(self._consoles, key=lambda c: max(u for u, _ in self._consoles[c].values()))
                self.withdraw(oldest)
            entries = self._consoles[console] = {}
        until = time.monotonic() + self.ttl_s
        ids = list(dict.fromkeys(camera_ids))[: self.max_per_console]
        for cid in ids:
            if entries.pop(cid, None) is None:  # re-insert: dict order is then oldest report first
                n = self._watchers.get(cid, 0)
                self._watchers[cid] = n + 1
                self.generation += n == 0
            entries[cid] = (until, width)
        while len(entries) > self.max_per_console:
            self._drop(entries, next(iter(entries)))
        return len(ids)

    def withdraw(self, console: str) -> None:
        """The console shows nothing any more (logged out)."""
        entries = self._consoles.pop(console, {})
        for cid in list(entries):
            self._drop(entries, cid)

    def _drop(self, entries: dict[str, tuple[float, int | None]], cid: str) -> None:
        del entries[cid]
        n = self._watchers.get(cid, 0) - 1
        if n > 0:
            self._watchers[cid] = n
        else:
            self._watchers.pop(cid, None)

    def watched(self) -> list[Watched]:
        """Watched cameras, most consoles first (ties by camera id, so the order is stable)."""
        self._expire()
        counts: dict[str, int] = {}
        widths: dict[str, set[int]] = {}
        for entries in self._consoles.values():
            for cid, (_, width) in entries.items():
                counts[cid] = counts.get(cid, 0) + 1
                w = widths.setdefault(cid, set())
                if width is not None:
                    w.add(width)
        order = sorted(counts, key=lambda c: (-counts[c], c))
        return [Watched(c, counts[c], tuple(sorted(widths[c]))) for c in order]

    def _expire(self) -> None:
        now = time.monotonic()
        for console in list(self._consoles):
            entries = self._consoles[console]
            for cid in [c for c, (until, _) in entries.items() if until <= now]:
                self._drop(entries, cid)
            if not entries:
                del self._consoles[console]
