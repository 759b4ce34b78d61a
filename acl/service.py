"""The ACL service wired into the gateway: answers, policy changes, live revocation, audit."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import hashlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Set
from typing import TYPE_CHECKING, Any

from acl.audit import AuditLog, audit_key
from acl.identity import Subject
from acl.index import FOREIGN_TRUCKS_OUTSIDE, CameraAttrs, Rule, VisibilityIndex
from acl.models import Role, User
from acl.policy import Applied, Change, PolicyState, PolicyStore, RuleSpec, rule_from_row
from acl.policy_models import CameraGroup, Department, OrgLevel
from acl.preview import ActionEffect, EffectBuilder, affected_users

if TYPE_CHECKING:
    from camera_registry.store import CameraStore
    from gateway.container import Liandong
    from gateway.settings import Settings
    from storage.db import Database

__all__ = ["AclService", "build_acl", "rule_dict"]

log = logging.getLogger(__name__)
LOCATION_TAG = "location"


class AclService:
    """Answers ``authorize`` / ``visible_cameras`` from a compiled index of the stored policy.

    Deny by default. System ``admin`` may do everything; everyone else sees what the grants of
    their departments and roles allow, minus deny rules. Policy changes made here patch the index
    in place (microseconds); changes made elsewhere (the CLI, another gateway node) are noticed
    within a second by the revision poll and reloaded.
    """

    def __init__(self, settings: Settings, db: Database, store: CameraStore) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.policy = PolicyStore(db)
        self.audit = AuditLog(db, audit_key(store.box))
        self.state: PolicyState | None = None
        self.index = VisibilityIndex([], [], {}, {})
        self._user_subjects: dict[int, frozenset[str]] = {}
        self._cameras: list[CameraAttrs] = []
        self._foreign_trucks: dict[str, list[str]] = {}  # vehicle -> its cameras (registered elsewhere)
        self._positions: dict[str, tuple[float, float, float]] = {}  # vehicle -> (lat, lon, epoch)
        self._inside: dict[str, bool] = {}
        self._polygon: Any = None
        self._terminators: Callable[[], list[Any]] = list
        # Told the new revision and the users whose view it can change (None: anyone) after every
        # policy change (the gateway tells those consoles).
        self.on_policy_changed: list[Callable[[int, frozenset[int] | None], None]] = []
        self._ticker: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._write = asyncio.Lock()  # one policy change at a time: the index follows commit order
        # Told after a change is stored (other gateway nodes learn of it this way): a short reason.
        self.on_stored: list[Callable[[str], Awaitable[None]]] = []
        # Validity windows: the sweep looks for window edges (a rule's start or end) passed since
        # ``_edges_seen``; none can come before ``_next_edge`` (-inf: look again, the rules changed).
        self._edges_seen = time.time()
        self._next_edge = -math.inf
        # Several nodes pass the same edge: the one that claims it (key) announces it. None: always.
        self.claim_edge: Callable[[str], Awaitable[bool]] | None = None
        # Told after the policy and the users were read again from the database (a change made
        # elsewhere): the gateway checks every login again.
        self.on_reloaded: list[Callable[[], None]] = []
        self._load_polygon()

    # -- answers ---------------------------------------------------------------------------
    def _keys(self, subject: Subject) -> frozenset[str]:
        known = self._user_subjects.get(subject.user_id)
        role_key = f"role:{subject.role.value}"
        if known is not None and role_key in known:
            return known
        if known is not None and self.state is not None:
            # The login says another system role than the loaded policy (changed by the CLI): trust the login.
            ms = self.state.memberships.get(subject.user_id, [])
            return frozenset({role_key, *(f"dept:{d}" for d, _ in ms), *(f"role:{r}" for _, r in ms)})
        return frozenset({role_key, *(f"dept:{d}" for d in subject.departments)})

    def authorize(self, subject: Subject, action: str, camera_id: str, *, now: float | None = None) -> bool:
        """Whether ``subject`` may ``action`` the camera now (or at ``now``, epoch seconds)."""
        if subject.is_admin:
            return True
        return self.index.allowed(self._keys(subject), action, camera_id, time.time() if now is None else now)

    def visible_cameras(self, subject: Subject, action: str, *, now: float | None = None) -> Set[str]:
        """Camera ids ``subject`` may ``action`` now (a cheap bitset view, see :class:`~acl.index.CameraSet`)."""
        if subject.is_admin:
            return self.index.all()
        return self.index.visible(self._keys(subject), action, time.time() if now is None else now)

    def explain(self, subject: Subject, action: str, camera_id: str) -> dict[str, Any]:
        """Why the answer is what it is: the matching allow and deny rules."""
        if subject.is_admin:
            return {"allowed": True, "because": "system role admin", "rules": []}
        rules = self.index.rules_granting(self._keys(subject), action, camera_id, time.time())
        allowed = self.authorize(subject, action, camera_id)
        because = None
        if not allowed:
            because = "a deny rule overrides" if any(r.eft == "deny" for r in rules) else "no rule allows it"
        return {"allowed": allowed, "because": because, "rules": [rule_dict(r) for r in rules]}

    def who_can(
        self, camera_id: str, action: str, users: list[tuple[int, str, str]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Of ``users`` ((id, username, system role)), who may ``action`` the camera, with the
        rules that allow it; and who has an allow rule but is blocked by a deny rule."""
        allowed: list[dict[str, Any]] = []
        blocked: list[dict[str, Any]] = []
        memo: dict[frozenset[str], dict[str, Any]] = {}  # users share subject sets: explain each once
        for uid, name, role in users:
            subject = self.subject_for(uid, name, role)
            why: dict[str, Any]
            if subject.is_admin:
                why = {"allowed": True, "because": "system role admin", "rules": []}
            else:
                keys = self._keys(subject)
                if keys not in memo:
                    memo[keys] = self.explain(subject, action, camera_id)
                why = memo[keys]
            entry = {"user_id": uid, "username": name, "because": why["because"], "rules": why["rules"]}
            if why["allowed"]:
                allowed.append(entry)
            elif any(r["effect"] == "allow" for r in why["rules"]):
                blocked.append(entry)
        return allowed, blocked

    def subject_for(self, user_id: int, username: str, role: str) -> Subject:
        """A :class:`Subject` for a user known to the policy."""
        depts = frozenset(
            k.removeprefix("dept:") for k in self._user_subjects.get(user_id, ()) if k.startswith("dept:")
        )
        return Subject(user_id=user_id, username=username, role=Role(role), departments=depts)

    async def departments_of(self, user: User) -> frozenset[str]:
        """The user's departments (for :class:`gateway.auth.Authenticator`), from memory."""
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
        async with self._write:
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

    def _user_keys(self, user_id: int) -> frozenset[str] | None:
        assert self.state is not None
        return user_keys(self.state, user_id)

    def _compile(self) -> None:
        st = self.state
        assert st is not None
        self._user_subjects = {uid: keys for uid in st.user_roles if (keys := self._user_keys(uid)) is not None}
        dynamic = {g.id: g.filter for g in st.groups.values() if g.dynamic}
        self.index = VisibilityIndex(
            self._cameras,
            st.rules,
            st.static_members,
            dynamic,
            {FOREIGN_TRUCKS_OUTSIDE: self._outside_cameras()},
            version=self.index.version + 1,
        )
        self._next_edge = -math.inf
        self._freeze_heap()

    def _freeze_heap(self) -> None:
        """Keep the long-lived heap (the policy, its index, the inventory and whatever else is alive
        now) out of CPython's generation-2 collections, which otherwise traverse all of it (at
        district scale up to ~0.4 s, see docs/benchmarks.md) whenever enough objects have survived
        since the last one.

        Frozen objects are never collected by the cyclic collector (reference counting still frees
        them), so an earlier freeze is undone first and one full collection runs before freezing
        again: a garbage cycle among objects frozen at the previous compile (an old index, or
        anything else alive then and dropped since) is reclaimed here, not leaked. The price is one
        full collection per full compile (start, reloads, inventory changes), never on the patch
        path of a change made here."""
        if not self.settings.acl.gc_freeze:
            return
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    def _outside_cameras(self) -> set[str]:
        out: set[str] = set()
        for vid, cams in self._foreign_trucks.items():
            if not self._inside.get(vid, False):
                out.update(cams)
        return out

    # -- policy changes --------------------------------------------------------------------
    async def change(
        self,
        author: str,
        what: str,
        op: Callable[[], Awaitable[Applied]],
        reason: str = "",
        incident_id: str | None = None,
    ) -> Applied:
        """Run one stored change (``op``, a :class:`PolicyStore` call), patch the index, audit it,
        and end streams that lost access."""
        async with self._write:
            applied = await op()
            assert self.state is not None
            if applied.revision == 0:
                return applied  # nothing was written
            reached: frozenset[int] | None = None
            st = self.state
            stranger = any(  # a user created outside this process (``liandong users add``): not in the index yet
                c.kind == "membership" and c.row["user_id"] not in st.user_roles and c.row["user_id"] not in st.inactive
                for c in applied.changes
            )
            if applied.revision != st.revision + 1 or stranger:
                # Someone else (the CLI, another node) changed the policy or the users in between: reload all.
                self.state = await self.policy.load()
                self._compile()
                self._reloaded()
            else:
                before_rules, before_keys = list(self.state.rules), dict(self._user_subjects)
                self._patch(applied)
                self.state.revision = applied.revision
                users = affected_users(
                    applied.changes, [*before_rules, *self.state.rules], before_keys, self._user_subjects
                )
                reached = None if users is None else frozenset(users)
        await self._stored(what)  # other nodes first: the audit write below takes a while
        detail = f"revision {applied.revision}: {what}" + (f" ({reason})" if reason else "")
        await self.audit.record(
            "policy_change", username=author, action=what.split(" ", 1)[0], detail=detail, incident_id=incident_id
        )
        self._announce(reached)
        await self.enforce_sessions(what)
        return applied

    def _reloaded(self) -> None:
        for listener in self.on_reloaded:
            try:
                listener()
            except Exception:  # a listener must not stop the reload
                log.exception("policy-reload listener failed")

    def _announce(self, users: frozenset[int] | None = None) -> None:
        rev = self.state.revision if self.state is not None else 0
        for listener in self.on_policy_changed:
            try:
                listener(rev, users)
            except Exception:  # a listener must not undo a committed change
                log.exception("policy-change listener failed")

    async def _stored(self, what: str) -> None:
        for cb in self.on_stored:
            try:
                await cb(what)
            except Exception:  # telling others must not undo the change here
                log.exception("policy change listener failed")

    async def reload(self, reason: str, *, inventory: bool = False) -> int:
        """Reload the policy (and the inventory if asked) from the database after a change made by
        another node, and end streams that lost access; returns how many ended."""
        if inventory:
            await self._load_inventory()
        async with self._write:
            self.state = await self.policy.load()
            self._compile()
        self._reloaded()
        # No policy.changed here: the node that made the change announced it on the shared event stream.
        return await self.enforce_sessions(reason)

    def _patch(self, applied: Applied) -> None:
        """Apply a committed change to the in-memory state and index."""
        assert self.state is not None
        apply_changes(self.state, self.index, self._user_subjects, applied.changes)
        self._next_edge = -math.inf

    async def preview(
        self,
        op: Callable[[PolicyStore], Awaitable[Applied]] | None,
        actions: Iterable[str] = ("view_snapshot", "view_live"),
        *,
        user_roles: Mapping[int, str | None] | None = None,
    ) -> tuple[tuple[Change, ...], list[ActionEffect]]:
        """What a change (``op``, a :class:`PolicyStore` method call on the store it is given) would
        write and what it would do to every user's visible cameras, without storing anything.
        ``user_roles`` previews users' new system roles (None: deactivated) instead of, or with, a
        stored change. Raises :class:`~acl.policy.PolicyError` exactly as the change itself would."""
        async with self._write:  # the dry run and the state it is compared with are one moment
            st = self.state
            assert st is not None
            changes = await self.policy.dry_run(op) if op is not None else ()
            after_state, after_index = st.copy(), self.index.fork()
            after_keys = dict(self._user_subjects)
            apply_changes(after_state, after_index, after_keys, changes)
            for uid, role in (user_roles or {}).items():
                if role is None:
                    after_state.user_roles.pop(uid, None)
                else:
                    after_state.user_roles[uid] = role
                keys = user_keys(after_state, uid)
                if keys is None:
                    after_keys.pop(uid, None)
                else:
                    after_keys[uid] = keys
            # Private copies: the comparison runs in slices while this index keeps serving and changing.
            before_index, before_keys = self.index.fork(), dict(self._user_subjects)
            # System admins see everything either way; one made or unmade admin is left out too.
            admins = frozenset(u for s_ in (st, after_state) for u, r in s_.user_roles.items() if r == Role.admin.value)
            rules = [*st.rules, *after_state.rules]
        now = time.time()
        only = affected_users(changes, rules, before_keys, after_keys)
        if only is not None and user_roles:
            only |= set(user_roles)
        builders = [
            EffectBuilder(before_index, before_keys, after_index, after_keys, a, now, unrestricted=admins, only=only)
            for a in actions
        ]
        # A change for everyone (a "*" rule) compares every subject set: seconds at district scale.
        # Slices of a few milliseconds keep the event loop (which relays video) responsive.
        for b in builders:
            finished = False
            while not finished:
                finished = b.step(0.005)
                await asyncio.sleep(0)  # let the loop run between slices
        return changes, [b.effect for b in builders]

    async def policy_changed(self, reason: str = "policy changed", author: str | None = None) -> None:
        """Reload the whole policy (after changes made outside :meth:`change`), end lost streams."""
        if author is not None:
            await self.audit.record("policy_change", username=author, detail=reason)
        async with self._write:
            self.state = await self.policy.load()
            self._compile()
        self._reloaded()
        await self._stored(reason)
        self._announce()
        await self.enforce_sessions(reason)

    async def user_changed(self, user_id: int, role: Role, active: bool) -> None:
        """A user was created, or their system role or active flag changed."""
        st = self.state
        assert st is not None
        if active:
            st.user_roles[user_id] = role.value
            st.inactive.discard(user_id)
        else:
            st.user_roles.pop(user_id, None)
            st.inactive.add(user_id)
        keys = self._user_keys(user_id)
        if keys is None:
            self._user_subjects.pop(user_id, None)
        else:
            self._user_subjects[user_id] = keys
        await self._stored("user changed")
        self._announce(frozenset({user_id}))
        await self.enforce_sessions("user changed")

    async def add_rule(self, author: str, spec: RuleSpec, reason: str = "") -> tuple[int, int]:
        """Store a rule (one revision) and apply it at once; returns (rule id, revision)."""
        what = f"{'deny' if spec.effect == 'deny' else 'grant'} {spec.action} on {spec.target} to {spec.subject}"
        applied = await self.change(author, what, lambda: self.policy.add_rule(author, spec, reason), reason)
        return applied.rule_ids[0], applied.revision

    async def remove_rule(self, author: str, rule_id: int, reason: str = "") -> int:
        """Remove a rule (one revision), apply at once, end streams that lost access."""
        applied = await self.change(
            author, f"rule {rule_id} removed", lambda: self.policy.remove_rule(author, rule_id, reason), reason
        )
        return applied.revision

    async def grant_incident(
        self,
        author: str,
        incident_id: str,
        departments: list[str],
        cameras: list[str],
        until: dt.datetime,
        action: str = "view_live",
    ) -> list[int]:
        """Time-limited grants tied to an incident, in one revision; they expire by themselves.

        Grants the incident already has are kept (calling again with more cameras adds only those).
        """
        tag = f"incident:{incident_id}"
        specs = [
            RuleSpec(f"dept:{d}", f"cam:{c}", action, "allow", None, until, tag)
            for d in dict.fromkeys(departments)
            for c in dict.fromkeys(cameras)
        ]
        applied = await self.change(
            author,
            f"incident grant {incident_id}: {len(specs)} rule(s) until {until.isoformat()}",
            lambda: self.policy.add_rules(author, specs, f"incident {incident_id}"),
            incident_id=incident_id,
        )
        return applied.rule_ids

    async def revoke_incident(self, author: str, incident_id: str) -> int:
        """End an incident's grants now (one revision); returns how many rules were removed."""
        ids = [rid for rid, _ in await self.policy.rules_tagged(f"incident:{incident_id}")]
        if not ids:
            return 0
        applied = await self.change(
            author,
            f"incident revoke {incident_id}",
            lambda: self.policy.remove_rules(author, ids, f"incident {incident_id} closed", missing_ok=True),
            incident_id=incident_id,
        )
        return len(applied.changes)

    async def inventory_changed(self) -> None:
        """Cameras changed: dynamic groups and the location rule follow."""
        await self._load_inventory()
        async with self._write:
            self._compile()
        await self.enforce_sessions("camera inventory changed")

    async def _poll_revisions(self) -> None:
        """Reload when the stored policy moved on without us (CLI, another node)."""
        if self.state is None or self._write.locked():
            return
        async with self._write:
            latest = await self.policy.latest_revision()
            if latest == self.state.revision:
                return
            log.info("policy revision %s appeared outside this process: reloading", latest)
            self.state = await self.policy.load()
            self._compile()
        self._reloaded()
        self._announce()
        await self.enforce_sessions("policy changed")

    # -- the location rule -----------------------------------------------------------------
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

    def foreign_trucks(self) -> list[str]:
        """Vehicles the location rule watches (trucks registered outside the district)."""
        return list(self._foreign_trucks)

    def _refresh_inside(self, vehicle_id: str) -> bool:
        pos = self._positions.get(vehicle_id)
        inside = False
        if pos is not None and self._polygon is not None:
            fresh = time.time() - pos[2] <= self.settings.acl.position_max_age_s
            inside = fresh and self.inside_district(pos[0], pos[1])
        if self._inside.get(vehicle_id, False) != inside:
            self._inside[vehicle_id] = inside
            self.index.set_computed_group(FOREIGN_TRUCKS_OUTSIDE, self._outside_cameras())
            self._changed.set()
            return True
        return False

    # -- live revocation -------------------------------------------------------------------
    def _session_subject(self, s: Any) -> Subject | None:
        """The session's viewer as the policy sees them now (role and departments may have changed)."""
        st = self.state
        if st is not None and s.user_id in st.inactive:
            return None
        role = st.user_roles.get(s.user_id) if st is not None else None
        if role is not None:
            return self.subject_for(s.user_id, s.username, role)
        return s.subject if isinstance(s.subject, Subject) else None

    async def enforce_sessions(self, reason: str) -> int:
        """End every open stream whose viewer may no longer see the camera."""
        ended = 0
        for term in self._terminators():
            lost: dict[int, set[str]] = {}
            for s in term.list():
                subject = self._session_subject(s)
                if subject is None or not self.authorize(subject, "view_live", s.camera_id):
                    lost.setdefault(s.user_id, set()).add(s.camera_id)
            for uid, cams in lost.items():
                ended += await term.end_sessions(uid, cams, f"permission withdrawn: {reason}")
        return ended

    async def _tick(self) -> None:
        """Once a second: stale positions, validity windows and outside changes end streams without a request."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 1.0)
            self._changed.clear()
            try:
                for vid in list(self._foreign_trucks):
                    self._refresh_inside(vid)
                self._changed.clear()
                await self._poll_revisions()
                await self._windows_passed()
                await self.enforce_sessions("access expired")
            except Exception:  # the sweep must keep running
                log.exception("ACL sweep failed")

    async def _windows_passed(self, now: float | None = None) -> int:
        """Tell consoles about validity windows that opened or closed since the last look: the same
        ``policy.changed`` (same audience) as an edit of those rules. Returns how many edges passed.

        A rule's answer changes by itself at its window's edges; streams are ended by the sweep, and
        this lets the consoles of the users it reaches refresh their camera lists at once too."""
        st = self.state
        now = time.time() if now is None else now
        since, self._edges_seen = self._edges_seen, now
        if st is None or now < self._next_edge:
            return 0
        passed: list[tuple[Rule, float]] = []
        nxt = math.inf
        for r in st.rules:
            for edge in (r.nbf, r.exp):
                if since < edge <= now:
                    passed.append((r, edge))
                elif now < edge < nxt:
                    nxt = edge
        self._next_edge = nxt
        if not passed:
            return 0
        # One claim per edge time (an incident's grants all end together): the same key on every
        # node whose policy has the same rules, and one Redis call, not one per rule.
        by_edge: dict[float, list[Rule]] = {}
        for r, edge in passed:
            by_edge.setdefault(edge, []).append(r)
        announce: list[Rule] = []
        for edge, rules in by_edge.items():
            names = sorted(f"{r.rule_id}:{r.sub}:{r.obj}:{r.act}:{r.eft}" for r in rules)
            key = hashlib.sha256("|".join([repr(edge), *names]).encode()).hexdigest()[:32]
            if self.claim_edge is None or await self.claim_edge(key):
                announce += rules
            opened = sum(1 for r in rules if r.nbf == edge)
            log.info("validity windows: %d opened, %d closed (rules %s)", opened, len(rules) - opened, names[:5])
        if announce:
            changes = [Change("window", "rule", {"ptype": "p", "v0": r.sub}) for r in announce]
            users = affected_users(changes, announce, self._user_subjects, self._user_subjects)
            self._announce(None if users is None else frozenset(users))
        return len(passed)

    def attach(self, ld: Liandong) -> None:
        """Wire into the gateway: membership lookup, hooks, the revocation sweep."""
        assert ld.auth is not None
        ld.auth.departments_of = self.departments_of
        self.on_reloaded.append(ld.auth.forget_logins)
        self._terminators = lambda: list(ld.extras.get("session_terminators", []))

        async def inventory() -> None:
            await self.inventory_changed()

        ld.on_inventory_changed.append(inventory)

        def tell_consoles(revision: int, users: frozenset[int] | None) -> None:
            # The consoles of the users it reaches refresh their own (server-filtered) camera lists;
            # the others learn nothing of it. Policy editors' and auditors' consoles follow every change.
            if ld.events is None:
                return
            if users is None:
                ld.events.publish("policy.changed", {"revision": revision}, everyone=True)
            else:
                readers = (Role.security_admin.value, Role.auditor.value)
                ld.events.publish("policy.changed", {"revision": revision}, users=sorted(users), roles=readers)

        self.on_policy_changed.append(tell_consoles)

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


def user_keys(st: PolicyState, user_id: int) -> frozenset[str] | None:
    """The policy subjects of an active user (system role, departments, roles in them); None if inactive."""
    role = st.user_roles.get(user_id)
    if role is None:
        return None
    keys = {f"role:{role}"}
    for dept, mrole in st.memberships.get(user_id, []):
        keys.add(f"dept:{dept}")
        keys.add(f"role:{mrole}")
    return frozenset(keys)


def apply_changes(
    st: PolicyState, index: VisibilityIndex, subjects: dict[int, frozenset[str]], changes: Iterable[Change]
) -> None:
    """Apply committed (or proposed) changes to a policy state, its index and the users' subjects."""
    users: set[int] = set()
    groups: set[str] = set()
    for ch in changes:
        add, row = ch.op == "add", ch.row
        if ch.kind == "rule" and row["ptype"] == "p":
            if add:
                for rid in ch.rule_ids:
                    rule = rule_from_row(row, rid)
                    st.rules.append(rule)
                    index.add_rule(rule)
            else:
                gone = set(ch.rule_ids)
                st.rules = [r for r in st.rules if r.rule_id not in gone]
                for rid in gone:
                    index.remove_rule(rid)
        elif ch.kind == "rule" and row["ptype"] == "g2":
            gid, cid = row["v1"].removeprefix("group:"), row["v0"].removeprefix("cam:")
            members = st.static_members.setdefault(gid, set())
            (members.add if add else members.discard)(cid)
            groups.add(gid)
        elif ch.kind == "membership":
            ms = [m for m in st.memberships.get(row["user_id"], []) if m[0] != row["department_id"]]
            if add:
                ms.append((row["department_id"], row["role"]))
            st.memberships[row["user_id"]] = ms
            users.add(row["user_id"])
        elif ch.kind == "department":
            if ch.op == "remove":
                st.departments.pop(row["id"], None)
            else:
                st.departments[row["id"]] = Department(**{**row, "level": OrgLevel(row["level"])})
        elif ch.kind == "group":
            if add:
                st.groups[row["id"]] = CameraGroup(**row)
            else:
                st.groups.pop(row["id"], None)
            groups.add(row["id"])
    for uid in users:
        keys = user_keys(st, uid)
        if keys is None:
            subjects.pop(uid, None)
        else:
            subjects[uid] = keys
    for gid in groups:
        g = st.groups.get(gid)
        if g is not None and g.dynamic:
            st.static_members.pop(gid, None)
            index.set_group(gid, flt=g.filter)
        elif g is not None or st.static_members.get(gid):
            index.set_group(gid, members=st.static_members.setdefault(gid, set()))
        else:
            st.static_members.pop(gid, None)
            index.drop_group(gid)


def rule_dict(r: Rule) -> dict[str, Any]:
    """A rule for the API."""

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
