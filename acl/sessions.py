"""The narrow interface the ACL uses to end streams that lost their permission."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from acl.identity import Subject

__all__ = ["OpenSession", "SessionTerminator"]


class OpenSession(Protocol):
    """What the ACL needs to know of an open session."""

    user_id: int
    username: str
    camera_id: str
    subject: Subject | None


class SessionTerminator(Protocol):
    """Something that holds viewer sessions and can end them (the gateway's session registry)."""

    def list(self) -> Sequence[OpenSession]:
        """The open sessions."""
        ...

    async def end_sessions(self, user_id: int | None, camera_ids: set[str] | None, reason: str) -> int:
        """End the sessions of ``user_id`` (None: every user) on ``camera_ids`` (None: every camera).

        Returns how many sessions were ended.
        """
        ...
