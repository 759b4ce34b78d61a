"""PTZ commands from the API to the camera: arbitration, rate limits, the move watchdog, audit.

A command is decided in this order: the user's rate (429), an incident lock (409 naming the
incident), the holds store's claim (409 naming the unit that holds the camera and the seconds left),
then it goes to the camera's driver. A take-over stops the camera first, so the old holder's
continuous move never outlives their session. Every continuous move carries a timeout the camera
enforces itself, and the gateway sends ``Stop`` when it runs out (cameras that ignore ONVIF's
``Timeout`` exist), when the holder's login ends, or when the holder changes; a browser that goes
away simply stops renewing its move. Moves are audited as one row per holder's session (when it
ends), presets, home, absolute and relative moves and take-overs one row each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from acl.audit import AuditLog
from acl.identity import Subject
from camera_registry.ptz_endpoints import PtzEndpoint, PtzEndpoints
from gateway.policy.ptz import UnitRank
from gateway.ptz.commands import PtzCommand
from gateway.ptz.holds import ClaimResult, Holder, PtzHolds, PtzLock
from gateway.ptz.settings import PtzSettings
from ptz.ports import PtzDriver, PtzError

__all__ = ["DriverFactory", "PtzRefused", "PtzService", "RankOf"]

log = logging.getLogger(__name__)

DriverFactory = Callable[[PtzEndpoint], Awaitable[PtzDriver]]
ENDPOINT_TTL_S = 5.0


RankOf = Callable[[Subject], UnitRank]
LockAdmits = Callable[[Subject, PtzLock], bool]


class PtzRefused(Exception):
    """A command refused: ``status`` (404, 409, 429, 502) and a body for the API."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("detail", ""))
        self.status, self.body = status, body


@dataclass
class _Tally:
    """Moves of one holder's session on one camera, audited as one row when it ends."""

    holder: Holder
    moves: int = 0
    first: float = field(default_factory=time.time)
    last: float = field(default_factory=time.time)


@dataclass
class _Move:
    user_id: int
    task: asyncio.Task[None]


class PtzService:
    """Steers cameras for authorized users, one holder per camera (see the module)."""

    def __init__(
        self,
        settings: PtzSettings,
        endpoints: PtzEndpoints,
        holds: PtzHolds,
        audit: AuditLog,
        *,
        rank_of: RankOf,
        lock_admits: LockAdmits,
        connect: DriverFactory,
        node: str = "",
    ) -> None:
        self.settings, self.endpoints, self.holds, self.audit = settings, endpoints, holds, audit
        self.rank_of, self.lock_admits, self.connect, self.node = rank_of, lock_admits, connect, node
        self._drivers: dict[str, tuple[PtzEndpoint, PtzDriver]] = {}
        self._endpoints: dict[str, tuple[float, PtzEndpoint | None]] = {}
        self._camera_locks: dict[str, asyncio.Lock] = {}
        self._moves: dict[str, _Move] = {}
        self._tallies: dict[tuple[str, int], _Tally] = {}
        self._granted: dict[str, Holder] = {}  # the last holder this node granted each camera to
        self._buckets: dict[int, tuple[float, float]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # -- life --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the sweep that audits ended sessions."""
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_loop(), name="ptz-sweep")

    async def close(self) -> None:
        """Stop moves this node started, audit open sessions, close drivers."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for camera_id in list(self._moves):
            await self._stop_move(camera_id, "gateway shutting down")
        for key in list(self._tallies):
            await self._flush(key, "gateway shut down")
        for _, drv in self._drivers.values():
            with contextlib.suppress(Exception):
                await drv.close()
        self._drivers.clear()

    # -- drivers -----------------------------------------------------------------------------
    async def _endpoint(self, camera_id: str) -> PtzEndpoint | None:
        # Read from the database at most every ENDPOINT_TTL_S per camera: a command's path stays off
        # the database, and a re-imported camera's new address or password is used within seconds.
        now = time.monotonic()
        hit = self._endpoints.get(camera_id)
        if hit is not None and now - hit[0] < ENDPOINT_TTL_S:
            return hit[1]
        ep = await self.endpoints.get(camera_id)
        if len(self._endpoints) > 100_000:
            self._endpoints.clear()
        self._endpoints[camera_id] = (now, ep)
        return ep

    async def _driver(self, camera_id: str) -> PtzDriver:
        ep = await self._endpoint(camera_id)
        if ep is None:
            raise PtzRefused(404, {"detail": f"camera '{camera_id}' has no PTZ"})
        cached = self._drivers.get(camera_id)
        if cached is not None and cached[0] == ep:
            return cached[1]
        if cached is not None:
            with contextlib.suppress(Exception):
                await cached[1].close()
        try:
            drv = await self.connect(ep)
        except PtzError as e:
            raise PtzRefused(502, {"detail": f"camera '{camera_id}' PTZ unreachable: {e}"}) from None
        self._drivers[camera_id] = (ep, drv)
        return drv

    def _lock(self, camera_id: str) -> asyncio.Lock:
        return self._camera_locks.setdefault(camera_id, asyncio.Lock())

    async def _send(self, camera_id: str, fn: Callable[[PtzDriver], Awaitable[Any]]) -> Any:
        drv = await self._driver(camera_id)
        try:
            return await fn(drv)
        except PtzError as e:
            # A dropped connection or a rebooted camera: the next command connects afresh.
            self._drivers.pop(camera_id, None)
            raise PtzRefused(502, {"detail": f"camera '{camera_id}': {e}"}) from None

    # -- questions ---------------------------------------------------------------------------
    async def status(self, subject: Subject, camera_id: str) -> dict[str, Any]:
        """Capabilities, presets, position (where the camera reports it), who holds it, its lock."""
        caps = await self._send(camera_id, lambda d: d.capabilities())
        presets = await self._send(camera_id, lambda d: d.presets())
        pos = await self._send(camera_id, lambda d: d.position())
        held = await self.holds.holder(camera_id, self.settings.idle_release_s)
        lock = await self.holds.lock_of(camera_id)
        return {
            "camera_id": camera_id,
            "capabilities": caps.as_dict(),
            "presets": [{"token": p.token, "name": p.name} for p in presets],
            "position": None
            if pos is None
            else {"pan": pos.pan, "tilt": pos.tilt, "zoom": pos.zoom, "moving": pos.moving},
            "holder": None if held is None else _holder_dict(held[0], held[1], subject),
            "lock": None if lock is None else _lock_dict(lock),
            "idle_release_s": self.settings.idle_release_s,
        }

    # -- commands ----------------------------------------------------------------------------
    def _rate(self, user_id: int) -> None:
        now = time.monotonic()
        rate, burst = self.settings.commands_per_s, float(self.settings.command_burst)
        tokens, at = self._buckets.get(user_id, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        if tokens < 1.0:
            raise PtzRefused(429, {"detail": f"too many PTZ commands (at most {rate:g} a second)"})
        self._buckets[user_id] = (tokens - 1.0, now)
        if len(self._buckets) > 10_000:  # forget users idle for a while
            self._buckets = {u: v for u, v in self._buckets.items() if now - v[1] < 60}

    async def command(self, subject: Subject, camera_id: str, cmd: PtzCommand) -> dict[str, Any]:
        """Arbitrate and send one command; the holder after it. Raises :class:`PtzRefused`."""
        self._rate(subject.user_id)
        if await self._endpoint(camera_id) is None:
            raise PtzRefused(404, {"detail": f"camera '{camera_id}' has no PTZ"})
        lock = await self.holds.lock_of(camera_id)
        if lock is not None and not self.lock_admits(subject, lock):
            left = max(0, round(lock.until - time.time()))
            raise PtzRefused(
                409,
                {
                    "detail": f"camera '{camera_id}' PTZ is locked by incident {lock.incident_id} for {left} s",
                    "locked_by_incident": lock.incident_id,
                    "seconds_left": left,
                },
            )
        r = self.rank_of(subject)
        claimant = Holder(
            subject.user_id, subject.username, int(r.priority), r.unit, r.unit_name, subject.token_id, self.node
        )
        async with self._lock(camera_id):
            res = await self.holds.claim(camera_id, claimant, self.settings.idle_release_s)
            if not res.granted:
                raise PtzRefused(409, _refusal(camera_id, res))
            self._granted[camera_id] = res.holder
            if res.took_over:
                await self._taken_over(camera_id, res)
            out = await self._execute(subject, camera_id, cmd, res.holder)
        return {"holder": _holder_dict(res.holder, self.settings.idle_release_s, subject), **out}

    async def _taken_over(self, camera_id: str, res: ClaimResult) -> None:
        prev = res.previous
        assert prev is not None
        # The old holder's move may be running (started here or on another node): stop the camera now.
        self._cancel_watch(camera_id)
        with contextlib.suppress(PtzRefused):
            await self._send(camera_id, lambda d: d.stop())
        await self.audit.record(
            "ptz.takeover",
            user_id=res.holder.user_id,
            username=res.holder.username,
            camera_id=camera_id,
            action="ptz",
            detail=f"{res.holder.unit_name or res.holder.unit} (priority {res.holder.priority}) took over from "
            f"{prev.username} of {prev.unit_name or prev.unit} (priority {prev.priority})",
        )
        await self._flush((camera_id, prev.user_id), "taken over")

    async def _execute(self, subject: Subject, camera_id: str, cmd: PtzCommand, holder: Holder) -> dict[str, Any]:
        op = cmd.op
        out: dict[str, Any] = {"op": op}
        if op == "continuous":
            timeout = min(cmd.timeout_s or self.settings.move_timeout_s, self.settings.max_move_timeout_s)
            zoom = cmd.zoom or 0.0
            self._cancel_watch(camera_id)
            await self._send(camera_id, lambda d: d.continuous(cmd.pan, cmd.tilt, zoom, timeout))
            self._watch(camera_id, subject.user_id, timeout)
            self._tally(camera_id, holder)
            out["timeout_s"] = timeout
            return out
        self._cancel_watch(camera_id)
        if op == "stop":
            await self._send(camera_id, lambda d: d.stop())
            self._tally(camera_id, holder)
            return out
        if op == "absolute":
            await self._send(camera_id, lambda d: d.absolute(cmd.pan, cmd.tilt, cmd.zoom))
            detail = f"absolute pan {cmd.pan:g} tilt {cmd.tilt:g} zoom {cmd.zoom}"
        elif op == "relative":
            await self._send(camera_id, lambda d: d.relative(cmd.pan, cmd.tilt, cmd.zoom))
            detail = f"relative pan {cmd.pan:g} tilt {cmd.tilt:g} zoom {cmd.zoom}"
        elif op == "home":
            await self._send(camera_id, lambda d: d.home())
            detail = "home"
        elif op == "goto_preset":
            preset = cmd.preset or ""
            await self._send(camera_id, lambda d: d.goto_preset(preset))
            detail = f"goto preset {preset}"
        else:  # set_preset
            name = cmd.name or cmd.preset or ""
            token = await self._send(camera_id, lambda d: d.set_preset(name, cmd.preset))
            out["preset"] = token
            detail = f"set preset {token} ({name})"
        await self.audit.record("ptz", subject=subject, camera_id=camera_id, action=f"ptz:{op}", detail=detail[:500])
        return out

    # -- the move watchdog -------------------------------------------------------------------
    def _watch(self, camera_id: str, user_id: int, timeout_s: float) -> None:
        async def stop_when_due() -> None:
            await asyncio.sleep(timeout_s)
            self._moves.pop(camera_id, None)
            held = await self.holds.holder(camera_id, self.settings.idle_release_s)
            if held is not None and held[0].user_id != user_id:
                return  # someone took over (on this node or another): their commands own the camera
            with contextlib.suppress(PtzRefused):
                await self._send(camera_id, lambda d: d.stop())

        self._moves[camera_id] = _Move(user_id, asyncio.get_running_loop().create_task(stop_when_due()))

    def _cancel_watch(self, camera_id: str) -> None:
        mv = self._moves.pop(camera_id, None)
        if mv is not None:
            mv.task.cancel()

    async def _stop_move(self, camera_id: str, why: str) -> None:
        mv = self._moves.pop(camera_id, None)
        if mv is None:
            return
        mv.task.cancel()
        try:
            await self._send(camera_id, lambda d: d.stop())
        except PtzRefused as e:
            log.warning("ptz: could not stop camera %s (%s): %s", camera_id, why, e)

    # -- sessions ending ---------------------------------------------------------------------
    async def end_for_token(self, token_id: int) -> None:
        """A login ended: its holder's moves stop and its holds end (on this node's cameras)."""
        for camera_id, h in list(self._granted.items()):
            if h.token_id != token_id:
                continue
            del self._granted[camera_id]
            mv = self._moves.get(camera_id)
            if mv is not None and mv.user_id == h.user_id:
                await self._stop_move(camera_id, "login ended")
            await self.holds.release(camera_id, h.user_id)
            await self._flush((camera_id, h.user_id), "login ended")

    async def release(self, subject: Subject, camera_id: str) -> bool:
        """The holder lets go (the console's tile closed): their move stops, the camera is free."""
        mv = self._moves.get(camera_id)
        if mv is not None and mv.user_id == subject.user_id:
            await self._stop_move(camera_id, "released")
        ended = await self.holds.release(camera_id, subject.user_id)
        if (g := self._granted.get(camera_id)) is not None and g.user_id == subject.user_id:
            del self._granted[camera_id]
        await self._flush((camera_id, subject.user_id), "released")
        return ended is not None

    # -- incident locks ----------------------------------------------------------------------
    async def lock_incident(
        self, by: Subject, incident_id: str, cameras: list[str], departments: list[str], minutes: int
    ) -> dict[str, Any]:
        """Lock the incident's cameras for its handling units (at most ``ptz.lock_max_minutes``)."""
        minutes = min(minutes, self.settings.lock_max_minutes)
        lock = PtzLock(incident_id, tuple(departments), time.time() + minutes * 60, by.username)
        for c in cameras:
            await self.holds.lock(c, lock)
        await self.audit.record(
            "ptz.lock",
            subject=by,
            incident_id=incident_id,
            action="ptz:lock",
            detail=f"{len(cameras)} cameras for {', '.join(departments)}, {minutes} min",
        )
        return {"incident_id": incident_id, "cameras": cameras, **_lock_dict(lock)}

    async def unlock_incident(self, by: str, incident_id: str, cameras: list[str]) -> int:
        """Remove the incident's locks (when it closes, or on request); how many were removed."""
        n = 0
        for c in cameras:
            n += int(await self.holds.unlock(c, incident_id))
        if n:
            await self.audit.record(
                "ptz.lock", username=by, incident_id=incident_id, action="ptz:unlock", detail=f"{n} cameras"
            )
        return n

    # -- audit of sessions -------------------------------------------------------------------
    def _tally(self, camera_id: str, holder: Holder) -> None:
        t = self._tallies.setdefault((camera_id, holder.user_id), _Tally(holder))
        t.moves += 1
        t.last = time.time()

    async def _flush(self, key: tuple[str, int], why: str) -> None:
        t = self._tallies.pop(key, None)
        if t is None or t.moves == 0:
            return
        await self.audit.record(
            "ptz.session",
            user_id=t.holder.user_id,
            username=t.holder.username,
            camera_id=key[0],
            action="ptz:moves",
            detail=f"{t.moves} moves in {t.last - t.first:.0f} s ({why})",
        )

    async def sweep(self) -> None:
        """Audit the sessions that ended (idle, taken over elsewhere) since the last sweep."""
        for key in list(self._tallies):
            camera_id, user_id = key
            held = await self.holds.holder(camera_id, self.settings.idle_release_s)
            if held is None:
                await self._flush(key, "idle")
            elif held[0].user_id != user_id:
                await self._flush(key, "taken over")

    async def _sweep_loop(self) -> None:
        every = min(5.0, self.settings.idle_release_s / 2)
        while True:
            await asyncio.sleep(every)
            try:
                await self.sweep()
            except Exception:
                log.exception("ptz: sweep failed")


def _holder_dict(h: Holder, seconds_left: float, subject: Subject | None = None) -> dict[str, Any]:
    return {
        "username": h.username,
        "unit": h.unit,
        "unit_name": h.unit_name,
        "priority": h.priority,
        "seconds_left": round(seconds_left, 1),
        "you": subject is not None and subject.user_id == h.user_id,
    }


def _lock_dict(lock: PtzLock) -> dict[str, Any]:
    return {
        "incident_id": lock.incident_id,
        "departments": list(lock.departments),
        "seconds_left": max(0, round(lock.until - time.time())),
    }


def _refusal(camera_id: str, res: ClaimResult) -> dict[str, Any]:
    h = res.holder
    unit = h.unit_name or h.unit or h.username
    left = round(res.seconds_left, 1)
    return {
        "detail": f"camera '{camera_id}' PTZ is held by {unit} (priority {h.priority}) for {left} s more",
        "holder": {"unit": h.unit, "unit_name": h.unit_name, "username": h.username, "priority": h.priority},
        "seconds_left": left,
    }
