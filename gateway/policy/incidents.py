"""Who may see an incident and take which workflow step (the rules :func:`~gateway.policy.guards.require_incident`,
the incident list, the statistics and the consoles' buttons all ask).

The workflow (:mod:`gateway.alarms.incidents`) knows states and steps; it decides no permission.
"""

from __future__ import annotations

from dataclasses import dataclass

from acl.identity import Subject
from acl.models import Role
from gateway.alarms.incidents import ACTIONS, FIELD_ACTIONS, TRANSITIONS, IncidentWorkflow
from gateway.alarms.models import Incident
from gateway.alarms.ports import centres_in_charge
from gateway.policy.rules import VIEW_ACTION

__all__ = ["IncidentRules"]


@dataclass(frozen=True, slots=True)
class IncidentRules:
    """The incident rules over one workflow (its organisation, audience and camera grants)."""

    flow: IncidentWorkflow

    def may_see(self, subject: Subject, inc: Incident) -> bool:
        """Admins and auditors see every incident; others if they belong to its audience or may view
        one of its cameras."""
        if subject.role in (Role.admin, Role.auditor):
            return True
        if subject.departments & set(self.flow.audience(inc)):
            return True
        return any(self.flow.grants.authorize(subject, VIEW_ACTION, c) for c in inc.cameras)

    def may_act(self, subject: Subject, action: str, inc: Incident) -> bool:
        """Whether the subject may take ``action`` (``view`` = read) on the incident: a command
        centre in charge takes every step, the dispatched department the field steps (acknowledge,
        on site, resolve), whoever sees it may add a note; auditors only read."""
        if subject.is_admin:
            return True
        if action == "view":
            return self.may_see(subject, inc)
        if subject.role is Role.auditor:
            return False  # auditors read, never act
        if action == "note":
            return self.may_see(subject, inc)
        centres = centres_in_charge(self.flow.org.units(), inc.level, inc.area)
        if subject.departments & centres:
            return action in ACTIONS
        if action in FIELD_ACTIONS:
            return inc.dispatched_to is not None and inc.dispatched_to in subject.departments
        return False

    def next_actions(self, subject: Subject, inc: Incident) -> list[str]:
        """The steps the subject may take on the incident now (what a console offers as buttons)."""
        steps = list(TRANSITIONS.get(inc.state, {}))
        if inc.state != "closed" and inc.level != "district":
            steps.append("escalate")
        steps.append("note")
        return [a for a in steps if self.may_act(subject, a, inc)]
