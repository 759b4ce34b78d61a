"""Live events to browsers: an in-process bus with a replay buffer for ``Last-Event-ID`` resume.

Events name the cameras they concern; each subscriber sees an event only if it may view at least
one of them (and only those cameras), so the stream is filtered by the same policy as everything
else. Several gateway nodes would put a Redis Stream behind the same interface (scale-out issue).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Event", "EventBus"]


@dataclass(frozen=True, slots=True)
class Event:
    """One event; ``camera_ids`` decides who may see it (empty: everyone logged in)."""

    id: int
    type: str
    data: dict[str, Any]
    camera_ids: tuple[str, ...] = ()
    ts: float = field(default_factory=time.time)

    def sse(self, data: dict[str, Any] | None = None) -> str:
        """The event in Server-Sent Events framing."""
        body = json.dumps(data if data is not None else self.data, ensure_ascii=False)
        return f"id: {self.id}\nevent: {self.type}\ndata: {body}\n\n"


Visible = Callable[[str], bool]


class EventBus:
    """Publish/subscribe with a bounded replay buffer."""

    def __init__(self, keep: int = 10_000) -> None:
        self._ids = itertools.count(int(time.time() * 1000))
        self._buffer: deque[Event] = deque(maxlen=keep)
        self._subs: set[asyncio.Queue[Event]] = set()

    def publish(self, type_: str, data: dict[str, Any], camera_ids: tuple[str, ...] = ()) -> Event:
        """Send an event to every subscriber (and keep it for resumes)."""
        ev = Event(next(self._ids), type_, data, camera_ids)
        self._buffer.append(ev)
        for q in list(self._subs):
            if q.qsize() < 1000:
                q.put_nowait(ev)
        return ev

    async def stream(
        self, visible: Visible, last_id: int | None = None, heartbeat_s: float = 15.0
    ) -> AsyncIterator[str]:
        """SSE text for one subscriber: missed events after ``last_id`` first, then live ones."""
        q: asyncio.Queue[Event] = asyncio.Queue()
        self._subs.add(q)
        try:
            if last_id is not None:
                for ev in list(self._buffer):
                    if ev.id > last_id:
                        text = self._for(ev, visible)
                        if text:
                            yield text
            yield ": connected\n\n"
            while True:
                try:
                    ev = await asyncio.wait_for(q.get(), heartbeat_s)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if last_id is not None and ev.id <= last_id:
                    continue
                text = self._for(ev, visible)
                if text:
                    yield text
        finally:
            self._subs.discard(q)

    @staticmethod
    def _for(ev: Event, visible: Visible) -> str | None:
        if not ev.camera_ids:
            return ev.sse()
        cams = [c for c in ev.camera_ids if visible(c)]
        if not cams:
            return None
        return ev.sse({**ev.data, "cameras": cams})
