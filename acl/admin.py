"""What the security-admin API works with (``gateway/routes/acl_admin.py``, ``acl_preview.py``): the
ACL's parts themselves, each asked directly (no face repeating their signatures).

Everyone else asks only :class:`acl.authorizer.Authorizer`'s two questions.
"""

from __future__ import annotations

from typing import Protocol

from acl.changes import PolicyChanges
from acl.decider import AccessDecider
from acl.policy import PolicyStore
from acl.preview import PolicyPreview

__all__ = ["PolicyAdmin"]


class PolicyAdmin(Protocol):
    """Reading, explaining, previewing and changing the viewing policy (an :class:`~acl.service.AclService`)."""

    @property
    def policy(self) -> PolicyStore:
        """The stored policy (its calls make the changes that ``changes.change`` runs)."""
        ...

    @property
    def decider(self) -> AccessDecider:
        """Answers, explanations and who-can from the compiled index now in force."""
        ...

    @property
    def changes(self) -> PolicyChanges:
        """Stored changes: patched, audited, announced, enforced."""
        ...

    @property
    def previews(self) -> PolicyPreview:
        """Dry runs: what a change would write and do, storing nothing."""
        ...
