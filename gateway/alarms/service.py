"""Alarm intake (durable, idempotent), camera resolution from live GPS, and the incident's effects:
incident grants to the departments on duty, pre-warmed streams, an ``incident.opened`` event; then
follow mode while the bus moves."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import secrets
import time
import zoneinfo
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from camera_registry.vehicle_index import IndexUnavailable
from gateway.alarms.cases import CaseIntake
from gateway.alarms.categories import CategoryTable
from gateway.alarms.hmac_auth import NAME, SourceRegistry
from gateway.alarms.incidents import OPEN_STATES, IncidentWorkflow, grant_until
from gateway.alarms.models import Alarm, Incident
from gateway.alarms.notices import Outbox
from gateway.alarms.photos import PhotoStore
from gateway.alarms.ports import AuditSink, EventPublisher, IncidentGrants, Organisation, StreamPrewarm
from gateway.alarms.rollup import StatsRollup
from gateway.alarms.routing import RoutingTable
from gateway.alarms.stats import StatsService
from gateway.settings import AlarmSettings
from storage.db import Database, utcnow
from storage.secretbox import SecretBox
from storage.times import parse_zoned

__all__ = ["AlarmError", "AlarmService", "Received"]

log = logging.getLogger(__name__)


class AlarmError(ValueError):
    """Invalid alarm body (message names the field)."""


@dataclass(frozen=True, slots=True)
class Received:
    """Outcome of an alarm post."""

    incident_id: str
    duplicate: bool


def parse_alarm(body: bytes) -> dict[str, Any]:
    """Validate an alarm body; raises :class:`AlarmError` naming the field."""
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AlarmError("body: invalid JSON") from None
    if not isinstance(doc, dict):
        raise AlarmError("body: must be a JSON object")
    unknown = set(doc) - {"alarm_id", "type", "vehicle_id", "lat", "lon", "time", "text"}
    if unknown:
        raise AlarmError(f"{sorted(unknown)[0]}: unknown field")
    aid = doc.get("alarm_id")
    if not isinstance(aid, str) or not 1 <= len(aid) <= 128:
        raise AlarmError("alarm_id: required, 1-128 characters")
    typ = doc.get("type", "panic")
    if not isinstance(typ, str) or not NAME.match(typ) or len(typ) > 32:
        raise AlarmError("type: a short name such as panic")
    vid = doc.get("vehicle_id")
    if vid is not None and (not isinstance(vid, str) or not 1 <= len(vid) <= 64):
        raise AlarmError("vehicle_id: a string of 1-64 characters")
    lat, lon = doc.get("lat"), doc.get("lon")
    if (lat is None) != (lon is None):
        raise AlarmError(f"{'lon' if lon is None else 'lat'}: give both lat and lon, or neither")
    for name, v, lim in (("lat", lat, 90), ("lon", lon, 180)):
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise AlarmError(f"{name}: must be a number")
            if not -lim <= v <= lim:
                raise AlarmError(f"{name}: must be between -{lim} and {lim}")
    if vid is None and lat is None:
        raise AlarmError("vehicle_id: give a vehicle id and/or lat/lon")
    t = doc.get("time")
    if t is None:
        when = utcnow()
    elif not isinstance(t, str):
        raise AlarmError("time: an ISO 8601 time with a zone")
    else:
        try:
            when = parse_zoned(t)
        except ValueError as e:
            raise AlarmError(f"time: {e}") from None
    text = doc.get("text", "")
    if not isinstance(text, str) or len(text) > 4000:
        raise AlarmError("text: at most 4000 characters")
    return {"alarm_id": aid, "type": typ, "vehicle_id": vid, "lat": lat, "lon": lon, "time": when, "text": text}


class AlarmService:
    """Alarms in, incidents out. ``positions`` is the :class:`camera_registry.positions.PositionService`;
    ``camera_offline(camera_id)`` says whether the inventory knows a camera to be offline."""

    def __init__(
        self,
        settings: AlarmSettings,
        db: Database,
        box: SecretBox,
        *,
        positions: Any,
        org: Organisation,
        grants: IncidentGrants,
        hub: StreamPrewarm,
        events: EventPublisher,
        audit: AuditSink,
        camera_offline: Callable[[str], Awaitable[bool]],
        photos: PhotoStore,
        outbox: Outbox | None = None,
        notices_written: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.positions = positions
        self.org = org
        self.grants = grants
        self.hub = hub
        # Called with (incident id, cameras) when an incident opens cameras (at the alarm, following a bus).
        self.on_cameras: list[Callable[[str, list[str]], None]] = []
        self.events = events
        self.audit = audit
        self.camera_offline = camera_offline
        self.sources = SourceRegistry(db, box, settings.signature_window_s)
        self.routing = RoutingTable(settings, db, org)
        self.categories = CategoryTable(settings, db)
        self.incidents = IncidentWorkflow(
            settings,
            db,
            org,
            grants,
            events,
            audit,
            categories=self.categories,
            outbox=outbox,
            notices_written=notices_written,
        )
        # The settled cases' statistics, kept per day and month in the same transaction as each change.
        self.rollup = StatsRollup(db, zoneinfo.ZoneInfo(settings.timezone))
        self.stats = StatsService(db, settings.timezone, self.rollup)
        self.photos = photos
        self.cases = CaseIntake(db, box, org, self.routing, self._fixed_near, self._open_effects, self._areas)
        self.incidents.on_closed.append(self._stop_following)
        self._following: dict[str, set[str]] = {}  # vehicle -> open incidents that follow it
        self._last_follow: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> Callable[[], Awaitable[None]]:
        """Load routes, resume following, redo effects an interrupted intake left undone, and
        start the sweep (overdue deadlines, unfinished effects); returns the stop function."""
        await self.routing.load()
        await self.categories.load()
        await self.rollup.check()  # cases written around the ORM, a new time zone, an upgrade
        async with self.db.session() as s:
            q = select(Incident.id, Incident.vehicle_id).where(Incident.state.in_(OPEN_STATES))
            for inc_id, vid in (await s.execute(q)).all():
                if vid:
                    self._following.setdefault(vid, set()).add(inc_id)
        await self.complete_effects()
        sweep = asyncio.create_task(self._sweep(), name="incident-sweep")

        async def stop() -> None:
            sweep.cancel()
            for task in [sweep, *self._tasks]:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

        return stop

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.settings.overdue_check_s)
            try:
                await self.incidents.announce_overdue()
                await self.complete_effects(min_age_s=self.settings.overdue_check_s)
            except Exception:  # the sweep must keep running
                log.exception("incident sweep failed")

    async def complete_effects(self, min_age_s: float = 0.0) -> int:
        """Apply the effects of open incidents whose intake was interrupted (a crash or an error
        between storing and announcing); returns how many."""
        cutoff = utcnow() - dt.timedelta(seconds=min_age_s)
        async with self.db.session() as s:
            q = select(Incident).where(
                Incident.state.in_(OPEN_STATES), Incident.effects_applied.is_(False), Incident.created_at <= cutoff
            )
            pending = list((await s.execute(q)).scalars())
        for inc in pending:
            log.warning("incident %s: applying its effects late", inc.id)
            await self.grants.revoke_incident("alarm", inc.id)  # grants may be half done: start over
            await self._open_effects(inc)
        return len(pending)

    # -- intake ----------------------------------------------------------------------------
    async def receive(self, source: str, a: dict[str, Any]) -> Received:
        """Store the alarm and its incident durably (one transaction), then apply the effects."""
        old = await self._existing(source, a["alarm_id"])
        if old is not None:
            return Received(old, True)
        cams, area, lat, lon = await self.resolve(a)
        depts = self.routing.departments(area, a["type"])
        inc = Incident(
            id=f"INC-{utcnow():%Y%m%d}-{secrets.token_hex(4).upper()}",
            type=a["type"],
            state="new",
            area=area,
            vehicle_id=a["vehicle_id"],
            lat=lat,
            lon=lon,
            text=a["text"],
            cameras=cams,
            departments=depts,
            history=[{"at": utcnow().isoformat(), "by": f"source:{source}", "action": "opened"}],
            created_at=utcnow(),
            effects_applied=False,
            overdue_announced=[],
            origin="alarm",
            category=a["type"],
            handlers=[],
            attachments=[],
        )
        try:
            async with self.db.session() as s:
                s.add(inc)
                s.add(Alarm(source=source, incident_id=inc.id, **a))
        except IntegrityError:  # the same alarm raced in: answer like a duplicate
            old = await self._existing(source, a["alarm_id"])
            if old is None:
                raise
            return Received(old, True)
        if a["vehicle_id"]:
            self._following.setdefault(a["vehicle_id"], set()).add(inc.id)
        await self.audit.record("alarm", incident_id=inc.id, detail=f"{source} {a['type']} {a['alarm_id']}")
        try:
            await self._open_effects(inc)
        except Exception:  # stored, so the sender must not retry: the sweep completes it
            log.exception("incident %s: effects failed; retried by the sweep", inc.id)
        return Received(inc.id, False)

    async def _existing(self, source: str, alarm_id: str) -> str | None:
        async with self.db.session() as s:
            q = select(Alarm.incident_id).where(Alarm.source == source, Alarm.alarm_id == alarm_id)
            return (await s.execute(q)).scalar_one_or_none()

    async def resolve(self, a: dict[str, Any]) -> tuple[list[str], str, float | None, float | None]:
        """The cameras to open: the vehicle's own (online ones), else the nearest fresh bus camera
        that is online, then the fixed cameras around; and the area and position of the alarm."""
        lat, lon = a["lat"], a["lon"]
        cams: list[str] = []
        vid = a["vehicle_id"]
        if vid:
            try:
                fix = await self.positions.latest(vid)
            except IndexUnavailable:  # the alarm must still be stored: do without the live position
                log.warning("alarm for vehicle %s: positions unavailable", vid)
                fix = None
            if fix is not None and lat is None:
                lat, lon = fix.lat, fix.lon
            cams = [c for c, _ in self.positions.vehicle_cameras.get(vid, []) if not await self._offline(c)]
        if not cams and lat is not None:
            try:
                buses = await self.positions.nearest(lat, lon, kinds={"bus"}, radius_m=self.settings.radius_m, limit=10)
            except IndexUnavailable:
                log.warning("alarm at %.5f,%.5f: positions unavailable, no bus camera", lat, lon)
                buses = []
            for c in buses:
                if not await self._offline(c.camera_id):
                    cams = [c.camera_id]
                    break
        area = ""
        if lat is not None:
            fixed = await self._fixed_near(lat, lon)
            cams += [c for c in fixed if c not in cams]
            area = next((ar for c in fixed if (ar := self.org.camera_area(c))), "")
        return cams, area, lat, lon

    async def _fixed_near(self, lat: float, lon: float) -> list[str]:
        if not self.settings.nearby_fixed:
            return []
        near = await self.positions.nearest(
            lat, lon, kinds={"fixed"}, radius_m=self.settings.radius_m, limit=self.settings.nearby_fixed
        )
        return [c.camera_id for c in near]

    def _areas(self) -> set[str]:
        """The sub-districts the organisation knows (the areas its centres and stations serve)."""
        return {u.area for u in self.org.units().values() if u.area and u.level in ("subdistrict", "station")}

    async def _offline(self, camera_id: str) -> bool:
        """Known not to work: the hub failed to pull it, or the inventory marks it offline."""
        if self.hub.describe(camera_id).get("state") == "failed":
            return True
        return await self.camera_offline(camera_id)

    async def _open_effects(self, inc: Incident) -> None:
        """Grants, pre-warm, the event; then mark the incident so a restart does not redo them."""
        until = grant_until(self.settings, inc)
        if inc.cameras and inc.departments and until > utcnow():
            await self.grants.grant_incident("alarm", inc.id, list(inc.departments), list(inc.cameras), until)
        # The console opens the cameras as soon as it hears the event; the hub is already pulling.
        await self._prewarm(inc.id, inc.cameras)
        self.events.publish(
            "incident.opened",
            {
                "incident_id": inc.id,
                "type": inc.type,
                "area": inc.area,
                "vehicle_id": inc.vehicle_id,
                "lat": inc.lat,
                "lon": inc.lon,
                "text": inc.text,
                "cameras": inc.cameras,
                "origin": inc.origin,
                "category": inc.category or inc.type,
                "address": inc.address,
                "station": inc.station,
            },
            cameras=inc.cameras,
            departments=self.incidents.audience(inc),
        )
        async with self.db.session() as s:
            row = await s.get(Incident, inc.id)
            if row is not None:
                row.effects_applied = True

    async def _prewarm(self, inc_id: str, cameras: list[str]) -> None:
        for hook in self.on_cameras:  # e.g. the recorder: the incident's cameras from now on
            hook(inc_id, cameras)
        for c in cameras:
            try:
                await self.hub.prewarm(c, self.settings.prewarm_s)
            except Exception:  # an unknown or broken camera must not stop the alarm
                log.warning("prewarm of camera %s for %s failed", c, inc_id)

    # -- follow mode -----------------------------------------------------------------------
    def vehicle_moved(self, vehicle_id: str, lat: float, lon: float, _t: float = 0.0) -> None:
        """A current fix arrived: incidents following this vehicle pick up the cameras around it
        (at most every ``follow_every_s`` per vehicle)."""
        if vehicle_id not in self._following:
            return
        now = time.monotonic()
        if now - self._last_follow.get(vehicle_id, -1e9) < self.settings.follow_every_s:
            return
        self._last_follow[vehicle_id] = now
        task = asyncio.get_running_loop().create_task(self._follow(vehicle_id, lat, lon))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _stop_following(self, inc: Incident) -> None:
        if inc.vehicle_id:
            incs = self._following.get(inc.vehicle_id, set())
            incs.discard(inc.id)
            if not incs:
                self._following.pop(inc.vehicle_id, None)

    async def _follow(self, vehicle_id: str, lat: float, lon: float) -> None:
        try:
            near = await self._fixed_near(lat, lon)
            for inc_id in list(self._following.get(vehicle_id, ())):
                await self._follow_one(inc_id, vehicle_id, lat, lon, near)
        except Exception:  # a background task: log, never lose the error silently
            log.exception("follow mode for vehicle %s failed", vehicle_id)

    async def _follow_one(self, inc_id: str, vehicle_id: str, lat: float, lon: float, near: list[str]) -> None:
        async with self.db.session() as s:
            inc = await s.get(Incident, inc_id)
            if inc is None or inc.state not in OPEN_STATES:
                return
            inc.lat, inc.lon = lat, lon
            new = [c for c in near if c not in inc.cameras]
            if new:
                inc.cameras = [*inc.cameras, *new]
                inc.history = [
                    *inc.history,
                    {"at": utcnow().isoformat(), "by": "follow", "action": "cameras", "added": new},
                ]
            depts = [
                *inc.departments,
                *([inc.dispatched_to] if inc.dispatched_to and inc.dispatched_to not in inc.departments else []),
            ]
        if not new:
            return
        if depts:
            until = grant_until(self.settings, inc)
            if until > utcnow():
                await self.grants.grant_incident("alarm", inc_id, depts, new, until)
        await self._prewarm(inc_id, new)
        self.events.publish(
            "incident.cameras",
            # "cameras": to open now; "nearby": the fixed cameras around the bus now (both filtered per user).
            {"incident_id": inc_id, "vehicle_id": vehicle_id, "lat": lat, "lon": lon, "cameras": new, "nearby": near},
            cameras=new,
            departments=self.incidents.audience(inc),
        )
