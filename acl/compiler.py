"""Loading and compiling: the stored policy and the camera inventory into the deciding index."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterable
from typing import TYPE_CHECKING

from acl.decider import AccessDecider
from acl.index import FOREIGN_TRUCKS_OUTSIDE, CameraAttrs, VisibilityIndex
from acl.location import LOCATION_RULE, LOCATION_TAG, LocationRule
from acl.policy import Change, PolicyState, PolicyStore, rule_from_row
from acl.policy_models import CameraGroup, Department, OrgLevel

if TYPE_CHECKING:
    from camera_registry.store import CameraStore

__all__ = ["PolicyCompiler", "apply_changes", "user_keys"]


class PolicyCompiler:
    """Reads the policy and the inventory, compiles a :class:`VisibilityIndex` and installs it in
    the decider; patches the installed one with changes committed here.

    ``writing`` is held by whoever changes what the decider answers from (a load, a change, a
    reload; a preview, to compare with one moment): the index follows commit order.
    """

    def __init__(
        self,
        policy: PolicyStore,
        inventory: CameraStore,
        decider: AccessDecider,
        location: LocationRule,
        *,
        gc_freeze: bool = True,
    ) -> None:
        self.policy = policy
        self.inventory = inventory
        self.decider = decider
        self.location = location
        self.gc_freeze = gc_freeze
        self.writing = asyncio.Lock()
        self.cameras: list[CameraAttrs] = []

    async def load(self) -> None:
        """Read the policy and the inventory and compile the index."""
        async with self.writing:
            state = await self.policy.load()
            if self.location.enabled and not any(r.tag == LOCATION_TAG for r in state.rules):
                # The location rule is an ordinary deny rule of the policy, added once and editable.
                await self.policy.add_rule(
                    "system",
                    LOCATION_RULE,
                    "location rule: trucks registered outside the district are visible only inside it",
                )
                state = await self.policy.load()
            await self.load_inventory()
            self.compile(state)

    async def load_inventory(self) -> None:
        """Read the cameras' attributes (what dynamic groups and the location rule select on)."""
        rows, vehicles = await self.inventory.attributes()
        self.cameras = [
            CameraAttrs(cid, area, kind, dept, tuple(tags), vid, station)
            for cid, area, kind, dept, tags, vid, station in rows
        ]
        self.location.inventory_loaded(self.cameras, vehicles)

    async def reload_policy(self) -> None:
        """Read the policy again and compile it (the caller holds ``writing``)."""
        self.compile(await self.policy.load())

    def compile(self, state: PolicyState | None = None) -> None:
        """Compile ``state`` (default: the installed one, e.g. after the inventory changed) and install it."""
        st = state if state is not None else self.decider.state
        assert st is not None
        subjects = {uid: keys for uid in st.user_roles if (keys := user_keys(st, uid)) is not None}
        dynamic = {g.id: g.filter for g in st.groups.values() if g.dynamic}
        index = VisibilityIndex(
            self.cameras,
            st.rules,
            st.static_members,
            dynamic,
            {FOREIGN_TRUCKS_OUTSIDE: self.location.outside_cameras()},
            version=self.decider.index.version + 1,
        )
        self.decider.install(st, index, subjects)
        self.freeze_heap()

    def patch(self, changes: Iterable[Change], revision: int) -> None:
        """Apply changes committed here (as ``revision``) to the installed state and index."""
        d = self.decider
        assert d.state is not None
        apply_changes(d.state, d.index, d.subjects, changes)
        d.state.revision = revision

    def freeze_heap(self) -> None:
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
        if not self.gc_freeze:
            return
        gc.unfreeze()
        gc.collect()
        gc.freeze()


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
