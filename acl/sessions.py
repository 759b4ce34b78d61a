"""The narrow interface the ACL uses to end streams that lost their permission."""

from __future__ import annotations

from typing import Protocol

__all__ = ["SessionTerminator"]


class SessionTerminator(Protocol):
    """Something that holds viewer sessions and can end them (the gateway's session registry)."""

    async def end_sessions(self, user_id: int | None, camera_ids: set[str] | None, reason: str) -> int:
        """End the sessions of ``user_id`` (None: every user) on ``camera_ids`` (None: every camera).

        Returns how many sessions were ended.
        """
        ...
