"""The ACL as one object for its callers: the parts built for given settings, behind one face.

The parts (each its own module): :class:`~acl.decider.AccessDecider` answers, the
:class:`~acl.compiler.PolicyCompiler` loads and compiles, :class:`~acl.changes.PolicyChanges`
changes, :class:`~acl.preview.PolicyPreview` dry-runs, :class:`~acl.location.LocationRule`
follows the foreign trucks, :mod:`acl.revocation` ends lost streams and announces window edges,
:class:`~acl.sweep.AclSweep` runs once a second. :class:`AclService` forwards to them; it is the
:class:`~acl.admin.PolicyAdmin` of the admin routes, and what the gateway starts and stops.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence, Set
from typing import TYPE_CHECKING, Any

from acl.audit import AuditLog
from acl.changes import PolicyChanges
from acl.compiler import PolicyCompiler
from acl.decider import AccessDecider
from acl.identity import Subject
from acl.index import VisibilityIndex
from acl.location import LocationRule, load_district
from acl.models import Role
from acl.notices import PolicyNotices
from acl.policy import Applied, Change, PolicyState, PolicyStore, RuleSpec
from acl.preview import ActionEffect, PolicyPreview
from acl.revocation import EdgeClaim, LocalEdgeClaim, StreamRevoker, ValidityWindows
from acl.sessions import SessionTerminator
from acl.settings import AclSettings
from acl.sweep import AclSweep

if TYPE_CHECKING:
    from camera_registry.store import CameraStore
    from storage.db import Database

__all__ = ["AclService", "build_acl"]


class AclService:
    """The ACL's parts behind one face (a :class:`~acl.admin.PolicyAdmin`)."""

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

    # -- answers ---------------------------------------------------------------------------
    @property
    def policy(self) -> PolicyStore:
        """The stored policy."""
        return self.changes.policy

    @property
    def state(self) -> PolicyState | None:
        """The policy answers come from (None before the first load)."""
        return self.decider.state

    @property
    def index(self) -> VisibilityIndex:
        """The compiled index answers come from."""
        return self.decider.index

    def loaded_state(self) -> PolicyState:
        """The policy answers come from (loaded before the gateway serves)."""
        st = self.decider.state
        if st is None:
            raise RuntimeError("the ACL policy is not loaded yet")
        return st

    def authorize(self, subject: Subject, action: str, camera_id: str, *, now: float | None = None) -> bool:
        """Whether ``subject`` may ``action`` the camera now (or at ``now``)."""
        return self.decider.authorize(subject, action, camera_id, now=now)

    def visible_cameras(self, subject: Subject, action: str, *, now: float | None = None) -> Set[str]:
        """Camera ids ``subject`` may ``action`` now."""
        return self.decider.visible_cameras(subject, action, now=now)

    def explain(self, subject: Subject, action: str, camera_id: str) -> dict[str, Any]:
        """Why the answer is what it is: the matching allow and deny rules."""
        return self.decider.explain(subject, action, camera_id)

    def who_can(
        self, camera_id: str, action: str, users: list[tuple[int, str, str]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Of ``users``, who may ``action`` the camera; who a deny rule blocks."""
        return self.decider.who_can(camera_id, action, users)

    def subject_for(self, user_id: int, username: str, role: str) -> Subject:
        """A subject for a user known to the policy."""
        return self.decider.subject_for(user_id, username, role)

    # -- changes ---------------------------------------------------------------------------
    async def change(
        self,
        author: str,
        what: str,
        op: Callable[[], Awaitable[Applied]],
        reason: str = "",
        incident_id: str | None = None,
    ) -> Applied:
        """Run one stored change: patched, audited, announced, enforced."""
        return await self.changes.change(author, what, op, reason, incident_id)

    async def add_rule(self, author: str, spec: RuleSpec, reason: str = "") -> tuple[int, int]:
        """Store and apply a rule; (rule id, revision)."""
        return await self.changes.add_rule(author, spec, reason)

    async def remove_rule(self, author: str, rule_id: int, reason: str = "") -> int:
        """Remove a rule; the revision."""
        return await self.changes.remove_rule(author, rule_id, reason)

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
        return await self.changes.grant_incident(author, incident_id, departments, cameras, until, action)

    async def revoke_incident(self, author: str, incident_id: str) -> int:
        """End an incident's grants now; how many rules were removed."""
        return await self.changes.revoke_incident(author, incident_id)

    async def user_changed(self, user_id: int, role: Role, active: bool) -> None:
        """A user was created, or their system role or active flag changed."""
        await self.changes.user_changed(user_id, role, active)

    async def policy_changed(self, reason: str = "policy changed", author: str | None = None) -> None:
        """Reload the whole policy after changes made outside :meth:`change`."""
        await self.changes.policy_changed(reason, author)

    async def reload(self, reason: str, *, inventory: bool = False) -> int:
        """Reload after a change made by another node; how many streams ended."""
        return await self.changes.reload(reason, inventory=inventory)

    async def inventory_changed(self) -> None:
        """Cameras changed: dynamic groups and the location rule follow."""
        await self.changes.inventory_changed()

    async def preview(
        self,
        op: Callable[[PolicyStore], Awaitable[Applied]] | None,
        actions: Iterable[str] = ("view_snapshot", "view_live"),
        *,
        user_roles: Mapping[int, str | None] | None = None,
    ) -> tuple[tuple[Change, ...], list[ActionEffect]]:
        """What a change would write and do to every user's visible cameras, storing nothing."""
        return await self.previews.preview(op, actions, user_roles=user_roles)

    # -- the location rule -----------------------------------------------------------------
    def inside_district(self, lat: float, lon: float) -> bool:
        """Whether a point is inside the district polygon (True when none is configured)."""
        return self.location.inside_district(lat, lon)

    def update_vehicle_position(self, vehicle_id: str, lat: float, lon: float, at: float | None = None) -> None:
        """Feed a GPS fix; a foreign truck crossing the district boundary changes who sees it."""
        self.location.update_vehicle_position(vehicle_id, lat, lon, at)

    def foreign_trucks(self) -> list[str]:
        """Vehicles the location rule watches."""
        return self.location.foreign_trucks()


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
