"""Evidence locks: ranges of a camera that retention, the quota and low space never delete."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from recording.models import RecordingLock
from storage.db import Database

__all__ = ["LockError", "Locks", "lock_dict"]


class LockError(ValueError):
    """A lock request that cannot be applied (the message names the field)."""


def lock_dict(lock: RecordingLock) -> dict[str, Any]:
    """A lock for the API."""
    return {
        "id": lock.id,
        "camera_id": lock.camera_id,
        "start": lock.start,
        "end": lock.end,
        "reason": lock.reason,
        "created_by": lock.created_by,
        "created_at": lock.created_at,
        "lifted_by": lock.lifted_by,
        "lifted_at": lock.lifted_at,
        "lift_reason": lock.lift_reason,
    }


class Locks:
    """Locks in the database; lifted ones are kept (who lifted what, when and why)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, camera_id: str, start: float, end: float, reason: str, by: str) -> RecordingLock:
        """Lock [start, end) of the camera."""
        async with self.db.session() as s:
            return await self.add_in(s, camera_id, start, end, reason, by)

    async def add_in(
        self, s: AsyncSession, camera_id: str, start: float, end: float, reason: str, by: str
    ) -> RecordingLock:
        """:meth:`add` in the caller's transaction (the gateway's: one policy revision with it)."""
        if not reason.strip():
            raise LockError("reason: required")
        if end <= start:
            raise LockError("end: must be after start")
        lock = RecordingLock(
            camera_id=camera_id, start=start, end=end, reason=reason.strip(), created_by=by, created_at=time.time()
        )
        s.add(lock)
        await s.flush()
        return lock

    async def lift(self, lock_id: int, reason: str, by: str) -> RecordingLock | None:
        """Lift a lock (None: no such standing lock)."""
        async with self.db.session() as s:
            return await self.lift_in(s, lock_id, reason, by)

    async def lift_in(self, s: AsyncSession, lock_id: int, reason: str, by: str) -> RecordingLock | None:
        """:meth:`lift` in the caller's transaction."""
        if not reason.strip():
            raise LockError("reason: required")
        lock = await s.get(RecordingLock, lock_id)
        if lock is None or lock.lifted_at is not None:
            return None
        lock.lifted_by, lock.lifted_at, lock.lift_reason = by, time.time(), reason.strip()
        await s.flush()
        return lock

    async def standing(self, camera_id: str | None = None) -> list[RecordingLock]:
        """Locks not lifted (of one camera, or all)."""
        q = select(RecordingLock).where(RecordingLock.lifted_at.is_(None))
        if camera_id is not None:
            q = q.where(RecordingLock.camera_id == camera_id)
        async with self.db.session() as s:
            return list((await s.scalars(q.order_by(RecordingLock.id))).all())
