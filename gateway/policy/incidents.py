"""Who may see an incident (a case), take which workflow step, dispatch it where, open cases, see a
reporter in full, and count which cases in the statistics (the rules
:func:`~gateway.policy.guards.require_incident`, the incident list, the statistics and the
consoles' buttons all ask).

The organisation is a tree (the district centre, sub-district centres, neighbourhood stations;
functional departments beside them): a unit sees the cases of its subtree, dispatches only
downwards or to departments, and a station escalates upwards. The workflow
(:mod:`gateway.alarms.incidents`) knows states and steps; it decides no permission.
"""

from __future__ import annotations

from dataclasses import dataclass

from acl.authorizer import Authorizer
from acl.identity import Subject
from acl.models import Role
from gateway.alarms.incidents import ACTIONS, FIELD_ACTIONS, TRANSITIONS, IncidentWorkflow
from gateway.alarms.models import Incident
from gateway.alarms.ports import centres_in_charge, subtree
from gateway.alarms.stats import StatsScope
from gateway.policy.rules import VIEW_ACTION

__all__ = ["IncidentRules"]

COMMAND_LEVELS = ("district", "subdistrict")


@dataclass(frozen=True, slots=True)
class IncidentRules:
    """The incident rules over one workflow (its organisation and audience) and the viewing policy."""

    flow: IncidentWorkflow
    cameras: Authorizer

    def _in_subtree(self, subject: Subject, inc: Incident) -> bool:
        """The case is held by (dispatched to) or located at (station) a unit in the subject's subtree."""
        here = {u for u in (inc.dispatched_to, inc.station) if u}
        return bool(here and here & subtree(self.flow.org.units(), subject.departments))

    def may_see(self, subject: Subject, inc: Incident) -> bool:
        """Admins and auditors see every incident; others if they belong to its audience or to a unit
        above the one it is dispatched to or located at; an incident born from an alarm also to whoever
        may view one of its cameras (an alarm on a bus concerns whoever watches the bus; a citizen's
        case does not concern another subtree that happens to share a camera)."""
        if subject.role in (Role.admin, Role.auditor):
            return True
        if subject.departments & set(self.flow.audience(inc)) or self._in_subtree(subject, inc):
            return True
        if inc.origin != "alarm":
            return False
        return any(self.cameras.authorize(subject, VIEW_ACTION, c) for c in inc.cameras)

    def _commands(self, subject: Subject, inc: Incident) -> set[str]:
        """The subject's units that command this incident: the centres in charge."""
        return set(subject.departments & centres_in_charge(self.flow.org.units(), inc.level, inc.area))

    def _holds(self, subject: Subject, inc: Incident) -> bool:
        return inc.dispatched_to is not None and inc.dispatched_to in subject.departments

    def may_act(self, subject: Subject, action: str, inc: Incident) -> bool:
        """Whether the subject may take ``action`` (``view`` = read, ``reporter`` = the reporter in
        full) on the incident: a command centre in charge takes every command step, the unit it is
        dispatched to the field steps (acknowledge, on site, resolve) and, if it is a station,
        escalation to its sub-district; verification is never by one of the case's handlers;
        whoever sees it may add a note; auditors only read."""
        if action == "reporter":
            return self.may_see_reporter(subject, inc)
        if action == "verify" and subject.username in inc.handlers:
            return False  # someone other than the handler verifies
        if subject.is_admin:
            return True
        if action == "view":
            return self.may_see(subject, inc)
        if subject.role is Role.auditor:
            return False  # auditors read, never act
        if action == "note":
            return self.may_see(subject, inc)
        if self._commands(subject, inc):
            return action in ACTIONS
        if action in FIELD_ACTIONS:
            return self._holds(subject, inc)
        if action == "escalate" and self._holds(subject, inc):
            unit = self.flow.org.units().get(inc.dispatched_to or "")
            return unit is not None and unit.level == "station"
        return False

    def may_dispatch_to(self, subject: Subject, inc: Incident, target: str) -> bool:
        """Dispatch only downwards or to a functional department: the target is a department, or a
        unit below one of the subject's commanding units (a sub-district centre to its stations, the
        district centre to any unit below it)."""
        units = self.flow.org.units()
        unit = units.get(target)
        if unit is None:
            return True  # not a unit: the workflow answers 422 naming the field
        if unit.level == "department" or subject.is_admin:
            return True
        commands = self._commands(subject, inc)
        commands = {c for c in commands if units.get(c) and units[c].level in COMMAND_LEVELS}
        below = subtree(units, commands) - commands
        return target in below

    def may_see_reporter(self, subject: Subject, inc: Incident) -> bool:
        """The reporter's name and phone in full: only the case's handlers (the unit it is
        dispatched to, the command centres in charge) and whoever entered it; every view is audited."""
        if subject.role in (Role.auditor, Role.integration):
            return subject.username == inc.created_by
        return subject.username == inc.created_by or self._holds(subject, inc) or bool(self._commands(subject, inc))

    def may_open_case(self, subject: Subject) -> bool:
        """Hotline call-takers and patrols (members of a command centre) and integration accounts
        enter cases; admins may too."""
        if subject.is_admin or subject.role is Role.integration:
            return True
        if subject.role is not Role.operator:
            return False
        units = self.flow.org.units()
        return any(units[d].level in COMMAND_LEVELS for d in subject.departments if d in units)

    def stats_scope(self, subject: Subject) -> StatsScope | None:
        """Which cases the subject's statistics count: every case for admins, auditors and the
        district centre, else the cases of its subtree (``None``: all)."""
        units = self.flow.org.units()
        if subject.role in (Role.admin, Role.auditor) or any(
            units[d].level == "district" for d in subject.departments if d in units
        ):
            return None
        mine = subtree(units, subject.departments)
        areas = {units[u].area for u in mine if units[u].level == "subdistrict" and units[u].area}
        return StatsScope(frozenset(a for a in areas if a), frozenset(mine))

    def next_actions(self, subject: Subject, inc: Incident) -> list[str]:
        """The steps the subject may take on the incident now (what a console offers as buttons)."""
        steps = list(TRANSITIONS.get(inc.state, {}))
        if inc.state != "closed" and (inc.level != "district" or self._holds(subject, inc)):
            steps.append("escalate")
        steps.append("note")
        return [a for a in steps if self.may_act(subject, a, inc)]
