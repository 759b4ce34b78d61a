"""Cases entered by people and systems: hotline call-takers and patrols (operators) and
integration accounts. A case is an :class:`~gateway.alarms.models.Incident` like the ones alarms
open; it has a category, an address (often only the sub-district, neighbourhood and street), the
reporter's name and phone (encrypted at rest), a description and, when it has coordinates, the
cameras around it, opened like an alarm's (same grants, same events, same pre-warm).

The address picks the sub-district and the neighbourhood station from the organisation's own names
(the registry's areas and the stations' names), not from a geocoder.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from gateway.alarms.models import Incident
from gateway.alarms.ports import Organisation, Unit
from gateway.alarms.routing import RoutingTable
from storage.db import Database, utcnow
from storage.secretbox import SecretBox

__all__ = ["ORIGINS", "CaseError", "CaseIntake", "mask_name", "mask_phone", "parse_case", "place_of"]

ORIGINS = ("hotline", "patrol", "api")
CATEGORY = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
PHONE = re.compile(r"^\+?[0-9][0-9-]{4,19}$")
FIELDS = {
    "origin",
    "category",
    "subdistrict",
    "neighbourhood",
    "address",
    "lat",
    "lon",
    "reporter_name",
    "reporter_phone",
    "text",
}


class CaseError(ValueError):
    """An invalid case (message names the field)."""


def _str(doc: dict[str, Any], key: str, max_len: int, *, required: bool = False) -> str:
    v = doc.get(key, "")
    if v is None:
        v = ""
    if not isinstance(v, str) or len(v) > max_len:
        raise CaseError(f"{key}: text of at most {max_len} characters")
    v = v.strip()
    if required and not v:
        raise CaseError(f"{key}: required")
    return v


def parse_case(doc: Any) -> dict[str, Any]:
    """Validate a case body; raises :class:`CaseError` naming the first bad field."""
    if not isinstance(doc, dict):
        raise CaseError("body: must be a JSON object")
    unknown = sorted(set(doc) - FIELDS)
    if unknown:
        raise CaseError(f"{unknown[0]}: unknown field")
    origin = doc.get("origin", "hotline")
    if origin not in ORIGINS:
        raise CaseError(f"origin: one of {', '.join(ORIGINS)}")
    category = doc.get("category")
    if not isinstance(category, str) or not CATEGORY.match(category):
        raise CaseError("category: a category name such as road or noise")
    lat, lon = doc.get("lat"), doc.get("lon")
    if (lat is None) != (lon is None):
        raise CaseError(f"{'lon' if lon is None else 'lat'}: give both lat and lon, or neither")
    for name, v, lim in (("lat", lat, 90), ("lon", lon, 180)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not -lim <= v <= lim):
            raise CaseError(f"{name}: a number between -{lim} and {lim}")
    out = {
        "origin": origin,
        "category": category,
        "subdistrict": _str(doc, "subdistrict", 64),
        "neighbourhood": _str(doc, "neighbourhood", 128),
        "address": _str(doc, "address", 300),
        "lat": lat,
        "lon": lon,
        "reporter_name": _str(doc, "reporter_name", 64),
        "reporter_phone": _str(doc, "reporter_phone", 20),
        "text": _str(doc, "text", 4000, required=True),
    }
    if out["reporter_phone"] and not PHONE.match(out["reporter_phone"]):
        raise CaseError("reporter_phone: a phone number (digits, optional + and -)")
    if not (out["address"] or out["subdistrict"] or lat is not None):
        raise CaseError("address: give an address, a sub-district or lat/lon")
    return out


def place_of(units: Mapping[str, Unit], areas: set[str], case: dict[str, Any]) -> tuple[str, str | None]:
    """The sub-district (area) and neighbourhood station of a case, from its named sub-district, its
    neighbourhood or its address text: the longest known area name the text contains, then a station
    of that area named by ``neighbourhood`` (its id or name) or whose name the address contains."""
    area = case["subdistrict"] if case["subdistrict"] in areas else ""
    if not area:
        text = f"{case['subdistrict']} {case['address']}"
        found = [a for a in areas if a and a in text]
        area = max(found, key=len) if found else ""
    stations = [u for u in units.values() if u.level == "station" and (not area or u.area == area)]
    nb = case["neighbourhood"]
    station = next((u for u in stations if nb and nb in (u.id, u.name)), None)
    if station is None:
        named = [u for u in stations if u.name and (u.name in case["address"] or (nb and u.name in nb))]
        station = max(named, key=lambda u: len(u.name)) if named else None
    if station is not None and not area:
        area = station.area or ""
    return area, station.id if station else None


def mask_name(name: str) -> str:
    """张三丰 -> 张**."""
    return name[:1] + "*" * (len(name) - 1) if name else ""


def mask_phone(phone: str) -> str:
    """13812345678 -> 138****5678."""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "*" * len(phone)


class CaseIntake:
    """Creates cases and reads their reporters. ``fixed_near(lat, lon)`` lists the fixed cameras
    around a place; ``open_effects(incident)`` applies an opened incident's grants, pre-warm and
    event (the alarm service's, so a case opens like an alarm)."""

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        org: Organisation,
        routing: RoutingTable,
        fixed_near: Callable[[float, float], Awaitable[list[str]]],
        open_effects: Callable[[Incident], Awaitable[None]],
        areas: Callable[[], set[str]],
    ) -> None:
        self.db = db
        self.box = box
        self.org = org
        self.routing = routing
        self.fixed_near = fixed_near
        self.open_effects = open_effects
        self.areas = areas

    async def create(self, case: dict[str, Any], by: str) -> Incident:
        """Store a parsed case (new, at its sub-district centre, or at the district centre when no
        sub-district was found), then open its cameras and announce it."""
        units = self.org.units()
        area, station = place_of(units, self.areas(), case)
        cams: list[str] = []
        if case["lat"] is not None:
            cams = await self.fixed_near(case["lat"], case["lon"])
            if not area:
                area = next((a for c in cams if (a := self.org.camera_area(c))), "")
        now = utcnow()
        inc = Incident(
            id=f"CASE-{now:%Y%m%d}-{secrets.token_hex(4).upper()}",
            type=case["category"],
            category=case["category"],
            origin=case["origin"],
            state="new",
            area=area,
            station=station,
            level="subdistrict" if area else "district",
            address=case["address"],
            lat=case["lat"],
            lon=case["lon"],
            text=case["text"],
            cameras=cams,
            departments=self.routing.departments(area, case["category"]),
            reporter_name_enc=self.box.encrypt(case["reporter_name"]) if case["reporter_name"] else None,
            reporter_phone_enc=self.box.encrypt(case["reporter_phone"]) if case["reporter_phone"] else None,
            created_by=by,
            history=[{"at": now.isoformat(), "by": by, "action": "opened", "origin": case["origin"]}],
            created_at=now,
            effects_applied=False,
            overdue_announced=[],
            handlers=[],
            attachments=[],
        )
        async with self.db.session() as s:
            s.add(inc)
        await self.open_effects(inc)
        return inc

    def reporter(self, inc: Incident, *, full: bool) -> dict[str, str] | None:
        """The reporter's name and phone, masked unless ``full`` (the caller checked and audits that)."""
        if inc.reporter_name_enc is None and inc.reporter_phone_enc is None:
            return None
        name = self.box.decrypt(inc.reporter_name_enc) if inc.reporter_name_enc else ""
        phone = self.box.decrypt(inc.reporter_phone_enc) if inc.reporter_phone_enc else ""
        if full:
            return {"name": name, "phone": phone}
        return {"name": mask_name(name), "phone": mask_phone(phone)}
