"""Continuous recording by ``record`` rules, and deletion: each segment is kept for the longest
retention of what it was recorded for; over the quota or below the low-space watermark the oldest
go first. Locked ranges are never deleted. A deleted segment keeps its index row (marked), so the
camera's hash chain still verifies."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable, Iterable

from sqlalchemy import select

from recording.index import RecordingIndex
from recording.locks import Locks
from recording.models import RecordingLock, RecordingSegment
from recording.recorder import Demand, Recorder
from recording.settings import RecordingSettings

__all__ = ["Retention"]

log = logging.getLogger(__name__)
DAY = 86400.0
GroupCameras = Callable[[str], Iterable[str]]


class Retention:
    """Applies the rules and the retention every ``retention_check_s`` (see :meth:`start`)."""

    def __init__(
        self,
        settings: RecordingSettings,
        index: RecordingIndex,
        recorder: Recorder,
        locks: Locks,
        group_cameras: GroupCameras,
    ) -> None:
        self.settings = settings
        self.index = index
        self.recorder = recorder
        self.locks = locks
        self.group_cameras = group_cameras
        self._task: asyncio.Task[None] | None = None
        self.deleted = 0

    def apply_rules(self) -> dict[str, set[str]]:
        """Record every camera of every rule for the next few checks (a camera that leaves a rule's
        groups stops when its demand runs out); returns the cameras per rule."""
        until = time.time() + 3 * self.settings.retention_check_s
        out: dict[str, set[str]] = {}
        for rule in self.settings.rules:
            cams = set(rule.cameras)
            for g in rule.groups:
                cams |= set(self.group_cameras(g))
            out[rule.name] = cams
            for c in sorted(cams):
                self.recorder.record(c, Demand(f"rule:{rule.name}", f"rule:{rule.name}", until))
        return out

    def keep_s(self, row: RecordingSegment) -> float:
        """How long a segment is kept: the longest retention among what it was recorded for."""
        days = {r.name: r.retention_days for r in self.settings.rules}
        kept = [days.get(r.removeprefix("rule:"), self.settings.retention_days) for r in row.reasons or []]
        return max(kept or [self.settings.retention_days]) * DAY

    async def sweep(self, now: float | None = None) -> int:
        """Delete what retention, the quota or low space say; returns segments deleted."""
        now = time.time() if now is None else now
        async with self.index.db.session() as s:
            rows = list(
                (
                    await s.scalars(
                        select(RecordingSegment)
                        .where(RecordingSegment.deleted_at.is_(None))
                        .order_by(RecordingSegment.end)
                    )
                ).all()
            )
        locks = await self.locks.standing()
        free = [r for r in rows if not _locked(r, locks)]
        doomed = {r.id for r in free if r.end + self.keep_s(r) < now}
        total = sum(r.bytes for r in rows if r.id not in doomed)
        quota = self.settings.quota_gb * 1e9 if self.settings.quota_gb else None
        low = self.settings.low_space_mb * 1024 * 1024
        try:
            free_bytes = shutil.disk_usage(self.index.root).free if self.index.root.exists() else None
        except OSError:
            free_bytes = None
        for r in free:  # oldest first
            if r.id in doomed:
                continue
            over_quota = quota is not None and total > quota
            short = free_bytes is not None and free_bytes < low
            if not (over_quota or short):
                break
            doomed.add(r.id)
            total -= r.bytes
            if free_bytes is not None:
                free_bytes += r.bytes
        if doomed:
            await self._delete([r for r in rows if r.id in doomed], now)
        await asyncio.to_thread(self._forget_exports, now)
        return len(doomed)

    def _forget_exports(self, now: float) -> None:
        """Exported clips are kept a day (a second request for the same range is served from it)."""
        for f in (self.index.root / ".exports").glob("*"):
            try:
                if f.stat().st_mtime < now - DAY:
                    f.unlink()
            except OSError:
                pass

    async def _delete(self, rows: list[RecordingSegment], now: float) -> None:
        for r in rows:
            (self.index.root / r.path).unlink(missing_ok=True)
        async with self.index.db.session() as s:
            for r in rows:
                row = await s.get(RecordingSegment, r.id)
                if row is not None:
                    row.deleted_at = now
        self.deleted += len(rows)
        log.info("recordings: deleted %d segment(s) (retention, quota or low space)", len(rows))

    async def start(self) -> None:
        """Apply the rules now and then every ``retention_check_s``, with the retention sweep."""
        self.apply_rules()
        self._task = asyncio.create_task(self._loop(), name="recording retention")

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("recording retention failed")
            await asyncio.sleep(self.settings.retention_check_s)
            self.apply_rules()

    async def close(self) -> None:
        """Stop the loop."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _locked(row: RecordingSegment, locks: list[RecordingLock]) -> bool:
    return any(lk.camera_id == row.camera_id and lk.start < row.end and lk.end > row.start for lk in locks)
