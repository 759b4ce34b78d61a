"""Every viewer session (WebRTC, HLS, ...): listed, audited, and ended by id, user, camera or login."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from acl.identity import Subject
from storage.db import utcnow

__all__ = ["Session", "SessionLimit", "SessionRegistry", "SessionSettings", "end_reason"]

log = logging.getLogger(__name__)
Closer = Callable[[str], Awaitable[None]]


class SessionSettings(BaseModel):
    """Viewer sessions, whatever their protocol."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_per_user: int = Field(
        32,
        ge=1,
        le=100_000,
        description="Open viewer sessions (WebRTC and HLS together) one user may hold on this node, admins "
        "included; one more gets 429. Keeps one login from taking every camera pull.",
    )
    max_transcodes_per_user: int = Field(
        1,
        ge=1,
        le=256,
        description="Distinct transcodes (camera and variant) one user's sessions may read at once on this node; "
        "a session that needs one more gets 429 (joining a transcode the user already reads is free). Keeps one "
        "login from taking every transcoder.max_concurrent slot.",
    )


class SessionLimit(Exception):
    """The user already holds ``sessions.max_per_user`` open sessions, or reads
    ``sessions.max_transcodes_per_user`` transcodes and this session would need another."""

    def __init__(self, username: str, limit: int, *, transcodes: bool = False) -> None:
        if transcodes:
            message = (
                f"too many transcoded streams: '{username}' already reads {limit}, the most one user may hold "
                "(sessions.max_transcodes_per_user); close a transcoded tile (H.265 or low variant) first"
            )
        else:
            message = (
                f"too many viewer sessions: '{username}' already has {limit} open, the most one user may hold "
                "(sessions.max_per_user); close a tile or end a session first"
            )
        super().__init__(message)
        self.limit = limit


@dataclass
class Session:
    """One viewer of one camera."""

    id: str
    user_id: int
    username: str
    camera_id: str
    protocol: str
    address: str | None
    token_id: int | None
    started: dt.datetime
    incident_id: str | None = None
    subject: Subject | None = field(default=None, repr=False)
    closer: Closer | None = field(default=None, repr=False)
    ended: dt.datetime | None = None
    end_reason: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    expiry: asyncio.TimerHandle | None = field(default=None, repr=False)

    @property
    def credential_ref(self) -> str | None:
        """The fingerprint of the stream token that opened the session, if one did."""
        return self.subject.credential_ref if self.subject is not None else None

    def owner(self) -> dict[str, Any]:
        """Who may end the session (for :func:`gateway.policy.may_end_session`)."""
        return {**self.public(), "credential_ref": self.credential_ref}

    def public(self) -> dict[str, Any]:
        """The session for the API."""
        return {
            "id": self.id,
            "user_id": self.user_id,
            "username": self.username,
            "camera_id": self.camera_id,
            "protocol": self.protocol,
            "address": self.address,
            "started": self.started.isoformat(),
            "incident_id": self.incident_id,
            **self.stats,
        }


def end_reason(owner_id: int, by: Subject) -> str:
    """What a session's end is audited as, when ``by`` ends a session ``owner_id`` opened."""
    return "ended by viewer" if owner_id == by.user_id else "ended by admin"


class SessionRegistry:
    """In-process registry of open sessions. Implements :class:`acl.sessions.SessionTerminator`."""

    def __init__(
        self,
        audit: Any,
        on_change: Callable[[str, int], None] | None = None,
        *,
        max_per_user: int | None = None,
        max_transcodes_per_user: int | None = None,
    ) -> None:
        self._audit = audit
        self._sessions: dict[str, Session] = {}
        self._on_change = on_change
        self.max_per_user = max_per_user  # None: no cap
        self.max_transcodes_per_user = max_transcodes_per_user  # None: no cap
        self._per_user: dict[int, int] = {}
        # Observers of opened and ended sessions (the cluster's session directory).
        self.on_open: list[Callable[[Session], None]] = []
        self.on_end: list[Callable[[Session], None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _count(self, protocol: str) -> None:
        if self._on_change:
            self._on_change(protocol, sum(1 for s in self._sessions.values() if s.protocol == protocol))

    def check_room(self, user_id: int, username: str, transcode: tuple[str, str] | None = None) -> None:
        """Raise :class:`SessionLimit` if the user may open no more sessions, or (``transcode``: the
        camera and variant of the transcode the new session would read) no more transcodes. Asked
        before a camera or transcode is opened for them; the session count again, atomically, when
        the session is registered."""
        if self.max_per_user is not None and self._per_user.get(user_id, 0) >= self.max_per_user:
            raise SessionLimit(username, self.max_per_user)
        if transcode is not None and self.max_transcodes_per_user is not None:
            reading = {
                (s.camera_id, str(s.stats.get("variant")))
                for s in self._sessions.values()
                if s.user_id == user_id and s.stats.get("transcoded")
            }
            if transcode not in reading and len(reading) >= self.max_transcodes_per_user:
                raise SessionLimit(username, self.max_transcodes_per_user, transcodes=True)

    async def open(
        self,
        *,
        user_id: int,
        username: str,
        camera_id: str,
        protocol: str,
        address: str | None,
        token_id: int | None,
        closer: Closer,
        incident_id: str | None = None,
        subject: Subject | None = None,
    ) -> Session:
        """Register a new session (and audit its start); :class:`SessionLimit` when the user has no room."""
        self.check_room(user_id, username)
        s = Session(
            id=secrets.token_urlsafe(16),
            user_id=user_id,
            username=username,
            camera_id=camera_id,
            protocol=protocol,
            address=address,
            token_id=token_id,
            started=utcnow(),
            incident_id=incident_id,
            subject=subject,
            closer=closer,
        )
        self._sessions[s.id] = s
        if subject is not None and subject.expires_at is not None:
            # A session dies with its login: at the login's (or stream token's) expiry at the latest.
            delay = max((subject.expires_at - utcnow()).total_seconds(), 0.0)
            loop = asyncio.get_running_loop()
            s.expiry = loop.call_later(delay, lambda: self._spawn(self.end(s.id, "login expired")))
        self._per_user[user_id] = self._per_user.get(user_id, 0) + 1
        self._count(protocol)
        for cb in self.on_open:
            cb(s)
        await self._audit.record(
            "stream_start",
            user_id=user_id,
            username=username,
            camera_id=camera_id,
            action="view_live",
            address=address,
            session_id=s.id,
            detail=protocol,
            incident_id=incident_id,
        )
        return s

    def get(self, session_id: str) -> Session | None:
        """An open session."""
        return self._sessions.get(session_id)

    def list(self, *, user_id: int | None = None, camera_id: str | None = None) -> list[Session]:
        """Open sessions, oldest first."""
        out = [
            s
            for s in self._sessions.values()
            if (user_id is None or s.user_id == user_id) and (camera_id is None or s.camera_id == camera_id)
        ]
        return sorted(out, key=lambda s: s.started)

    async def end(self, session_id: str, reason: str) -> bool:
        """End one session: close its transport, audit the end. False if it was not open."""
        s = self._sessions.pop(session_id, None)
        if s is None:
            return False
        if s.expiry is not None:
            s.expiry.cancel()
        s.ended = utcnow()
        s.end_reason = reason
        left = self._per_user.pop(s.user_id, 1) - 1
        if left:
            self._per_user[s.user_id] = left
        self._count(s.protocol)
        for cb in self.on_end:
            cb(s)
        if s.closer is not None:
            try:
                await s.closer(reason)
            except Exception:  # a broken transport must not keep the session listed
                log.exception("closing session %s failed", session_id)
        await self._audit.record(
            "stream_end",
            user_id=s.user_id,
            username=s.username,
            camera_id=s.camera_id,
            address=s.address,
            session_id=s.id,
            detail=f"{s.protocol}: {reason}",
            start=s.started.isoformat(),
            end=s.ended.isoformat(),
            incident_id=s.incident_id,
        )
        return True

    async def _end_where(self, pred: Callable[[Session], bool], reason: str) -> int:
        ids = [s.id for s in self._sessions.values() if pred(s)]
        results = await asyncio.gather(*(self.end(i, reason) for i in ids))
        return sum(results)

    async def end_sessions(self, user_id: int | None, camera_ids: set[str] | None, reason: str) -> int:
        """End sessions by user and/or cameras (the ACL's revocation path)."""
        return await self._end_where(
            lambda s: (user_id is None or s.user_id == user_id) and (camera_ids is None or s.camera_id in camera_ids),
            reason,
        )

    async def end_for_token(self, token_id: int, reason: str = "logged out") -> int:
        """End sessions opened with a login that ended."""
        return await self._end_where(lambda s: s.token_id == token_id, reason)

    async def end_for_camera(self, camera_id: str, reason: str) -> int:
        """End every session of a camera."""
        return await self._end_where(lambda s: s.camera_id == camera_id, reason)

    async def close(self) -> None:
        """End everything (shutdown)."""
        await self._end_where(lambda s: True, "server shutting down")
