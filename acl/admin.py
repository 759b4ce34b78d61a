"""What the security-admin API asks of the ACL (``gateway/routes/acl_admin.py``, ``acl_preview.py``).

Everyone else asks only :class:`acl.authorizer.Authorizer`'s two questions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from acl.authorizer import Authorizer
from acl.identity import Subject
from acl.index import VisibilityIndex
from acl.models import Role
from acl.policy import Applied, Change, PolicyState, PolicyStore, RuleSpec
from acl.preview import ActionEffect

__all__ = ["PolicyAdmin"]


class PolicyAdmin(Authorizer, Protocol):
    """Reading, explaining, previewing and changing the viewing policy."""

    @property
    def policy(self) -> PolicyStore:
        """The stored policy (its calls make the changes that :meth:`change` runs)."""
        ...

    @property
    def index(self) -> VisibilityIndex:
        """The compiled index answers come from now (group sizes, the cameras it knows)."""
        ...

    def loaded_state(self) -> PolicyState:
        """The policy answers come from now (loaded before the gateway serves)."""
        ...

    def subject_for(self, user_id: int, username: str, role: str) -> Subject:
        """A subject for a user known to the policy."""
        ...

    def explain(self, subject: Subject, action: str, camera_id: str) -> dict[str, Any]:
        """Whether ``subject`` may ``action`` the camera, why, and by which rules."""
        ...

    def who_can(
        self, camera_id: str, action: str, users: list[tuple[int, str, str]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Of ``users`` ((id, username, system role)), who may ``action`` the camera; who a deny rule blocks."""
        ...

    async def change(
        self,
        author: str,
        what: str,
        op: Callable[[], Awaitable[Applied]],
        reason: str = "",
        incident_id: str | None = None,
    ) -> Applied:
        """Run one stored change: patched into the answers, audited, announced, enforced on streams."""
        ...

    async def add_rule(self, author: str, spec: RuleSpec, reason: str = "") -> tuple[int, int]:
        """Store and apply a rule; (rule id, revision)."""
        ...

    async def remove_rule(self, author: str, rule_id: int, reason: str = "") -> int:
        """Remove a rule; the revision."""
        ...

    async def grant_incident(
        self,
        author: str,
        incident_id: str,
        departments: list[str],
        cameras: list[str],
        until: dt.datetime,
        action: str = "view_live",
    ) -> list[int]:
        """Time-limited grants tied to an incident; their rule ids."""
        ...

    async def revoke_incident(self, author: str, incident_id: str) -> int:
        """End an incident's grants now; how many rules were removed."""
        ...

    async def user_changed(self, user_id: int, role: Role, active: bool) -> None:
        """A user was created, or their system role or active flag changed."""
        ...

    async def preview(
        self,
        op: Callable[[PolicyStore], Awaitable[Applied]] | None,
        actions: Iterable[str] = ("view_snapshot", "view_live"),
        *,
        user_roles: Mapping[int, str | None] | None = None,
    ) -> tuple[tuple[Change, ...], list[ActionEffect]]:
        """What a change would write and do to every user's visible cameras, storing nothing."""
        ...
