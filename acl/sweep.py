"""The ACL's once-a-second sweep: what changes by itself (positions going stale, validity windows,
changes stored elsewhere) ends streams without waiting for a request."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from acl.changes import PolicyChanges
from acl.location import LocationRule
from acl.revocation import StreamRevoker, ValidityWindows

__all__ = ["AclSweep"]

log = logging.getLogger(__name__)


class AclSweep:
    """Runs once a second, or at once when a truck crosses the district boundary."""

    def __init__(
        self,
        location: LocationRule,
        changes: PolicyChanges,
        windows: ValidityWindows,
        revoker: StreamRevoker,
        period_s: float = 1.0,
    ) -> None:
        self.location = location
        self.changes = changes
        self.windows = windows
        self.revoker = revoker
        self.period_s = period_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sweeping in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="acl-sweep")

    async def stop(self) -> None:
        """Stop sweeping (waits for the current pass to be cancelled)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def sweep(self) -> None:
        """One pass: stale positions, changes stored elsewhere, window edges, then lost streams."""
        self.location.refresh_all()
        self.location.crossed.clear()
        await self.changes.catch_up()
        await self.windows.passed()
        await self.revoker.enforce("access expired")

    async def _run(self) -> None:
        crossed = self.location.crossed
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(crossed.wait(), self.period_s)
            crossed.clear()
            try:
                await self.sweep()
            except Exception:  # the sweep must keep running
                log.exception("ACL sweep failed")
