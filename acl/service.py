"""The ACL service wired into the gateway: answers, policy changes, live revocation, audit."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import time
from collections.abc import Awaitable, Callable, Set
from typing import TYPE_CHECKING, Any

from acl.audit import AuditLog
from acl.identity import Subject
from acl.index import FOREIGN_TRUCKS_OUTSIDE, CameraAttrs, Rule, VisibilityIndex
from acl.models import Role, User
from acl.policy import PolicyState, PolicyStore, RuleSpec

if TYPE_CHECKING:
    from camera_registry.store import CameraStore
    from gateway.container import Liandong
    from gateway.settings import Settings
    from storage.db import Database

__all__ = ["AclService", "build_acl"]

log = logging.getLogger(__name__)
LOCATION_TAG = "location"


class AclService:
    """Answers ``authorize`` / ``visible_cameras`` from a compiled index of the stored policy.

    Deny by default. System ``admin`` may do everything; everyone else sees what the grants of
    their departments and roles allow, minus deny rules.
    """

    def __init__(self, settings: Settings, db: Database, store: CameraStore) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.policy = PolicyStore(db)
        self.audit = AuditLog(db)
        self.state: PolicyState | None = None
        self.index = VisibilityIndex([], [], {}, {})
        self._user_subjects: dict[int, frozenset[str]] = {}
        self._cameras: list[CameraAttrs] = []
        self._foreign_trucks: dict[str, list[str]] = {}  # vehicle -> its cameras (registered elsewhere)
        self._positions: dict[str, tuple[float, float, float]] = {}  # vehicle -> (lat, lon, epoch)
        self._inside: dict[str, bool] = {}
        self._polygon: Any = None
        self._terminators: Callable[[], list[Any]] = list
        self._ticker: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._load_polygon()

    # -- answers ---------------------------------------------------------------------------
    def _keys(self, subject: Subject) -> frozenset[str]:
        known = self._user_subjects.get(subject.user_id)
        if known is not None:
            return known | {f"role:{subject.role.value}"}
        return frozenset({f"role:{subject.role.value}", *(f"dept:{d}" for d in subject.departments)})

    def authorize(self, subject: Subject, action: str, camera_id: str) -> bool:
        """Whether ``subject`` may ``action`` the camera now."""
        if subject.is_admin:
            return True
        return self.index.allowed(self._keys(subject), action, camera_id, time.time())

    def visible_cameras(self, subject: Subject, action: str) -> Set[str]:
        """Camera ids ``subject`` may ``action`` now."""
        if subject.is_admin:
            return frozenset(c.id for c in self._cameras)
        return self.index.visible(self._keys(subject), action, time.time())

    def explain(self, subject: Subject, action: str, camera_id: str) -> dict[str, Any]:
        """Why the answer is what it is: the matching allow and deny rules."""
        if subject.is_admin:
            return {"allowed": True, "because": "system role admin", "rules": []}
        rules = self.index.rules_granting(self._keys(subject), action, camera_id, time.time())
        allowed = self.authorize(subject, action, camera_id)
        return {
            "allowed": allowed,
            "because": "no rule allows it (deny by default)" if not rules else None,
            "rules": [_rule_dict(r) for r in rules],
        }

    def subject_for(self, user_id: int, username: str, role: str) -> Subject:
        """A :class:`Subject` for a user known to the policy."""
        depts = frozenset(
            k.removeprefix("dept:") for k in self._user_subjects.get(user_id, ()) if k.startswith("dept:")
        )
        return Subject(user_id=user_id, username=username, role=Role(role), departments=depts)

    async def departments_of(self, user: User) -> frozenset[str]:
        """The user's departments (for :class:`gateway.auth.Authenticator`)."""
        keys = self._user_subjects.get(user.id, frozenset())
        return frozenset(k.removeprefix("dept:") for k in keys if k.startswith("dept:"))

    # -- loading and compiling -------------------------------------------------------------
    def _load_polygon(self) -> None:
        path = self.settings.acl.district_geojson
        if path is None:
            return
        from shapely.geometry import shape
        from shapely.prepared import prep

        doc = json.loads(path.read_text(encoding="utf-8"))
        geom = doc
        if doc.get("type") == "FeatureCollection":
            geom = doc["features"][0]["geometry"]
        elif doc.get("type") == "Feature":
            geom = doc["geometry"]
        self._polygon = prep(shape(geom))

    async def load(self) -> None:
        """Read the policy and the inventory and compile the index."""
        self.state = await self.policy.load()
        if self._polygon is not None and not any(r.tag == LOCATION_TAG for r in self.state.rules):
            # The location rule is an ordinary deny rule of the policy, added once and editable.
            await self.policy.add_rule(
                "system",
                RuleSpec("*", f"group:{FOREIGN_TRUCKS_OUTSIDE}", "view_snapshot", "deny", tag=LOCATION_TAG),
                "location rule: trucks registered outside the district are visible only inside it",
            )
            self.state = await self.policy.load()
        await self._load_inventory()
        self._compile()

    async def _load_inventory(self) -> None:
        rows, vehicles = await self.store.attributes()
        self._cameras = [
            CameraAttrs(cid, area, kind, dept, tuple(tags), vid) for cid, area, kind, dept, tags, vid in rows
        ]
        home = self.settings.acl.home_district
        self._foreign_trucks = {}
        for c in self._cameras:
            v = vehicles.get(c.vehicle_id or "")
            if c.kind == "truck" and v is not None and v.home_district != home:
                self._foreign_trucks.setdefault(v.id, []).append(c.id)

    def _compile(self) -> None:
        st = self.state
        assert st is not None
        subjects: dict[int, frozenset[str]] = {}
        for uid, role in st.user_roles.items():
            keys = {f"role:{role}"}
            for dept, mrole in st.memberships.get(uid, []):
                keys.add(f"dept:{dept}")
                keys.add(f"role:{mrole}")
            subjects[uid] = frozenset(keys)
        self._user_subjects = subjects
        dynamic = {g.id: g.filter for g in st.groups.values() if g.dynamic}
        self.index = VisibilityIndex(
            self._cameras,
            st.rules,
            st.static_members,
            dynamic,
            {FOREIGN_TRUCKS_OUTSIDE: self._outside_cameras()},
            version=self.index.version + 1,
        )

    def _outside_cameras(self) -> set[str]:
        out: set[str] = set()
        for vid, cams in self._foreign_trucks.items():
            if not self._inside.get(vid, False):
                out.update(cams)
        return out

    # -- change hooks ----------------------------------------------------------------------
    async def policy_changed(self, reason: str = "policy changed", author: str | None = None) -> None:
        """Reload the policy after a change, audit it, and end streams that lost access."""
        if author is not None:
            await self.audit.record("policy_change", username=author, detail=reason)
        self.state = await self.policy.load()
        self._compile()
        await self.enforce_sessions(reason)

    def rule_added(self, rule: Rule) -> None:
        """Patch the index in place for one new rule (no reload: answers change in microseconds)."""
        assert self.state is not None
        self.state.rules.append(rule)
        self.index.add_rule(rule)

    def rule_removed(self, rule_id: int) -> None:
        """Patch the index in place for one removed rule."""
        assert self.state is not None
        self.state.rules = [r for r in self.state.rules if r.rule_id != rule_id]
        self.index.remove_rule(rule_id)

    async def add_rule(self, author: str, spec: RuleSpec, reason: str = "") -> tuple[int, int]:
        """Store a rule (one revision) and apply it at once; returns (rule id, revision)."""
        rule_id, rev = await self.policy.add_rule(author, spec, reason)
        from acl.policy import rule_from_row

        row = {
            "v0": spec.subject,
            "v1": spec.target,
            "v2": spec.action,
            "v3": spec.effect,
            "v4": spec.window(),
            "v5": spec.tag,
        }
        self.rule_added(dataclasses.replace(rule_from_row(row), rule_id=rule_id))
        if spec.effect == "deny":
            await self.enforce_sessions(reason or "deny rule added")
        await self.audit.record("policy_change", username=author, detail=f"rev {rev}: add rule {rule_id} {reason}")
        return rule_id, rev

    async def remove_rule(self, author: str, rule_id: int, reason: str = "") -> int:
        """Remove a rule (one revision), apply at once, end streams that lost access."""
        rev = await self.policy.remove_rule(author, rule_id, reason)
        self.rule_removed(rule_id)
        await self.enforce_sessions(reason or "grant removed")
        await self.audit.record("policy_change", username=author, detail=f"rev {rev}: remove rule {rule_id} {reason}")
        return rev

    async def grant_incident(
        self,
        author: str,
        incident_id: str,
        departments: list[str],
        cameras: list[str],
        until: dt.datetime,
        action: str = "view_live",
    ) -> list[int]:
        """Time-limited grants tied to an incident (they expire by themselves)."""
        ids = []
        for dept in departments:
            for cam in cameras:
                spec = RuleSpec(f"dept:{dept}", f"cam:{cam}", action, "allow", None, until, f"incident:{incident_id}")
                rid, _ = await self.add_rule(author, spec, f"incident {incident_id}")
                ids.append(rid)
        return ids

    async def revoke_incident(self, author: str, incident_id: str) -> int:
        """End an incident's grants now."""
        n = 0
        for rid, _ in await self.policy.rules_tagged(f"incident:{incident_id}"):
            await self.remove_rule(author, rid, f"incident {incident_id} closed")
            n += 1
        return n

    async def inventory_changed(self) -> None:
        """Cameras changed: dynamic groups and the location rule follow."""
        await self._load_inventory()
        self._compile()
        await self.enforce_sessions("camera inventory changed")

    def inside_district(self, lat: float, lon: float) -> bool:
        """Whether a point is inside the district polygon (True when no polygon is configured)."""
        if self._polygon is None:
            return True
        from shapely.geometry import Point

        return bool(self._polygon.contains(Point(lon, lat)))

    def update_vehicle_position(self, vehicle_id: str, lat: float, lon: float, at: float | None = None) -> None:
        """Feed a GPS fix; a foreign truck crossing the district boundary changes who sees it."""
        at = time.time() if at is None else at
        prev = self._positions.get(vehicle_id)
        if prev is not None and prev[2] > at:
            return  # older than what we know
        self._positions[vehicle_id] = (lat, lon, at)
        if vehicle_id in self._foreign_trucks:
            self._refresh_inside(vehicle_id)

    def _refresh_inside(self, vehicle_id: str) -> bool:
        pos = self._positions.get(vehicle_id)
        inside = False
        if pos is not None and self._polygon is not None:
            from shapely.geometry import Point

            fresh = time.time() - pos[2] <= self.settings.acl.position_max_age_s
            inside = fresh and bool(self._polygon.contains(Point(pos[1], pos[0])))
        if self._inside.get(vehicle_id, False) != inside:
            self._inside[vehicle_id] = inside
            self.index.set_computed_group(FOREIGN_TRUCKS_OUTSIDE, self._outside_cameras())
            self._changed.set()
            return True
        return False

    async def enforce_sessions(self, reason: str) -> int:
        """End every open stream whose viewer may no longer see the camera."""
        ended = 0
        for term in self._terminators():
            lost: dict[int, set[str]] = {}
            for s in term.list():
                if s.subject is None or not self.authorize(s.subject, "view_live", s.camera_id):
                    lost.setdefault(s.user_id, set()).add(s.camera_id)
            for uid, cams in lost.items():
                ended += await term.end_sessions(uid, cams, f"permission withdrawn: {reason}")
        return ended

    async def _tick(self) -> None:
        """Once a second: stale positions and validity windows end streams without a request."""
        while True:
            try:
                await asyncio.wait_for(self._changed.wait(), 1.0)
            except TimeoutError:
                pass
            self._changed.clear()
            for vid in list(self._foreign_trucks):
                self._refresh_inside(vid)
            self._changed.clear()
            try:
                await self.enforce_sessions("access expired")
            except Exception:  # the sweep must keep running
                log.exception("session sweep failed")

    def attach(self, ld: Liandong) -> None:
        """Wire into the gateway: membership lookup, hooks, the revocation sweep."""
        assert ld.auth is not None
        ld.auth.departments_of = self.departments_of
        self._terminators = lambda: list(ld.extras.get("session_terminators", []))

        async def inventory() -> None:
            await self.inventory_changed()

        ld.on_inventory_changed.append(inventory)

        async def start(_ld: Liandong) -> Callable[[], Awaitable[None]]:
            await self.load()
            self._ticker = asyncio.create_task(self._tick(), name="acl-sweep")

            async def stop() -> None:
                if self._ticker is not None:
                    self._ticker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._ticker

            return stop

        # The policy must be loaded before anything else starts serving.
        ld.extras.setdefault("startups", []).insert(0, start)


def _rule_dict(r: Rule) -> dict[str, Any]:
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


def build_acl(settings: Settings, db: Database, store: CameraStore, **_: Any) -> AclService:
    """The ACL service for these settings."""
    return AclService(settings, db, store)
