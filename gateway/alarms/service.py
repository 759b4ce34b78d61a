"""Alarm intake (HMAC-signed, idempotent, durable), camera resolution, incidents and their workflow."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.alarms.models import Alarm, AlarmSource, Incident
from gateway.settings import AlarmSettings
from storage.db import Database, utcnow
from storage.secretbox import SecretBox

__all__ = ["TRANSITIONS", "AlarmError", "AlarmService", "SignatureError"]

log = logging.getLogger(__name__)
NAME = re.compile(r"^[\w.-]{1,64}$")
# Workflow: state -> action -> next state.
TRANSITIONS: dict[str, dict[str, str]] = {
    "new": {"dispatch": "dispatched"},
    "dispatched": {"acknowledge": "acknowledged", "dispatch": "dispatched"},
    "acknowledged": {"onsite": "on_site"},
    "on_site": {"resolve": "resolved"},
    "resolved": {"close": "closed", "reopen": "on_site"},
    "closed": {},
}
OPEN_STATES = ("new", "dispatched", "acknowledged", "on_site", "resolved")
FOLLOW_EVERY_S = 2.0  # a moving bus re-evaluates its nearby cameras at most this often


class SignatureError(Exception):
    """The request is not signed by a registered source (message safe to show)."""


class AlarmError(ValueError):
    """Invalid alarm or workflow input (message names the field)."""


@dataclass(frozen=True, slots=True)
class Received:
    """Outcome of an alarm post."""

    incident_id: str
    duplicate: bool


def _hours(table: dict[str, float], key: str) -> float:
    return table.get(key, table.get("*", 24.0))


class AlarmService:
    """Everything about alarms and incidents; effects go through the collaborators passed in."""

    def __init__(self, settings: AlarmSettings, db: Database, box: SecretBox, ld: Any) -> None:
        self.settings = settings
        self.db = db
        self.box = box
        self.ld = ld
        self._following: dict[str, set[str]] = {}  # vehicle -> open incidents that follow it
        self._last_follow: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def load(self) -> None:
        """Remember which open incidents follow a vehicle (after a restart too)."""
        async with self.db.session() as s:
            q = select(Incident.id, Incident.vehicle_id).where(
                Incident.state.in_(OPEN_STATES), Incident.vehicle_id.is_not(None)
            )
            for inc_id, vid in (await s.execute(q)).all():
                if vid:
                    self._following.setdefault(vid, set()).add(inc_id)

    def vehicle_moved(self, vehicle_id: str, lat: float, lon: float) -> None:
        """A fix arrived: incidents following this vehicle pick up the cameras around it (throttled)."""
        if vehicle_id not in self._following:
            return
        now = time.monotonic()
        if now - self._last_follow.get(vehicle_id, 0.0) < FOLLOW_EVERY_S:
            return
        self._last_follow[vehicle_id] = now
        task = asyncio.get_running_loop().create_task(self._follow(vehicle_id, lat, lon))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, vehicle_id: str, lat: float, lon: float) -> None:
        near = self.ld.positions.nearest(
            lat, lon, kinds={"fixed"}, radius_m=self.settings.radius_m, limit=self.settings.nearby_fixed
        )
        for inc_id in list(self._following.get(vehicle_id, ())):
            async with self.db.session() as s:
                inc = await s.get(Incident, inc_id)
                if inc is None or inc.state not in OPEN_STATES:
                    continue
                new = [c.camera_id for c in near if c.camera_id not in inc.cameras]
                if not new:
                    continue
                inc.cameras = [*inc.cameras, *new]
                inc.lat, inc.lon = lat, lon
                depts = list(inc.departments)
            until = utcnow() + dt.timedelta(minutes=self.settings.grant_minutes)
            if depts:
                await self.ld.authorizer.grant_incident("alarm", inc_id, depts, new, until)
            for c in new:
                try:
                    await self.ld.hub.prewarm(c, self.settings.prewarm_s)
                except Exception:  # an unknown or broken camera must not stop following
                    log.warning("prewarm of camera %s for %s failed", c, inc_id)
            self.ld.events.publish(
                "incident.cameras",
                {"incident_id": inc_id, "vehicle_id": vehicle_id, "added": new, "lat": lat, "lon": lon},
                tuple(new),
            )

    # -- sources ---------------------------------------------------------------------------
    async def add_source(self, name: str) -> str:
        """Register a source; returns its secret (shown once)."""
        if not NAME.match(name):
            raise AlarmError("name: 1-64 letters, digits, '.', '_' or '-'")
        secret = secrets.token_urlsafe(32)
        async with self.db.session() as s:
            if await s.get(AlarmSource, name) is not None:
                raise AlarmError(f"name: source '{name}' exists (rotate its secret instead)")
            s.add(AlarmSource(name=name, secret_enc=self.box.encrypt(secret)))
        return secret

    async def rotate_source(self, name: str) -> str:
        """Give a source a new secret (the old one stops working at once)."""
        secret = secrets.token_urlsafe(32)
        async with self.db.session() as s:
            src = await s.get(AlarmSource, name)
            if src is None:
                raise AlarmError(f"name: no source '{name}'")
            src.secret_enc = self.box.encrypt(secret)
            src.rotated_at = utcnow()
        return secret

    async def sources(self) -> list[dict[str, Any]]:
        """Registered sources (never their secrets)."""
        async with self.db.session() as s:
            rows = (await s.execute(select(AlarmSource).order_by(AlarmSource.name))).scalars()
            return [
                {
                    "name": r.name,
                    "active": r.active,
                    "created_at": r.created_at.isoformat(),
                    "rotated_at": r.rotated_at.isoformat() if r.rotated_at else None,
                }
                for r in rows
            ]

    async def verify(self, source: str, timestamp: str, signature: str, body: bytes, now: float | None = None) -> str:
        """Check ``sha256=<hex>`` = HMAC-SHA256(secret, timestamp + "." + body); returns the source."""
        now = time.time() if now is None else now
        try:
            ts = float(timestamp)
        except ValueError:
            raise SignatureError("X-Liandong-Timestamp: not a number") from None
        if abs(now - ts) > self.settings.signature_window_s:
            raise SignatureError("X-Liandong-Timestamp: outside the accepted window")
        if not signature.startswith("sha256="):
            raise SignatureError("X-Liandong-Signature: must be sha256=<hex>")
        async with self.db.session() as s:
            src = await s.get(AlarmSource, source) if NAME.match(source) else None
        # Same work whether or not the source exists, so timing does not reveal source names.
        secret = self.box.decrypt(src.secret_enc) if src is not None and src.active else secrets.token_urlsafe(32)
        expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.removeprefix("sha256=")) or src is None or not src.active:
            raise SignatureError("signature does not match a registered source")
        return source

    # -- alarms ----------------------------------------------------------------------------
    @staticmethod
    def parse(body: bytes) -> dict[str, Any]:
        """Validate an alarm body; raises :class:`AlarmError` naming the field."""
        try:
            doc = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise AlarmError("body: invalid JSON") from None
        if not isinstance(doc, dict):
            raise AlarmError("body: must be a JSON object")
        aid = doc.get("alarm_id")
        if not isinstance(aid, str) or not 1 <= len(aid) <= 128:
            raise AlarmError("alarm_id: required, 1-128 characters")
        typ = doc.get("type", "panic")
        if not isinstance(typ, str) or not NAME.match(typ):
            raise AlarmError("type: a short name such as panic")
        vid = doc.get("vehicle_id")
        if vid is not None and (not isinstance(vid, str) or len(vid) > 64):
            raise AlarmError("vehicle_id: a string of at most 64 characters")
        lat, lon = doc.get("lat"), doc.get("lon")
        if (lat is None) != (lon is None):
            raise AlarmError("lat and lon: give both or neither")
        if lat is not None and lon is not None:
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lon)):
                raise AlarmError("lat: must be numbers")
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise AlarmError("lat: out of range")
        if vid is None and lat is None:
            raise AlarmError("vehicle_id: give a vehicle id and/or lat/lon")
        t = doc.get("time")
        try:
            when = dt.datetime.fromisoformat(t.replace("Z", "+00:00")) if isinstance(t, str) else utcnow()
        except ValueError:
            raise AlarmError("time: not an ISO 8601 time") from None
        if when.tzinfo is None:
            raise AlarmError("time: needs a timezone")
        text = doc.get("text", "")
        if not isinstance(text, str) or len(text) > 4000:
            raise AlarmError("text: at most 4000 characters")
        return {"alarm_id": aid, "type": typ, "vehicle_id": vid, "lat": lat, "lon": lon, "time": when, "text": text}

    async def receive(self, source: str, a: dict[str, Any]) -> Received:
        """Store the alarm and its incident durably (one transaction), then apply the effects."""
        async with self.db.session() as s:
            old = (
                await s.execute(select(Alarm).where(Alarm.source == source, Alarm.alarm_id == a["alarm_id"]))
            ).scalar_one_or_none()
            if old is not None:
                return Received(old.incident_id, True)
        cams, area, lat, lon = await self.resolve(a)
        depts = self.route(area, a["type"])
        inc_id = f"INC-{utcnow():%Y%m%d}-{secrets.token_hex(3).upper()}"
        try:
            async with self.db.session() as s:
                s.add(
                    Incident(
                        id=inc_id,
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
                    )
                )
                s.add(Alarm(source=source, incident_id=inc_id, **a))
        except IntegrityError:  # the same alarm raced in: answer like a duplicate
            async with self.db.session() as s:
                old = (
                    await s.execute(select(Alarm).where(Alarm.source == source, Alarm.alarm_id == a["alarm_id"]))
                ).scalar_one()
                return Received(old.incident_id, True)
        if a["vehicle_id"]:
            self._following.setdefault(a["vehicle_id"], set()).add(inc_id)
        await self._open_effects(inc_id, a, cams, depts, area)
        return Received(inc_id, False)

    async def resolve(self, a: dict[str, Any]) -> tuple[list[str], str, float | None, float | None]:
        """The cameras to open: the vehicle's (or the nearest fresh bus camera), plus nearby fixed ones."""
        pos = self.ld.positions
        lat, lon = a["lat"], a["lon"]
        cams: list[str] = []
        vid = a["vehicle_id"]
        if vid:
            fix = pos.latest.get(vid)
            if fix is not None and lat is None:
                lat, lon = fix.lat, fix.lon
            cams = [c for c, _ in pos.vehicle_cameras.get(vid, [])]
            cams = [c for c in cams if await self._online(c)]
        if not cams and lat is not None:
            for c in pos.nearest(lat, lon, kinds={"bus"}, limit=10):
                if await self._online(c.camera_id):
                    cams = [c.camera_id]
                    break
        area = ""
        if lat is not None and self.settings.nearby_fixed:
            fixed = pos.nearest(
                lat, lon, kinds={"fixed"}, radius_m=self.settings.radius_m, limit=self.settings.nearby_fixed
            )
            cams += [c.camera_id for c in fixed if c.camera_id not in cams]
            if fixed:
                area = self._area(fixed[0].camera_id)
        return cams, area, lat, lon

    async def _online(self, camera_id: str) -> bool:
        """Not known to be offline (probe result or the hub's state)."""
        if self.ld.hub.describe(camera_id)["state"] == "failed":
            return False
        try:
            return bool((await self.ld.store.get(camera_id)).status.value != "offline")
        except LookupError:
            return False

    def _area(self, camera_id: str) -> str:
        for c in self.ld.authorizer.index.cameras:
            if c.id == camera_id:
                return str(c.area)
        return ""

    def route(self, area: str, type_: str) -> list[str]:
        """Departments on duty: the routing table plus the sub-district centre of the area."""
        out: list[str] = []
        for r in self.settings.routing:
            if r.area in ("*", area) and r.type in ("*", type_):
                out += [d for d in r.departments if d not in out]
        st = self.ld.authorizer.state
        if st is not None:
            out += [d.id for d in st.departments.values() if area and d.area == area and d.id not in out]
            out = [d for d in out if d in st.departments]
        return out

    async def _open_effects(self, inc_id: str, a: dict[str, Any], cams: list[str], depts: list[str], area: str) -> None:
        until = utcnow() + dt.timedelta(minutes=self.settings.grant_minutes)
        if cams and depts:
            await self.ld.authorizer.grant_incident("alarm", inc_id, depts, cams, until)
        for c in cams:
            try:
                await self.ld.hub.prewarm(c, self.settings.prewarm_s)
            except Exception:  # an unknown or broken camera must not stop the alarm
                log.warning("prewarm of camera %s for %s failed", c, inc_id)
        await self.ld.audit.record("alarm", incident_id=inc_id, detail=f"{a['type']} {a['alarm_id']}")
        self.ld.events.publish(
            "incident.opened",
            {
                "incident_id": inc_id,
                "type": a["type"],
                "area": area,
                "vehicle_id": a["vehicle_id"],
                "lat": a["lat"],
                "lon": a["lon"],
                "text": a["text"],
                "cameras": cams,
            },
            tuple(cams),
        )

    # -- incidents -------------------------------------------------------------------------
    async def act(self, inc_id: str, action: str, by: str, body: dict[str, Any]) -> Incident:
        """Apply a workflow step (or ``note`` / ``escalate``), record who and when, publish it."""
        async with self.db.session() as s:
            inc = await s.get(Incident, inc_id)
            if inc is None:
                raise LookupError(f"no incident '{inc_id}'")
            entry: dict[str, Any] = {"at": utcnow().isoformat(), "by": by, "action": action}
            if action == "note":
                text = body.get("text")
                if not isinstance(text, str) or not 1 <= len(text) <= 4000:
                    raise AlarmError("text: 1-4000 characters")
                entry["text"] = text
            elif action == "escalate":
                if inc.level == "district":
                    raise AlarmError("action: already at the district centre")
                inc.level = "district"
            else:
                nxt = TRANSITIONS.get(inc.state, {}).get(action)
                if nxt is None:
                    allowed = ", ".join(TRANSITIONS.get(inc.state, {})) or "none"
                    raise AlarmError(f"action: '{action}' not allowed in state {inc.state} (allowed: {allowed})")
                if action == "dispatch":
                    dept = body.get("department")
                    if not isinstance(dept, str) or not dept:
                        raise AlarmError("department: required")
                    inc.dispatched_to = dept
                    now = utcnow()
                    inc.onsite_deadline = now + dt.timedelta(hours=_hours(self.settings.onsite_hours, inc.type))
                    inc.resolve_deadline = now + dt.timedelta(hours=_hours(self.settings.resolve_hours, inc.type))
                    entry["department"] = dept
                inc.state = nxt
            inc.history = [*inc.history, entry]
        await self.ld.audit.record("incident", incident_id=inc_id, username=by, detail=action)
        if action == "close":
            await self.ld.authorizer.revoke_incident(by, inc_id)
            if inc.vehicle_id:
                self._following.get(inc.vehicle_id, set()).discard(inc_id)
        self.ld.events.publish(
            "incident.updated", {"incident_id": inc_id, "state": inc.state, "action": action}, tuple(inc.cameras)
        )
        return inc

    async def list(self, *, state: str | None = None, area: str | None = None, limit: int = 200) -> list[Incident]:
        """Incidents, newest first."""
        q = select(Incident).order_by(Incident.created_at.desc()).limit(limit)
        if state:
            q = q.where(Incident.state == state)
        if area:
            q = q.where(Incident.area == area)
        async with self.db.session() as s:
            return list((await s.execute(q)).scalars())

    async def get(self, inc_id: str) -> Incident | None:
        """One incident."""
        async with self.db.session() as s:
            return await s.get(Incident, inc_id)

    @staticmethod
    def overdue(inc: Incident, now: dt.datetime | None = None) -> bool:
        """Past its on-site or resolution deadline and not yet there."""
        now = now or utcnow()
        if inc.state in ("on_site",) and inc.resolve_deadline:
            return now > inc.resolve_deadline
        if inc.state in ("dispatched", "acknowledged") and inc.onsite_deadline:
            return now > inc.onsite_deadline
        return False

    async def stats(self) -> dict[str, Any]:
        """Per sub-district and per department: open, handled %, overdue."""
        async with self.db.session() as s:
            rows = list((await s.execute(select(Incident))).scalars())
        out: dict[str, dict[str, dict[str, float]]] = {"by_area": {}, "by_department": {}}
        for inc in rows:
            for key, val in (("by_area", inc.area or "-"), ("by_department", inc.dispatched_to or "-")):
                b = out[key].setdefault(val, {"total": 0, "open": 0, "handled": 0, "overdue": 0})
                b["total"] += 1
                b["open"] += inc.state in OPEN_STATES
                b["handled"] += inc.state in ("resolved", "closed")
                b["overdue"] += self.overdue(inc)
        for group in out.values():
            for b in group.values():
                b["handled_pct"] = round(100 * b["handled"] / b["total"], 1) if b["total"] else 0.0
        return out


def incident_dict(inc: Incident) -> dict[str, Any]:
    """An incident for the API."""
    return {
        "id": inc.id,
        "type": inc.type,
        "state": inc.state,
        "area": inc.area,
        "level": inc.level,
        "vehicle_id": inc.vehicle_id,
        "lat": inc.lat,
        "lon": inc.lon,
        "text": inc.text,
        "cameras": inc.cameras,
        "departments": inc.departments,
        "dispatched_to": inc.dispatched_to,
        "created_at": inc.created_at.isoformat(),
        "onsite_deadline": inc.onsite_deadline.isoformat() if inc.onsite_deadline else None,
        "resolve_deadline": inc.resolve_deadline.isoformat() if inc.resolve_deadline else None,
        "overdue": AlarmService.overdue(inc),
        "history": inc.history,
    }
