"""The one question every other package asks: may this subject do this to this camera?"""

from __future__ import annotations

from collections.abc import Set
from typing import Protocol

from acl.identity import Subject

__all__ = ["ACTIONS", "Authorizer"]

ACTIONS = ("view_live", "view_snapshot", "ptz", "ptz_preset", "record", "playback", "export", "manage")


class Authorizer(Protocol):
    """Answers viewing questions. The HTTP layer and the stream hub call only these two methods."""

    def authorize(self, subject: Subject, action: str, camera_id: str) -> bool:
        """Whether ``subject`` may perform ``action`` on ``camera_id`` right now (deny by default)."""
        ...

    def visible_cameras(self, subject: Subject, action: str) -> Set[str]:
        """Every camera id ``subject`` may perform ``action`` on right now."""
        ...
