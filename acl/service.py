"""The ACL as one object for its callers: the parts built for given settings, behind one face.

The parts (each its own module): :class:`~acl.decider.AccessDecider` answers, the
:class:`~acl.compiler.PolicyCompiler` loads and compiles, :class:`~acl.changes.PolicyChanges`
changes, :class:`~acl.preview.PolicyPreview` dry-runs, :class:`~acl.location.LocationRule`
follows the foreign trucks, :mod:`acl.revocation` ends lost streams and announces window edges,
:class:`~acl.sweep.AclSweep` runs once a second. :class:`AclService` holds them (callers ask the
part they need: ``acl.decider.authorize``, ``acl.changes.add_rule``, ``acl.location...``; nothing
is forwarded), is the :class:`~acl.admin.PolicyAdmin` of the admin routes, and is what the gateway
starts and stops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from acl.audit import AuditLog
from acl.changes import PolicyChanges
from acl.compiler import PolicyCompiler
from acl.decider import AccessDecider
from acl.location import LocationRule, load_district
from acl.notices import PolicyNotices
from acl.policy import PolicyStore
from acl.preview import PolicyPreview
from acl.revocation import EdgeClaim, LocalEdgeClaim, StreamRevoker, ValidityWindows
from acl.sessions import SessionTerminator
from acl.settings import AclSettings
from acl.sweep import AclSweep

if TYPE_CHECKING:
    from camera_registry.store import CameraStore
    from storage.db import Database

__all__ = ["AclService", "build_acl"]


class AclService:
    """The ACL's parts, built together, started and stopped together (a :class:`~acl.admin.PolicyAdmin`)."""

    def __init__(
        self,
        decider: AccessDecider,
        compiler: PolicyCompiler,
        changes: PolicyChanges,
        previews: PolicyPreview,
        location: LocationRule,
        sweep: AclSweep,
        notices: PolicyNotices,
    ) -> None:
        self.decider = decider
        self.compiler = compiler
        self.changes = changes
        self.previews = previews
        self.location = location
        self.sweep = sweep
        self.notices = notices
        self.audit = changes.audit
        self.policy: PolicyStore = changes.policy

    # -- lifecycle -------------------------------------------------------------------------
    async def load(self) -> None:
        """Read the policy and the inventory and compile the index."""
        await self.compiler.load()

    async def start(self) -> None:
        """Load, then sweep once a second until :meth:`stop`."""
        await self.load()
        self.sweep.start()

    async def stop(self) -> None:
        """Stop the sweep."""
        await self.sweep.stop()


def build_acl(
    settings: AclSettings,
    db: Database,
    store: CameraStore,
    audit: AuditLog,
    *,
    sessions: Sequence[SessionTerminator],
    edges: EdgeClaim | None = None,
) -> AclService:
    """The ACL for these settings, its parts built in dependency order.

    ``sessions``: the holders of viewer sessions the ACL ends streams in (read at every sweep);
    ``edges``: which node announces a validity-window edge (default: this one, a single gateway).
    """
    policy = PolicyStore(db)
    decider = AccessDecider()
    location = LocationRule(
        load_district(settings.district_geojson),
        decider,
        home_district=settings.home_district,
        position_max_age_s=settings.position_max_age_s,
    )
    compiler = PolicyCompiler(policy, store, decider, location, gc_freeze=settings.gc_freeze)
    notices = PolicyNotices()
    revoker = StreamRevoker(decider, sessions)
    changes = PolicyChanges(policy, decider, compiler, audit, revoker, notices)
    windows = ValidityWindows(decider, notices, edges if edges is not None else LocalEdgeClaim())
    sweep = AclSweep(location, changes, windows, revoker)
    return AclService(decider, compiler, changes, PolicyPreview(policy, compiler), location, sweep, notices)
