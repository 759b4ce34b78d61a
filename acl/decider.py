"""Deciding: ``authorize`` and ``visible_cameras`` from the compiled index, and why."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Set
from typing import Any

from acl.identity import Subject
from acl.index import Rule, VisibilityIndex
from acl.models import Role, User
from acl.policy import PolicyState

__all__ = ["AccessDecider", "rule_dict"]


class AccessDecider:
    """Answers viewing questions from the installed policy: its state, its compiled
    :class:`~acl.index.VisibilityIndex` and every active user's policy subjects.

    Deny by default. System ``admin`` may do everything; everyone else sees what the grants of
    their departments and roles allow, minus deny rules. What it answers from is replaced whole by
    :meth:`install` (a compile) or patched in place (a change made here); it never reads the database.
    """

    def __init__(self) -> None:
        self.state: PolicyState | None = None
        self.index = VisibilityIndex([], [], {}, {})
        # user id -> the policy subjects of that active user ("role:...", "dept:...").
        self.subjects: dict[int, frozenset[str]] = {}

    def install(self, state: PolicyState, index: VisibilityIndex, subjects: dict[int, frozenset[str]]) -> None:
        """Answer from a newly compiled policy from now on (one swap: no request sees half of it)."""
        self.state, self.index, self.subjects = state, index, subjects

    def keys(self, subject: Subject) -> frozenset[str]:
        """The policy subjects a login stands for."""
        known = self.subjects.get(subject.user_id)
        role_key = f"role:{subject.role.value}"
        if known is not None and role_key in known:
            return known
        if known is not None and self.state is not None:
            # The login says another system role than the loaded policy (changed by the CLI): trust the login.
            ms = self.state.memberships.get(subject.user_id, [])
            return frozenset({role_key, *(f"dept:{d}" for d, _ in ms), *(f"role:{r}" for _, r in ms)})
        return frozenset({role_key, *(f"dept:{d}" for d in subject.departments)})

    def authorize(self, subject: Subject, action: str, camera_id: str, *, now: float | None = None) -> bool:
        """Whether ``subject`` may ``action`` the camera now (or at ``now``, epoch seconds)."""
        if subject.is_admin:
            return True
        return self.index.allowed(self.keys(subject), action, camera_id, time.time() if now is None else now)

    def visible_cameras(self, subject: Subject, action: str, *, now: float | None = None) -> Set[str]:
        """Camera ids ``subject`` may ``action`` now (a cheap bitset view, see :class:`~acl.index.CameraSet`)."""
        if subject.is_admin:
            return self.index.all()
        return self.index.visible(self.keys(subject), action, time.time() if now is None else now)

    def explain(self, subject: Subject, action: str, camera_id: str) -> dict[str, Any]:
        """Why the answer is what it is: the matching allow and deny rules."""
        if subject.is_admin:
            return {"allowed": True, "because": "system role admin", "rules": []}
        rules = self.index.rules_granting(self.keys(subject), action, camera_id, time.time())
        allowed = self.authorize(subject, action, camera_id)
        because = None
        if not allowed:
            because = "a deny rule overrides" if any(r.eft == "deny" for r in rules) else "no rule allows it"
        return {"allowed": allowed, "because": because, "rules": [rule_dict(r) for r in rules]}

    def who_can(
        self, camera_id: str, action: str, users: list[tuple[int, str, str]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Of ``users`` ((id, username, system role)), who may ``action`` the camera, with the
        rules that allow it; and who has an allow rule but is blocked by a deny rule."""
        allowed: list[dict[str, Any]] = []
        blocked: list[dict[str, Any]] = []
        memo: dict[frozenset[str], dict[str, Any]] = {}  # users share subject sets: explain each once
        for uid, name, role in users:
            subject = self.subject_for(uid, name, role)
            why: dict[str, Any]
            if subject.is_admin:
                why = {"allowed": True, "because": "system role admin", "rules": []}
            else:
                keys = self.keys(subject)
                if keys not in memo:
                    memo[keys] = self.explain(subject, action, camera_id)
                why = memo[keys]
            entry = {"user_id": uid, "username": name, "because": why["because"], "rules": why["rules"]}
            if why["allowed"]:
                allowed.append(entry)
            elif any(r["effect"] == "allow" for r in why["rules"]):
                blocked.append(entry)
        return allowed, blocked

    def loaded_state(self) -> PolicyState:
        """The policy answers come from (loaded before the gateway serves)."""
        if self.state is None:
            raise RuntimeError("the ACL policy is not loaded yet")
        return self.state

    def subject_for(self, user_id: int, username: str, role: str) -> Subject:
        """A :class:`Subject` for a user known to the policy."""
        depts = frozenset(k.removeprefix("dept:") for k in self.subjects.get(user_id, ()) if k.startswith("dept:"))
        return Subject(user_id=user_id, username=username, role=Role(role), departments=depts)

    async def departments_of(self, user: User) -> frozenset[str]:
        """The user's departments (for the gateway's authenticator), from memory."""
        keys = self.subjects.get(user.id, frozenset())
        return frozenset(k.removeprefix("dept:") for k in keys if k.startswith("dept:"))


def rule_dict(r: Rule) -> dict[str, Any]:
    """A rule for the API."""

    def iso(t: float) -> str | None:
        return None if t in (float("inf"), float("-inf")) else dt.datetime.fromtimestamp(t, dt.UTC).isoformat()

    return {
        "id": r.rule_id,
        "subject": r.sub,
        "target": r.obj,
        "action": r.act,
        "effect": r.eft,
        "not_before": iso(r.nbf),
        "not_after": iso(r.exp),
        "tag": r.tag or None,
    }
