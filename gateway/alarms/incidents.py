"""The incident workflow: states, who may take each step, deadlines, escalation, overdue flags and
statistics. Every step is stored with who and when, audited, and published to consoles.

An incident is a case: born from an alarm, a hotline call, a patrol or an integration account
(:mod:`gateway.alarms.cases`). States: new (received) -> dispatched (to a unit below or a
department; the category's on-site and resolution deadlines start) -> acknowledged -> on_site ->
resolved -> confirmed (the reporter was called back, with the result) -> verified (on site, by
someone other than the handlers) -> closed; a failed call-back or verification reopens it (back to
on_site). A command centre in charge (the area's sub-district centre, or the district centre once
escalated; the district centre can always step in) dispatches, escalates, confirms, verifies,
closes and reopens; the unit it is dispatched to acknowledges, reports on site and resolves, and a
station escalates a case it cannot handle to its sub-district. Who may do which step is
:mod:`gateway.policy.incidents`. Closing ends the incident's grants.

Dispatches, and deadlines coming and passing, write notices into the outbox in the step's own
transaction (:mod:`gateway.alarms.notices`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, or_, select

from gateway.alarms.categories import CategoryTable
from gateway.alarms.models import Incident
from gateway.alarms.notices import Outbox
from gateway.alarms.ports import (
    AuditSink,
    EventPublisher,
    IncidentGrants,
    Organisation,
    centres_in_charge,
    parent_of,
)
from gateway.settings import AlarmSettings
from storage.db import Database, utcnow

__all__ = [
    "ACTIONS",
    "COMMAND_ACTIONS",
    "FIELD_ACTIONS",
    "OPEN_STATES",
    "TRANSITIONS",
    "IncidentWorkflow",
    "WorkflowError",
    "grant_until",
    "incident_dict",
    "overdue_ever",
    "overdue_kinds",
]

log = logging.getLogger(__name__)
# state -> action -> next state
TRANSITIONS: dict[str, dict[str, str]] = {
    "new": {"dispatch": "dispatched"},
    "dispatched": {"acknowledge": "acknowledged", "dispatch": "dispatched"},
    "acknowledged": {"onsite": "on_site"},
    "on_site": {"resolve": "resolved"},
    "resolved": {"confirm": "confirmed", "reopen": "on_site"},
    "confirmed": {"verify": "verified", "reopen": "on_site"},
    "verified": {"close": "closed", "reopen": "on_site"},
    "closed": {},
}
OPEN_STATES = ("new", "dispatched", "acknowledged", "on_site", "resolved", "confirmed", "verified")
COMMAND_ACTIONS = frozenset({"dispatch", "escalate", "confirm", "verify", "close", "reopen"})
FIELD_ACTIONS = frozenset({"acknowledge", "onsite", "resolve"})
CALLBACK_RESULTS = ("satisfied", "unsatisfied", "unreachable")
# Grants of a case that lasts until it closes (alarms.grant_minutes unset) end at close; this is only a backstop.
UNTIL_CLOSED = dt.timedelta(days=3650)
ACTIONS = COMMAND_ACTIONS | FIELD_ACTIONS | {"note"}
# The most incident rows one list request reads while filling a page with incidents the caller may see.
SCAN_MAX = 50_000


class WorkflowError(ValueError):
    """A step that is not allowed now or lacks input (message names the field)."""


def grant_until(settings: AlarmSettings, inc: Incident) -> dt.datetime:
    """When the incident's camera grants end: ``grant_minutes`` after it opened, or (unset) when it
    closes (closing revokes them; the far date is a backstop)."""
    if settings.grant_minutes is None:
        return inc.created_at + UNTIL_CLOSED
    return inc.created_at + dt.timedelta(minutes=settings.grant_minutes)


def overdue_ever(inc: Incident, now: dt.datetime | None = None) -> list[str]:
    """Deadlines that were or are missed, also after the case closed (what the statistics count)."""
    now = now or utcnow()
    out = []
    if inc.onsite_deadline and (inc.onsite_at or now) > inc.onsite_deadline:
        out.append("onsite")
    if inc.resolve_deadline and (inc.resolved_at or now) > inc.resolve_deadline:
        out.append("resolve")
    return out


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t else None


def overdue_kinds(inc: Incident, now: dt.datetime | None = None) -> list[str]:
    """Deadlines passed without reaching them: ``onsite`` (not on site yet) and/or ``resolve``."""
    now = now or utcnow()
    out = []
    if inc.state in ("dispatched", "acknowledged") and inc.onsite_deadline and now > inc.onsite_deadline:
        out.append("onsite")
    if inc.state in ("dispatched", "acknowledged", "on_site") and inc.resolve_deadline and now > inc.resolve_deadline:
        out.append("resolve")
    return out


def incident_dict(inc: Incident, now: dt.datetime | None = None) -> dict[str, Any]:
    """An incident for the API."""
    overdue = overdue_kinds(inc, now)
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
        "overdue": bool(overdue),
        "overdue_deadlines": overdue,
        "history": inc.history,
        "origin": inc.origin,
        "category": inc.category or inc.type,
        "station": inc.station,
        "address": inc.address,
        "created_by": inc.created_by,
        "dispatched_at": _iso(inc.dispatched_at),
        "onsite_at": _iso(inc.onsite_at),
        "resolved_at": _iso(inc.resolved_at),
        "closed_at": _iso(inc.closed_at),
        "handlers": inc.handlers,
        "overdue_ever": overdue_ever(inc, now),
        "attachments": [
            {k: a[k] for k in ("n", "type", "size", "at", "by", "text") if k in a} for a in inc.attachments
        ],
    }


class IncidentWorkflow:
    """Reads and moves incidents; effects go through the collaborators passed in."""

    def __init__(
        self,
        settings: AlarmSettings,
        db: Database,
        org: Organisation,
        grants: IncidentGrants,
        events: EventPublisher,
        audit: AuditSink,
        *,
        categories: CategoryTable | None = None,
        outbox: Outbox | None = None,
        notices_written: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.org = org
        self.grants = grants
        self.events = events
        self.audit = audit
        self.categories = categories or CategoryTable(settings, db)
        self.outbox = outbox or Outbox(settings.notify, set())
        self.notices_written = notices_written or (lambda: None)
        self.on_closed: list[Any] = []  # callbacks(incident) after an incident closed

    # -- who follows an incident (who may see it and do what: gateway.policy.incidents) ------
    def audience(self, inc: Incident) -> list[str]:
        """Departments that follow the incident: routed ones, the dispatched one, the centres in charge."""
        out = list(inc.departments)
        if inc.dispatched_to and inc.dispatched_to not in out:
            out.append(inc.dispatched_to)
        out += sorted(centres_in_charge(self.org.units(), inc.level, inc.area) - set(out))
        return out

    # -- reading ---------------------------------------------------------------------------
    async def get(self, inc_id: str) -> Incident | None:
        """One incident."""
        async with self.db.session() as s:
            return await s.get(Incident, inc_id)

    async def visible(
        self,
        may_see: Callable[[Incident], bool],
        *,
        state: str | None = None,
        area: str | None = None,
        department: str | None = None,
        overdue: bool | None = None,
        limit: int = 200,
        scan_max: int = SCAN_MAX,
    ) -> tuple[list[Incident], bool]:
        """Up to ``limit`` incidents for which ``may_see`` holds (the caller's rule, see
        :class:`gateway.policy.incidents.IncidentRules`) and, with ``overdue``, that are or are not
        overdue, newest first, and whether the scan was complete.

        Visibility depends on the ACL (a camera the subject may view makes an incident visible), so it
        is checked here, not in SQL: rows are read newest first in batches (keyset on creation time
        and id) until the page is full or the table is exhausted. At most ``scan_max`` rows are read;
        when that bound stops the scan, the second value is False (older permitted incidents may exist).
        """
        out: list[Incident] = []
        after: tuple[dt.datetime, str] | None = None
        scanned = 0
        batch = max(limit, 250)
        now = utcnow()
        while len(out) < limit:
            take = min(batch, scan_max - scanned)
            if take <= 0:
                return out, False
            q = self._filtered(state, area, department).order_by(Incident.created_at.desc(), Incident.id.desc())
            if after is not None:
                at, last_id = after
                q = q.where(or_(Incident.created_at < at, and_(Incident.created_at == at, Incident.id < last_id)))
            async with self.db.session() as s:
                rows = list((await s.execute(q.limit(take))).scalars())
            scanned += len(rows)
            for inc in rows:
                if (overdue is None or bool(overdue_kinds(inc, now)) == overdue) and may_see(inc):
                    out.append(inc)
                    if len(out) == limit:
                        break
            if len(rows) < take:
                break  # no older rows
            after = (rows[-1].created_at, rows[-1].id)
            batch = min(batch * 2, 4000)  # few visible so far: read more at a time
        return out, True

    @staticmethod
    def _filtered(state: str | None, area: str | None, department: str | None) -> Any:
        q = select(Incident)
        if state == "open":
            q = q.where(Incident.state.in_(OPEN_STATES))
        elif state:
            q = q.where(Incident.state == state)
        if area:
            q = q.where(Incident.area == area)
        if department:
            q = q.where(Incident.dispatched_to == department)
        return q

    async def stats(
        self, since: dt.datetime | None = None, may_see: Callable[[Incident], bool] | None = None
    ) -> dict[str, Any]:
        """Per sub-district and per department: total, open, handled (resolved or closed) %, overdue.
        With ``may_see``, only the incidents it holds for are counted."""
        q = select(Incident)
        if since is not None:
            q = q.where(Incident.created_at >= since)
        async with self.db.session() as s:
            rows = list((await s.execute(q)).scalars())
        if may_see is not None:
            rows = [i for i in rows if may_see(i)]
        now = utcnow()
        out: dict[str, dict[str, dict[str, float]]] = {"by_area": {}, "by_department": {}}
        for inc in rows:
            for key, val in (("by_area", inc.area or "-"), ("by_department", inc.dispatched_to or "-")):
                b = out[key].setdefault(val, {"total": 0, "open": 0, "handled": 0, "overdue": 0})
                b["total"] += 1
                b["open"] += inc.state in OPEN_STATES
                b["handled"] += inc.state in ("resolved", "closed")
                b["overdue"] += bool(overdue_kinds(inc, now))
        for group in out.values():
            for b in group.values():
                b["handled_pct"] = round(100 * b["handled"] / b["total"], 1) if b["total"] else 0.0
        return out

    # -- steps -----------------------------------------------------------------------------
    async def act(self, inc_id: str, action: str, by: str, body: dict[str, Any]) -> Incident:
        """Apply a workflow step (or ``note`` / ``escalate``), record who and when, publish it.

        The caller has checked the rules (:class:`gateway.policy.incidents.IncidentRules`).
        Raises :class:`WorkflowError` (nothing changed)."""
        new_grants: list[str] = []
        notices = 0
        now = utcnow()
        async with self.db.session() as s:
            inc = await s.get(Incident, inc_id)
            if inc is None:
                raise LookupError(f"no incident '{inc_id}'")
            entry: dict[str, Any] = {"at": now.isoformat(), "by": by, "action": action}
            text = body.get("text")
            if text is not None:
                if not isinstance(text, str) or not 1 <= len(text) <= 4000:
                    raise WorkflowError("text: 1-4000 characters")
                entry["text"] = text
            units = self.org.units()
            if action == "note":
                if text is None:
                    raise WorkflowError("text: required for a note")
            elif action == "escalate":
                if inc.state == "closed":
                    raise WorkflowError("action: the incident is closed")
                held = units.get(inc.dispatched_to or "")
                up = parent_of(units, held.id) if held is not None and held.level == "station" else None
                if up is not None:
                    # A station that cannot handle it hands it to its sub-district centre, which acknowledges anew.
                    parent = units[up]
                    inc.dispatched_to = parent.id
                    inc.state = "dispatched"
                    entry["department"] = parent.id
                    if parent.id not in inc.departments:
                        new_grants = [parent.id]
                        inc.departments = [*inc.departments, parent.id]
                    notices += self.outbox.add(
                        s, inc, "dispatched", parent.id, f"{inc.id}:dispatched:{len(inc.history)}:{parent.id}"
                    )
                elif inc.level == "district":
                    raise WorkflowError("action: already at the district centre")
                else:
                    inc.level = "district"
                    district = sorted(u.id for u in units.values() if u.level == "district")
                    new_grants = [d for d in district if d not in inc.departments]
                    inc.departments = [*inc.departments, *new_grants]
            else:
                nxt = TRANSITIONS.get(inc.state, {}).get(action)
                if nxt is None:
                    allowed = ", ".join(TRANSITIONS.get(inc.state, {})) or "none"
                    raise WorkflowError(f"action: '{action}' not allowed in state {inc.state} (allowed: {allowed})")
                if action == "dispatch":
                    dept = body.get("department")
                    if not isinstance(dept, str) or dept not in units:
                        raise WorkflowError("department: an existing department is required")
                    inc.dispatched_to = dept
                    entry["department"] = dept
                    if inc.onsite_deadline is None:  # the clock starts with the first dispatch
                        cat = await self.categories.lookup(inc.category or inc.type)
                        inc.dispatched_at = now
                        inc.onsite_deadline = now + dt.timedelta(hours=cat.onsite_hours)
                        inc.resolve_deadline = now + dt.timedelta(hours=cat.resolve_hours)
                    if dept not in inc.departments:
                        new_grants = [dept]
                        inc.departments = [*inc.departments, dept]
                    notices += self.outbox.add(
                        s, inc, "dispatched", dept, f"{inc.id}:dispatched:{len(inc.history)}:{dept}"
                    )
                elif action in ("onsite", "resolve"):
                    inc.handlers = [*inc.handlers, by] if by not in inc.handlers else inc.handlers
                    if action == "onsite" and inc.onsite_at is None:
                        inc.onsite_at = now
                    if action == "resolve":
                        inc.resolved_at = now
                elif action == "confirm":
                    result = body.get("result")
                    if result not in CALLBACK_RESULTS:
                        raise WorkflowError(f"result: the call-back's result, one of {', '.join(CALLBACK_RESULTS)}")
                    entry["result"] = result
                    if result == "unsatisfied":
                        nxt = "on_site"  # the reporter says it is not done: back to the handlers
                    elif result == "unreachable":
                        nxt = inc.state  # recorded; call again
                elif action == "verify":
                    passed = body.get("passed")
                    if not isinstance(passed, bool):
                        raise WorkflowError("passed: true or false (was the work found done on site)")
                    if text is None:
                        raise WorkflowError("text: what the verifier found (required)")
                    entry["passed"] = passed
                    if not passed:
                        nxt = "on_site"
                elif action == "close":
                    inc.closed_at = now
                inc.state = nxt
            inc.history = [*inc.history, entry]
        if notices:
            self.notices_written()
        await self.audit.record("incident", incident_id=inc_id, username=by, action=action, detail=text)
        if new_grants and inc.cameras and inc.state != "closed":
            await self.grants.grant_incident(by, inc_id, new_grants, list(inc.cameras), grant_until(self.settings, inc))
        if action == "close":
            await self.grants.revoke_incident(by, inc_id)
            for cb in self.on_closed:
                cb(inc)
        reached = entry.get("department")
        if reached and inc.state != "closed":
            # The unit it now lies with opens its cameras by itself, as the units on duty do for an
            # alarm (its grant was applied just above).
            self.events.publish(
                "incident.dispatched",
                {
                    "incident_id": inc_id,
                    "type": inc.type,
                    "category": inc.category or inc.type,
                    "area": inc.area,
                    "address": inc.address,
                    "station": inc.station,
                    "text": inc.text,
                    "dispatched_to": reached,
                    "by": by,
                    "cameras": list(inc.cameras),
                },
                departments=[reached],
            )
        self.events.publish(
            "incident.updated",
            {
                "incident_id": inc_id,
                "state": inc.state,
                "level": inc.level,
                "action": action,
                "by": by,
                "dispatched_to": inc.dispatched_to,
            },
            cameras=inc.cameras,
            departments=self.audience(inc),
        )
        return inc

    async def add_attachment(self, inc_id: str, by: str, meta: dict[str, Any], text: str | None) -> dict[str, Any]:
        """List a stored photo on the case with who, when and an optional note; its entry."""
        entry: dict[str, Any] = {**meta, "at": utcnow().isoformat(), "by": by, **({"text": text} if text else {})}
        async with self.db.session() as s:
            inc = await s.get(Incident, inc_id)
            if inc is None:
                raise LookupError(f"no incident '{inc_id}'")
            if inc.state == "closed":
                raise WorkflowError("action: the case is closed")
            entry["n"] = len(inc.attachments) + 1
            inc.attachments = [*inc.attachments, entry]
            inc.history = [*inc.history, {"at": entry["at"], "by": by, "action": "photo", "n": entry["n"]}]
        await self.audit.record("incident", incident_id=inc_id, username=by, action="photo", detail=meta["sha256"])
        return entry

    async def announce_overdue(self, now: dt.datetime | None = None) -> int:
        """Publish ``incident.overdue`` once per passed deadline (also after a restart), and write
        the notices of deadlines coming (``alarms.notify.warn_before_minutes`` ahead) and passed;
        returns how many deadlines passed."""
        now = now or utcnow()
        soon = now + dt.timedelta(minutes=self.settings.notify.warn_before_minutes)
        q = select(Incident).where(Incident.state.in_(("dispatched", "acknowledged", "on_site")))
        n = notices = 0
        async with self.db.session() as s:
            due = []
            for inc in (await s.execute(q)).scalars():
                fresh = [k for k in overdue_kinds(inc, now) if k not in inc.overdue_announced]
                coming = [
                    k
                    for k in overdue_kinds(inc, soon)
                    if k not in fresh and k not in inc.overdue_announced and f"{k}_soon" not in inc.overdue_announced
                ]
                for k in coming:
                    notices += self.outbox.deadline(s, inc, k, "soon")
                for k in fresh:
                    notices += self.outbox.deadline(s, inc, k, "passed")
                if fresh or coming:
                    inc.overdue_announced = [*inc.overdue_announced, *fresh, *(f"{k}_soon" for k in coming)]
                if fresh:
                    due.append((inc, fresh))
        if notices:
            self.notices_written()
        for inc, kinds in due:
            for kind in kinds:
                await self.audit.record("incident_overdue", incident_id=inc.id, detail=kind)
                self.events.publish(
                    "incident.overdue",
                    {"incident_id": inc.id, "deadline": kind, "dispatched_to": inc.dispatched_to, "state": inc.state},
                    cameras=inc.cameras,
                    departments=self.audience(inc),
                )
                n += 1
        return n
