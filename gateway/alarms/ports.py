"""What the alarm package needs from the rest of the gateway, as narrow interfaces.

The ACL answers camera and organisation questions and holds incident grants, the stream hub
pre-warms cameras, the event bus reaches consoles, the audit log records. Tests and other
deployments plug in anything with these methods.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any, Protocol

from acl.identity import Subject

__all__ = [
    "AclOrganisation",
    "AuditSink",
    "CameraAccess",
    "EventPublisher",
    "IncidentGrants",
    "Organisation",
    "StreamPrewarm",
    "Unit",
    "centres_in_charge",
    "parent_of",
    "subtree",
]


@dataclass(frozen=True, slots=True)
class Unit:
    """An organisational unit: the district centre, a sub-district centre, a station or a department."""

    id: str
    level: str  # district | subdistrict | station | department
    area: str | None = None
    parent: str | None = None  # the unit above (a station's sub-district centre)
    name: str = ""


class Organisation(Protocol):
    """Departments and where cameras are."""

    def units(self) -> Mapping[str, Unit]:
        """Every unit by id."""
        ...

    def camera_area(self, camera_id: str) -> str:
        """The sub-district a camera is in ('' if unknown)."""
        ...


class CameraAccess(Protocol):
    """The ACL's one question."""

    def authorize(self, subject: Subject, action: str, camera_id: str) -> bool:
        """Whether the subject may do ``action`` on the camera now."""
        ...


class IncidentGrants(Protocol):
    """Time-limited grants tied to an incident."""

    async def grant_incident(
        self, author: str, incident_id: str, departments: list[str], cameras: list[str], until: dt.datetime
    ) -> list[int]:
        """Let these departments view these cameras until ``until`` (or until revoked)."""
        ...

    async def revoke_incident(self, author: str, incident_id: str) -> int:
        """End every grant of the incident."""
        ...


class StreamPrewarm(Protocol):
    """The stream hub, as far as alarms use it."""

    async def prewarm(self, camera_id: str, hold_s: float) -> None:
        """Start pulling a camera now and keep it for ``hold_s``."""
        ...

    def describe(self, camera_id: str) -> dict[str, Any]:
        """The camera's stream state (``state`` is e.g. idle, live or failed)."""
        ...


class EventPublisher(Protocol):
    """Where live events go (see :mod:`gateway.events`)."""

    def publish(
        self, type_: str, data: dict[str, Any], *, cameras: Sequence[str] = (), departments: Sequence[str] = ()
    ) -> Any:
        """Send an event to consoles of users who may view one of ``cameras`` or belong to ``departments``."""
        ...


class AuditSink(Protocol):
    """The audit log."""

    async def record(self, kind: str, **fields: Any) -> None:
        """Append one event."""
        ...


class AclOrganisation:
    """:class:`Organisation` over the ACL service's loaded policy and inventory."""

    def __init__(self, acl: Any) -> None:
        self.acl = acl
        self._areas: dict[str, str] = {}
        self._areas_of: object = None

    def units(self) -> Mapping[str, Unit]:
        st = self.acl.state
        if st is None:
            return {}
        return {
            d.id: Unit(d.id, getattr(d.level, "value", str(d.level)), d.area or None, d.parent_id, d.name)
            for d in st.departments.values()
        }

    def camera_area(self, camera_id: str) -> str:
        index = self.acl.index
        if self._areas_of is not index:  # rebuilt with the index (inventory or policy changed)
            self._areas = {c.id: c.area for c in index.cameras}
            self._areas_of = index
        return self._areas.get(camera_id, "")


def centres_in_charge(units: Mapping[str, Unit], level: str, area: str) -> Set[str]:
    """The command centres responsible for an incident: the district centre always, and the
    area's sub-district centre unless the incident was escalated to the district."""
    out = {u.id for u in units.values() if u.level == "district"}
    if level != "district" and area:
        out |= {u.id for u in units.values() if u.level == "subdistrict" and u.area == area}
    return out


def parent_of(units: Mapping[str, Unit], unit_id: str) -> str | None:
    """The unit above: its stored parent, else (a station without one) the sub-district centre of its
    area, else (a sub-district centre or a department) the district centre."""
    u = units.get(unit_id)
    if u is None or u.level == "district":
        return None
    if u.parent and u.parent in units:
        return u.parent
    if u.level == "station" and u.area:
        for v in units.values():
            if v.level == "subdistrict" and v.area == u.area:
                return v.id
    return next((v.id for v in units.values() if v.level == "district"), None)


def subtree(units: Mapping[str, Unit], roots: Set[str]) -> set[str]:
    """The units ``roots`` and every unit below them."""
    out = {r for r in roots if r in units}
    children: dict[str, list[str]] = {}
    for uid in units:
        p = parent_of(units, uid)
        if p is not None:
            children.setdefault(p, []).append(uid)
    todo = list(out)
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out
