"""Who holds a camera's PTZ: one holder at a time, taken over at once by a higher priority, free
``idle_s`` after the holder's last command; and incident locks. One protocol, two stores: this
process (:class:`LocalPtzHolds`) or Redis for a cluster (:class:`gateway.cluster.ptz_holds.RedisPtzHolds`),
so two nodes never grant the same camera to two users.

The store applies the arbitration atomically (compare and set): a claim is granted when the camera
is free, idle, already the claimant's, or held at a lower priority than the claimant's. The claimant's
priority, and whether a lock admits them, are the policy's answers (:mod:`gateway.policy.ptz`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Protocol

__all__ = ["ClaimResult", "Holder", "LocalPtzHolds", "PtzHolds", "PtzLock"]


@dataclass(frozen=True, slots=True)
class Holder:
    """A user holding (or claiming) a camera's PTZ, with the unit their priority comes from."""

    user_id: int
    username: str
    priority: int
    unit: str  # department id
    unit_name: str
    token_id: int | None = None
    node: str = ""
    since: float = 0.0  # epoch seconds
    last: float = 0.0  # the last command (epoch seconds)

    def to_json(self) -> str:
        """Stored form."""
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Holder:
        """From :meth:`to_json`."""
        return cls(**json.loads(text))


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """The answer to a claim: granted (and whom it took over from), or refused by ``holder``."""

    granted: bool
    holder: Holder  # the holder now: the claimant when granted
    previous: Holder | None = None  # someone else who held it until this claim took over
    seconds_left: float = 0.0  # refused: until the holder's session is idle

    @property
    def took_over(self) -> bool:
        """The claim ended another user's session."""
        return self.granted and self.previous is not None


@dataclass(frozen=True, slots=True)
class PtzLock:
    """An incident's lock on a camera's PTZ: only its handlers' units may steer until ``until``."""

    incident_id: str
    departments: tuple[str, ...]
    until: float  # epoch seconds
    by: str = ""

    def to_json(self) -> str:
        """Stored form."""
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> PtzLock:
        """From :meth:`to_json`."""
        d = json.loads(text)
        return cls(d["incident_id"], tuple(d["departments"]), float(d["until"]), d.get("by", ""))


class PtzHolds(Protocol):
    """The holders and locks of cameras' PTZ."""

    async def claim(self, camera_id: str, claimant: Holder, idle_s: float) -> ClaimResult:
        """Atomically grant the camera to ``claimant`` or refuse (see the module's rule); a grant
        records the command's time as the holder's last."""
        ...

    async def holder(self, camera_id: str, idle_s: float) -> tuple[Holder, float] | None:
        """The current holder and the seconds until their session is idle, or None."""
        ...

    async def release(self, camera_id: str, user_id: int) -> Holder | None:
        """End ``user_id``'s session on the camera (no-op if someone else holds it); the holder it ended."""
        ...

    async def lock(self, camera_id: str, lock: PtzLock) -> None:
        """Lock the camera for an incident until ``lock.until``."""
        ...

    async def unlock(self, camera_id: str, incident_id: str) -> bool:
        """Remove the incident's lock from the camera (not another incident's)."""
        ...

    async def lock_of(self, camera_id: str) -> PtzLock | None:
        """The camera's live lock, or None."""
        ...


@dataclass
class LocalPtzHolds:
    """The holds of one gateway process (one event loop, so each method is atomic)."""

    clock: Callable[[], float] = time.time
    _holders: dict[str, Holder] = field(default_factory=dict)
    _locks: dict[str, PtzLock] = field(default_factory=dict)

    def _now(self) -> float:
        return self.clock()

    async def claim(self, camera_id: str, claimant: Holder, idle_s: float) -> ClaimResult:
        """See :meth:`PtzHolds.claim`."""
        now = self._now()
        cur = self._holders.get(camera_id)
        if cur is not None and now - cur.last >= idle_s:
            cur = None
        if cur is None or cur.user_id == claimant.user_id or claimant.priority > cur.priority:
            since = cur.since if cur is not None and cur.user_id == claimant.user_id else now
            new = _with_times(claimant, since, now)
            self._holders[camera_id] = new
            previous = cur if cur is not None and cur.user_id != claimant.user_id else None
            return ClaimResult(True, new, previous)
        return ClaimResult(False, cur, None, max(0.0, cur.last + idle_s - now))

    async def holder(self, camera_id: str, idle_s: float) -> tuple[Holder, float] | None:
        """See :meth:`PtzHolds.holder`."""
        cur = self._holders.get(camera_id)
        now = self._now()
        if cur is None or now - cur.last >= idle_s:
            return None
        return cur, cur.last + idle_s - now

    async def release(self, camera_id: str, user_id: int) -> Holder | None:
        """See :meth:`PtzHolds.release`."""
        cur = self._holders.get(camera_id)
        if cur is None or cur.user_id != user_id:
            return None
        return self._holders.pop(camera_id)

    async def lock(self, camera_id: str, lock: PtzLock) -> None:
        """See :meth:`PtzHolds.lock`."""
        self._locks[camera_id] = lock

    async def unlock(self, camera_id: str, incident_id: str) -> bool:
        """See :meth:`PtzHolds.unlock`."""
        cur = self._locks.get(camera_id)
        if cur is None or cur.incident_id != incident_id:
            return False
        del self._locks[camera_id]
        return True

    async def lock_of(self, camera_id: str) -> PtzLock | None:
        """See :meth:`PtzHolds.lock_of`."""
        cur = self._locks.get(camera_id)
        if cur is not None and cur.until <= self._now():
            del self._locks[camera_id]
            return None
        return cur


def _with_times(h: Holder, since: float, last: float) -> Holder:
    return Holder(h.user_id, h.username, h.priority, h.unit, h.unit_name, h.token_id, h.node, since, last)
