"""The GB/T 28181 cascade's gate: what a superior platform may see in our catalog and play, decided
here as every other permission is.

A superior is not a user: it is configured (``gb28181.superiors``) with ``view_as``, a policy
subject (``dept:<department>``), and its requests are known by their source address and SIP id on
the registration we made to it (credential kind ``gb28181_superior``, scope ``gb28181_cascade`` in
:mod:`acl.credentials`). Its view is exactly an operator's whose only department is that one:
the ``view_live`` cameras of that subject. A refusal is audited like the HTTP guards' (``denied``).
"""

from __future__ import annotations

from collections.abc import Set

from acl.audit import AuditLog
from acl.authorizer import Authorizer
from acl.credentials import Kind
from acl.identity import Subject
from acl.models import Role
from gateway.metrics import Metrics
from gb28181.settings import SuperiorSettings

__all__ = ["LIVE_ACTION", "CascadeGate", "superior_subject"]

# A superior plays cameras live, as WebRTC, HLS and RTSP viewers do; its catalog lists what it may play.
LIVE_ACTION = "view_live"
_ID_SPACE = 1_000_000_007  # superior subjects get negative user ids: never a real user's


def superior_subject(superior: SuperiorSettings) -> Subject:
    """The policy subject a superior acts as: an operator whose only department is ``view_as``'s,
    with a user id of its own that no user has (negative), named ``gb28181:<its SIP id>``."""
    department = superior.view_as.removeprefix("dept:")
    return Subject(
        user_id=-1 - int(superior.id) % _ID_SPACE,
        username=f"gb28181:{superior.id}",
        role=Role.operator,
        departments=frozenset({department}),
        credential=Kind.gb28181_superior,
    )


class CascadeGate:
    """Decides a superior's catalog and INVITEs (the ACL's ``view_live``)."""

    def __init__(self, cameras: Authorizer, audit: AuditLog, metrics: Metrics) -> None:
        self.cameras = cameras
        self.audit = audit
        self.metrics = metrics

    def shared_camera_ids(self, superior: SuperiorSettings) -> Set[str]:
        """The cameras ``superior`` may see and play now."""
        return self.cameras.visible_cameras(superior_subject(superior), LIVE_ACTION)

    async def may_play(self, superior: SuperiorSettings, camera_id: str, address: str) -> bool:
        """Whether ``superior`` may play ``camera_id`` live now; a refusal is audited."""
        subject = superior_subject(superior)
        if self.cameras.authorize(subject, LIVE_ACTION, camera_id):
            return True
        self.metrics.denials.labels(LIVE_ACTION).inc()
        await self.audit.record(
            "denied",
            subject=subject,
            action=LIVE_ACTION,
            camera_id=camera_id,
            address=address,
            path=f"SIP INVITE {camera_id}",
        )
        return False
