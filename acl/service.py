"""The ACL service wired into the gateway: authorization answers, audit, and their hooks."""

from __future__ import annotations

import logging
from collections.abc import Set
from typing import TYPE_CHECKING, Any

from acl.identity import Subject

if TYPE_CHECKING:
    from camera_registry.store import CameraStore
    from gateway.container import Liandong
    from gateway.settings import Settings
    from storage.db import Database

__all__ = ["AclService", "build_acl"]

log = logging.getLogger(__name__)


class AclService:
    """Deny by default; administrators may do everything."""

    def __init__(self, db: Database, store: CameraStore) -> None:
        self.db = db
        self.store = store
        from gateway.container import LogAudit

        self.audit = LogAudit()

    def authorize(self, subject: Subject, action: str, camera_id: str) -> bool:
        """Whether ``subject`` may ``action`` the camera."""
        return subject.is_admin

    def visible_cameras(self, subject: Subject, action: str) -> Set[str]:
        """Camera ids ``subject`` may ``action``."""
        return frozenset()

    def attach(self, ld: Liandong) -> None:
        """Subscribe to the gateway's hooks."""
        _ = ld


def build_acl(settings: Settings, db: Database, store: CameraStore, **_: Any) -> AclService:
    """The ACL service for these settings."""
    return AclService(db, store)
