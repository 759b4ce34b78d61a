"""Live events to consoles: an event bus with a replay buffer, streamed as Server-Sent Events.

Every event names its audience: cameras (users who may view one of them), departments (their
members), users, system roles, or everyone (``policy.changed`` goes to the users a policy change
can reach and to security admins and auditors, or to everyone when it cannot tell). A subscriber
receives an event only if it is in the audience, and camera lists in the
event (``cameras``, ``nearby``) are cut down to what that user may view; events with no audience
reach administrators only. Ids increase by one per event, so a console that reconnects with
``Last-Event-ID`` gets what it missed from the buffer, or a ``reset`` event when the buffer no
longer reaches back that far (then it reloads). A console that falls too far behind is cut off
and resumes the same way. Several gateway nodes put a Redis Stream behind :class:`EventBus`
(``gateway.cluster.events``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from acl.identity import Subject
from gateway.policy.rules import receives_event, visible_cameras_in

__all__ = ["CAMERA_FIELDS", "Audience", "Event", "EventBus", "LocalEventBus", "Viewer"]

CAMERA_FIELDS = ("cameras", "nearby")


@dataclass(frozen=True, slots=True)
class Audience:
    """Who an event is for; empty: administrators only."""

    cameras: tuple[str, ...] = ()  # users who may view one of these cameras
    departments: tuple[str, ...] = ()  # members of these departments
    users: tuple[int, ...] = ()  # named users (e.g. those a policy change reaches)
    roles: tuple[str, ...] = ()  # every user with one of these system roles
    everyone: bool = False  # every console (a signal whose data is no one's secret)

    def to_fields(self) -> dict[str, str]:
        """As flat string fields (a Redis Stream entry's); :meth:`from_fields` reads them back."""
        return {
            "cameras": json.dumps(list(self.cameras)),
            "departments": json.dumps(list(self.departments)),
            "users": json.dumps(list(self.users)),
            "roles": json.dumps(list(self.roles)),
            "everyone": "1" if self.everyone else "",
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Audience:
        """The audience :meth:`to_fields` wrote; a missing field is empty."""
        return cls(
            tuple(json.loads(fields.get("cameras", "[]"))),
            tuple(json.loads(fields.get("departments", "[]"))),
            tuple(int(u) for u in json.loads(fields.get("users", "[]"))),
            tuple(json.loads(fields.get("roles", "[]"))),
            bool(fields.get("everyone", "")),
        )


@dataclass(frozen=True, slots=True)
class Event:
    """One event and its audience."""

    id: int
    type: str
    data: dict[str, Any]
    audience: Audience = Audience()
    ts: float = field(default_factory=time.time)

    def sse(self, data: dict[str, Any] | None = None) -> str:
        """The event in Server-Sent Events framing."""
        body = json.dumps(self.data if data is None else data, ensure_ascii=False)
        return f"id: {self.id}\nevent: {self.type}\ndata: {body}\n\n"


def _control(kind: str, **data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@dataclass
class Viewer:
    """A connected console: its subject (refreshed while connected) and the camera check."""

    subject: Subject
    may_view: Callable[[Subject, str], bool]
    # Re-checks the login; returns the current subject, or None when the login ended.
    revalidate: Callable[[Subject], Awaitable[Subject | None]] | None = None

    def render(self, ev: Event) -> str | None:
        """The event as this viewer may see it (:func:`gateway.policy.rules.receives_event`, camera
        lists cut down to what it may view), or None."""
        s = self.subject
        if not receives_event(s, ev.audience, self.may_view):
            return None
        data = dict(ev.data)
        for key in CAMERA_FIELDS:
            if isinstance(data.get(key), list):
                data[key] = visible_cameras_in(s, data[key], self.may_view)
        return ev.sse(data)


class EventBus(Protocol):
    """Publish events; stream them to viewers."""

    def publish(
        self,
        type_: str,
        data: dict[str, Any],
        *,
        cameras: Sequence[str] = (),
        departments: Sequence[str] = (),
        users: Sequence[int] = (),
        roles: Sequence[str] = (),
        everyone: bool = False,
    ) -> Event:
        """Send an event to every viewer in its audience (viewers of ``cameras``, members of
        ``departments``, ``users``, holders of ``roles``; all with ``everyone``), and keep it for resumes."""
        ...

    def stream(self, viewer: Viewer, last_id: int | None = None) -> AsyncGenerator[str, None]:
        """SSE text for one viewer: missed events after ``last_id`` first, then live ones."""
        ...

    def streams_of(self, user_id: int) -> int:
        """How many streams the user has open."""
        ...

    async def end_for_token(self, token_id: int) -> None:
        """End the streams opened with a login (logout, revocation)."""
        ...

    async def start(self) -> None:
        """Start whatever carries events between nodes (nothing in process)."""
        ...

    async def stop(self) -> None:
        """Stop it (flushing what it can)."""
        ...


_CLOSE = object()


@dataclass(eq=False)
class _Sub:
    viewer: Viewer
    queue: asyncio.Queue[Any]
    reason: str = ""


class LocalEventBus:
    """The in-process :class:`EventBus`."""

    def __init__(self, keep: int = 10_000, heartbeat_s: float = 15.0, queue: int = 1000) -> None:
        self.heartbeat_s = heartbeat_s
        self.queue_size = queue
        self._ids = itertools.count(int(time.time() * 1000))
        self._next = next(self._ids)
        self._buffer: deque[Event] = deque(maxlen=keep)
        self._subs: set[_Sub] = set()

    def publish(
        self,
        type_: str,
        data: dict[str, Any],
        *,
        cameras: Sequence[str] = (),
        departments: Sequence[str] = (),
        users: Sequence[int] = (),
        roles: Sequence[str] = (),
        everyone: bool = False,
    ) -> Event:
        audience = Audience(tuple(cameras), tuple(departments), tuple(users), tuple(roles), everyone)
        return self._publish(type_, data, audience)

    def _publish(self, type_: str, data: dict[str, Any], audience: Audience) -> Event:
        ev = Event(self._next, type_, data, audience)
        self._next = next(self._ids)
        self._buffer.append(ev)
        for sub in list(self._subs):
            try:
                sub.queue.put_nowait(ev)
            except asyncio.QueueFull:
                self._close(sub, "too far behind; reconnect to resume")
        return ev

    def _close(self, sub: _Sub, reason: str) -> None:
        # Cut off: the console reconnects with Last-Event-ID and resumes from the buffer.
        sub.reason = reason
        self._subs.discard(sub)
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(_CLOSE)

    def _missed(self, last_id: int) -> bool:
        """Whether events after ``last_id`` have already left the buffer (ids here increase by one)."""
        oldest = self._buffer[0].id if self._buffer else self._next
        return last_id < oldest - 1

    def streams_of(self, user_id: int) -> int:
        return sum(1 for s in self._subs if s.viewer.subject.user_id == user_id)

    async def end_for_token(self, token_id: int) -> None:
        for sub in list(self._subs):
            if sub.viewer.subject.token_id == token_id:
                self._close(sub, "login ended")

    async def start(self) -> None:
        return None  # nothing between nodes

    async def stop(self) -> None:
        return None

    async def stream(self, viewer: Viewer, last_id: int | None = None) -> AsyncGenerator[str, None]:
        sub = _Sub(viewer, asyncio.Queue(self.queue_size))
        self._subs.add(sub)
        try:
            yield "retry: 2000\n\n"
            sent = -1
            if last_id is not None:
                if self._missed(last_id):
                    yield _control("reset", reason="some events are no longer kept; reload")
                for ev in list(self._buffer):
                    if ev.id > last_id:
                        sent = ev.id
                        text = viewer.render(ev)
                        if text:
                            yield text
            yield ": connected\n\n"
            checked = time.monotonic()
            while True:
                try:
                    item: Any = await asyncio.wait_for(sub.queue.get(), self.heartbeat_s)
                except TimeoutError:
                    item = None
                if item is _CLOSE:
                    yield _control("end", reason=sub.reason)
                    return
                if viewer.revalidate is not None and (item is None or time.monotonic() - checked > self.heartbeat_s):
                    checked = time.monotonic()
                    fresh = await viewer.revalidate(viewer.subject)
                    if fresh is None:
                        self._subs.discard(sub)
                        yield _control("end", reason="login ended")
                        return
                    viewer.subject = fresh
                if item is None:
                    yield ": keep-alive\n\n"
                    continue
                if item.id <= sent:
                    continue  # already replayed
                text = viewer.render(item)
                if text:
                    yield text
        finally:
            self._subs.discard(sub)
