"""Who may steer a camera, and whose steering wins.

- Steering is the ACL action ``ptz``; storing a preset is ``ptz_preset`` (both above ``view_live``
  in the action ladder, so a viewer is not a steerer).
- A user's PTZ priority is the highest of their units': a unit's own ``ptz_priority`` when set, else
  ``ptz.unit_priority`` for its id, else ``ptz.level_priority`` for its level. The holder of a camera
  keeps it against equal or lower priorities until idle; a higher priority takes it over at once
  (the atomic comparison itself runs in the holds store, :mod:`gateway.ptz.holds`).
- An incident's lock admits only the incident's handling units (its audience); the command centres
  in charge of an incident (and admins) may lock and unlock its cameras.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import Depends, HTTPException, Request, status

from acl.credentials import Scope
from acl.identity import Subject
from gateway.alarms.models import Incident
from gateway.container import services
from gateway.policy.guards import _mark, _valid_body, current_subject, incident_rules
from gateway.policy.incidents import IncidentRules
from gateway.ptz.commands import PtzCommand
from gateway.ptz.holds import PtzLock
from gateway.ptz.settings import PtzSettings

__all__ = [
    "PRESET_ACTION",
    "PTZ_ACTION",
    "UnitRank",
    "action_for",
    "lock_admits",
    "lock_departments",
    "may_lock",
    "rank_of",
    "require_ptz",
    "require_ptz_lock",
]

PTZ_ACTION = "ptz"
PRESET_ACTION = "ptz_preset"
# The ranks of users in no unit: they may steer (if the ACL lets them) but anyone in a unit wins.
NO_UNIT = ("", "")


class UnitLike(Protocol):
    """What the rules read of a department."""

    id: str
    name: str
    ptz_priority: int | None

    @property
    def level(self) -> Any:
        """district, subdistrict, station or department."""
        ...


@dataclass(frozen=True, slots=True)
class UnitRank:
    """A user's PTZ priority and the unit it comes from (named in refusals)."""

    priority: int
    unit: str
    unit_name: str


def unit_priority(unit: UnitLike, settings: PtzSettings) -> int:
    """A unit's PTZ priority (its own, else the default for its id, else for its level)."""
    if unit.ptz_priority is not None:
        return int(unit.ptz_priority)
    if unit.id in settings.unit_priority:
        return settings.unit_priority[unit.id]
    level = getattr(unit.level, "value", str(unit.level))
    return settings.level_priority.get(level, 0)


def rank_of(subject: Subject, units: Mapping[str, UnitLike], settings: PtzSettings) -> UnitRank:
    """The subject's highest-ranking unit (ties: the first id, so the answer is stable)."""
    best: UnitRank | None = None
    for dept in sorted(subject.departments):
        u = units.get(dept)
        if u is None:
            continue
        r = UnitRank(unit_priority(u, settings), u.id, u.name)
        if best is None or r.priority > best.priority:
            best = r
    return best or UnitRank(0, *NO_UNIT)


def action_for(op: str) -> str:
    """The ACL action a PTZ command needs."""
    return PRESET_ACTION if op == "set_preset" else PTZ_ACTION


def lock_admits(subject: Subject, lock: PtzLock) -> bool:
    """Whether an incident's lock lets the subject steer (one of the incident's handling units)."""
    return bool(subject.departments & set(lock.departments))


def may_lock(rules: IncidentRules, subject: Subject, inc: Incident) -> bool:
    """The command centres in charge of the incident (and admins) lock its cameras' PTZ."""
    return inc.state != "closed" and rules.may_act(subject, "dispatch", inc)


def lock_departments(rules: IncidentRules, inc: Incident) -> list[str]:
    """The units a lock admits: the incident's audience (routed, dispatched, centres in charge)."""
    return rules.flow.audience(inc)


def require_ptz() -> Any:
    """``acl.authorize(subject, action, camera_id)`` with the action the command needs: ``ptz``,
    or ``ptz_preset`` for a ``set_preset`` body (a GET asks ``ptz``). 403, audited, otherwise."""

    async def _ptz(request: Request, camera_id: str, subject: Subject = Depends(current_subject)) -> Subject:
        ld = services(request)
        op = ""
        if request.method == "POST":
            body = await _valid_body(request, PtzCommand)
            op = str(getattr(body, "op", ""))
        action = action_for(op)
        if not ld.authorizer.authorize(subject, action, camera_id):
            await ld.audit_denied(request, subject, action, camera_id)
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"not permitted: {action} on camera '{camera_id}'")
        return subject

    return Depends(_mark(_ptz, "camera:ptz", Scope.api))


def require_ptz_lock() -> Any:
    """The route's ``incident_id`` is an open incident whose cameras the caller may lock
    (:func:`may_lock`); an incident the caller may not see answers 404. The incident is left in
    ``request.state.incident``."""

    async def _lock(request: Request, incident_id: str, subject: Subject = Depends(current_subject)) -> Subject:
        rules = incident_rules(request)
        inc = await rules.flow.get(incident_id)
        if inc is None or not rules.may_act(subject, "view", inc):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident '{incident_id}'")
        if not may_lock(rules, subject, inc):
            await services(request).audit_denied(request, subject, "incident:ptz_lock", None)
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"not permitted: ptz_lock on incident '{incident_id}'")
        request.state.incident = inc
        return subject

    return Depends(_mark(_lock, "incident:ptz_lock", Scope.api))
