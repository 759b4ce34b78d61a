"""Who is on duty for an alarm: the routing table (settings plus rules admins add through the API)
and the sub-district centre of the area the alarm is in."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from sqlalchemy import select

from gateway.alarms.models import AlarmRouteRow
from gateway.alarms.ports import Organisation
from gateway.settings import AlarmRoute, AlarmSettings
from storage.db import Database

__all__ = ["RouteError", "RoutingTable", "on_duty"]


class RouteError(ValueError):
    """Invalid routing rule (message names the field)."""


def on_duty(hours: str, local: dt.time) -> bool:
    """Whether a local time falls in ``HH:MM-HH:MM`` (empty: always); windows may wrap midnight."""
    if not hours:
        return True
    start_s, end_s = hours.split("-")
    start, end = dt.time.fromisoformat(start_s), dt.time.fromisoformat(end_s)
    if start <= end:
        return start <= local < end
    return local >= start or local < end


class RoutingTable:
    """Routes from settings (fixed) and from the database (admin API), read into memory."""

    def __init__(self, settings: AlarmSettings, db: Database, org: Organisation) -> None:
        self.settings = settings
        self.db = db
        self.org = org
        self.zone = zoneinfo.ZoneInfo(settings.timezone)
        self._stored: list[tuple[int, AlarmRoute]] = []

    async def load(self) -> None:
        """Read the stored routes."""
        async with self.db.session() as s:
            rows = (await s.execute(select(AlarmRouteRow).order_by(AlarmRouteRow.id))).scalars()
            self._stored = [
                (r.id, AlarmRoute(area=r.area, type=r.type, departments=r.departments, hours=r.hours)) for r in rows
            ]

    def routes(self) -> list[dict[str, Any]]:
        """Every route, settings first (``id`` None: change them in the settings file)."""
        out: list[dict[str, Any]] = [
            {"id": None, "source": "settings", **r.model_dump()} for r in self.settings.routing
        ]
        out += [{"id": rid, "source": "api", **r.model_dump()} for rid, r in self._stored]
        return out

    async def add(self, route: AlarmRoute, author: str) -> dict[str, Any]:
        """Store a route; its departments must exist."""
        units = self.org.units()
        missing = [d for d in route.departments if d not in units]
        if missing:
            raise RouteError(f"departments: unknown department(s) {', '.join(missing)}")
        async with self.db.session() as s:
            row = AlarmRouteRow(**route.model_dump(), created_by=author)
            s.add(row)
            await s.flush()
            rid = row.id
        self._stored.append((rid, route))
        return {"id": rid, "source": "api", **route.model_dump()}

    async def remove(self, route_id: int) -> None:
        """Delete a stored route."""
        async with self.db.session() as s:
            row = await s.get(AlarmRouteRow, route_id)
            if row is None:
                raise LookupError(f"no stored route {route_id}")
            await s.delete(row)
        self._stored = [(rid, r) for rid, r in self._stored if rid != route_id]

    def departments(self, area: str, type_: str, now: dt.datetime | None = None) -> list[str]:
        """Departments on duty for an alarm of ``type_`` in ``area``, in routing order, existing ones only."""
        local = (now or dt.datetime.now(dt.UTC)).astimezone(self.zone).time()
        out: list[str] = []
        for route in [*self.settings.routing, *(r for _, r in self._stored)]:
            if route.area in ("*", area) and route.type in ("*", type_) and on_duty(route.hours, local):
                out += [d for d in route.departments if d not in out]
        units = self.org.units()
        # The sub-district centre of the area is always on duty for alarms in its area.
        out += [
            u.id for u in units.values() if area and u.level == "subdistrict" and u.area == area and u.id not in out
        ]
        return [d for d in out if d in units]
