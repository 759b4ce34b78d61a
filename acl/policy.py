"""Authoring the policy: every change is one transaction and one revision (with its diff).

A revision's diff is a list of ``{"op": "add"|"remove", "kind": ..., "row": {...}}`` entries over
departments, memberships, camera groups and Casbin rules. Rolling back to revision N applies the
inverse of every later diff, newest first, as a new revision: history is never rewritten.

Each change returns an :class:`Applied` (the revision and its changes with the ids of the Casbin
rows they touched), so the running service patches its compiled index instead of reloading.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from acl.index import ACTION_LEVEL, DYNAMIC_KEYS, Rule, parse_window
from acl.models import Membership, User
from acl.policy_models import CameraGroup, CasbinRule, Department, OrgLevel, PolicyRevision
from storage.db import Database

__all__ = ["Applied", "Change", "PolicyError", "PolicyState", "PolicyStore", "RuleSpec", "rule_from_row"]

SLUG = re.compile(r"^[\w.-]{1,64}$")
RULE_FIELDS = ("ptype", "v0", "v1", "v2", "v3", "v4", "v5")


class PolicyError(ValueError):
    """An invalid policy change (message names the field); nothing was written."""


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A grant or deny rule as an admin writes it."""

    subject: str
    target: str
    action: str
    effect: str = "allow"
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    tag: str = ""

    def window(self) -> str:
        """The Casbin ``window`` field."""
        if self.not_before is None and self.not_after is None:
            return ""
        lo = f"{self.not_before.timestamp():.3f}" if self.not_before else ""
        hi = f"{self.not_after.timestamp():.3f}" if self.not_after else ""
        return f"{lo}..{hi}"

    def row(self) -> dict[str, str]:
        """The Casbin ``p`` row."""
        return {
            "ptype": "p",
            "v0": self.subject,
            "v1": self.target,
            "v2": self.action,
            "v3": self.effect,
            "v4": self.window(),
            "v5": self.tag,
        }

    def validate(self) -> None:
        """Raise :class:`PolicyError` naming the bad field."""
        kind, _, name = self.subject.partition(":")
        if self.subject != "*" and (kind not in ("dept", "role") or not SLUG.match(name)):
            raise PolicyError("subject: must be dept:<id>, role:<name> or *")
        kind, _, name = self.target.partition(":")
        if kind not in ("cam", "group") or not name or len(name) > 64:
            raise PolicyError("target: must be cam:<id> or group:<id>")
        if self.action not in ACTION_LEVEL:
            raise PolicyError(f"action: must be one of {', '.join(ACTION_LEVEL)}")
        if self.effect not in ("allow", "deny"):
            raise PolicyError("effect: must be allow or deny")
        for name_, v in (("not_before", self.not_before), ("not_after", self.not_after)):
            if v is not None and v.tzinfo is None:
                raise PolicyError(f"{name_}: needs a timezone")
        if self.not_before and self.not_after and self.not_after <= self.not_before:
            raise PolicyError("not_after: must be later than not_before")
        if len(self.tag) > 128:
            raise PolicyError("tag: at most 128 characters")


def _rule_row(r: CasbinRule) -> dict[str, str]:
    return {k: getattr(r, k) for k in RULE_FIELDS}


def rule_from_row(row: CasbinRule | dict[str, Any], rule_id: int | None = None) -> Rule:
    """A compiled :class:`Rule` from a ``p`` row."""
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    nbf, exp = parse_window(str(get("v4") or ""))
    if rule_id is None and isinstance(row, CasbinRule):
        rule_id = row.id
    return Rule(
        sub=str(get("v0")),
        obj=str(get("v1")),
        act=str(get("v2")),
        eft=str(get("v3")),
        nbf=nbf,
        exp=exp,
        tag=str(get("v5") or ""),
        rule_id=rule_id,
    )


@dataclass(frozen=True, slots=True)
class Change:
    """One applied diff entry, with the ids of the ``casbin_rule`` rows it added or removed."""

    op: str
    kind: str
    row: dict[str, Any]
    rule_ids: tuple[int, ...] = ()
    old: dict[str, Any] | None = None  # the row before an "update"
    # Recorded only (see PolicyStore.record): history of a change kept outside the viewing policy.
    recorded: bool = False


@dataclass(frozen=True, slots=True)
class Applied:
    """A committed policy change: its revision and what it did."""

    revision: int
    changes: tuple[Change, ...]

    @property
    def rule_ids(self) -> list[int]:
        """Ids of the Casbin rows this change added."""
        return [i for c in self.changes if c.op == "add" and c.kind == "rule" for i in c.rule_ids]


@dataclass
class PolicyState:
    """Everything the index is compiled from (loaded once, then patched on change)."""

    departments: dict[str, Department]
    memberships: dict[int, list[tuple[str, str]]]  # user -> [(dept, role)]
    user_roles: dict[int, str]  # active users -> system role
    groups: dict[str, CameraGroup]
    static_members: dict[str, set[str]]
    rules: list[Rule]
    inactive: set[int] = field(default_factory=set)
    revision: int = 0

    def copy(self) -> PolicyState:
        """A copy whose containers can be changed without touching this state."""
        return PolicyState(
            dict(self.departments),
            {u: list(ms) for u, ms in self.memberships.items()},
            dict(self.user_roles),
            dict(self.groups),
            {g: set(m) for g, m in self.static_members.items()},
            list(self.rules),
            set(self.inactive),
            self.revision,
        )


class _Discarded(Exception):
    """Raised by a dry-run store at commit time: the transaction rolls back, the changes travel up."""

    def __init__(self, changes: tuple[Change, ...]) -> None:
        super().__init__("dry run")
        self.changes = changes


class PolicyStore:
    """Reads and changes the stored policy."""

    def __init__(self, db: Database, *, discard: bool = False) -> None:
        self.db = db
        self._discard = discard

    async def dry_run(self, op: Callable[[PolicyStore], Awaitable[Applied]]) -> tuple[Change, ...]:
        """What ``op`` (one change method called on the store it is given) would change, without
        storing anything: the change runs with every check and is rolled back at commit time.
        A :class:`PolicyError` from its checks propagates exactly as the real change would raise it."""
        try:
            applied = await op(PolicyStore(self.db, discard=True))
        except _Discarded as d:
            return d.changes
        return applied.changes  # nothing to write (e.g. every incident grant existed already)

    # -- loading ---------------------------------------------------------------------------
    async def load(self) -> PolicyState:
        """The whole policy, in one transaction."""
        async with self.db.session() as s:
            rev = (await s.execute(select(func.max(PolicyRevision.id)))).scalar() or 0
            depts = {d.id: d for d in (await s.execute(select(Department))).scalars()}
            members: dict[int, list[tuple[str, str]]] = {}
            for uid, dept, role in (
                await s.execute(select(Membership.user_id, Membership.department_id, Membership.role))
            ).all():
                members.setdefault(uid, []).append((dept, role))
            roles: dict[int, str] = {}
            inactive: set[int] = set()
            for uid, role, active in (await s.execute(select(User.id, User.role, User.active))).all():
                if active:
                    roles[uid] = role.value
                else:
                    inactive.add(uid)
            groups = {g.id: g for g in (await s.execute(select(CameraGroup))).scalars()}
            static: dict[str, set[str]] = {gid: set() for gid, g in groups.items() if not g.dynamic}
            rules: list[Rule] = []
            q = select(CasbinRule.id, *(getattr(CasbinRule, k) for k in RULE_FIELDS))
            for rid, ptype, v0, v1, v2, v3, v4, v5 in (await s.execute(q)).all():
                if ptype == "p":
                    nbf, exp = parse_window(v4)
                    rules.append(Rule(v0, v1, v2, v3, nbf, exp, v5, rid))
                elif ptype == "g2":
                    static.setdefault(v1.removeprefix("group:"), set()).add(v0.removeprefix("cam:"))
        return PolicyState(depts, members, roles, groups, static, rules, inactive, rev)

    async def latest_revision(self) -> int:
        """The newest revision id (0 when there is none)."""
        async with self.db.session() as s:
            return int((await s.execute(select(func.max(PolicyRevision.id)))).scalar() or 0)

    # -- revisions -------------------------------------------------------------------------
    async def _commit(self, s: AsyncSession, author: str, reason: str, changes: list[Change]) -> Applied:
        if not changes:
            raise PolicyError("change: nothing would change")
        if self._discard:
            raise _Discarded(tuple(changes))
        diff = [
            {"op": c.op, "kind": c.kind, "row": c.row, **({"old": c.old} if c.old else {})}
            | ({"recorded": True} if c.recorded else {})
            for c in changes
        ]
        rev = PolicyRevision(author=author[:64], reason=reason[:2000], diff={"changes": diff})
        s.add(rev)
        await s.flush()
        return Applied(rev.id, tuple(changes))

    async def record(
        self,
        author: str,
        reason: str,
        kind: str,
        op: str,
        write: Callable[[AsyncSession], Awaitable[dict[str, Any]]],
    ) -> Applied:
        """A change of something the policy governs but does not hold (``kind``, e.g. an evidence lock)
        as a revision with its author and reason: ``write`` makes the change in the revision's own
        transaction and returns its row for the diff (raising aborts both). Such entries are history:
        the index ignores them and a rollback leaves them standing."""
        if not reason.strip():
            raise PolicyError("reason: required")
        async with self.db.session() as s:
            row = await write(s)
            return await self._commit(s, author, reason.strip(), [Change(op, kind, row, recorded=True)])

    async def revisions(self, limit: int = 100, offset: int = 0) -> list[PolicyRevision]:
        """Revisions, newest first."""
        async with self.db.session() as s:
            q = select(PolicyRevision).order_by(PolicyRevision.id.desc()).offset(offset).limit(limit)
            return list((await s.execute(q)).scalars())

    async def rollback(self, to_revision: int, author: str, reason: str) -> Applied:
        """Undo every change after ``to_revision`` (as one new revision; all or nothing)."""
        try:
            async with self.db.session() as s:
                if to_revision != 0 and await s.get(PolicyRevision, to_revision) is None:
                    raise PolicyError(f"revision: {to_revision} does not exist")
                q = select(PolicyRevision).where(PolicyRevision.id > to_revision).order_by(PolicyRevision.id.desc())
                later = list((await s.execute(q)).scalars())
                if not later:
                    raise PolicyError(f"revision: {to_revision} is already the newest")
                done: list[Change] = []
                for rev in later:
                    for ch in reversed(rev.diff.get("changes", [])):
                        if ch.get("recorded"):
                            continue  # not the viewing policy's state (an evidence lock): lifted only on its own
                        done.append(await self._apply(s, _inverse(ch)))
                return await self._commit(s, author, reason or f"rollback to revision {to_revision}", done)
        except IntegrityError:
            raise PolicyError(
                f"revision: cannot roll back to {to_revision}: a user, department or group it needs "
                "no longer exists or was re-created since; nothing was changed"
            ) from None

    async def _apply(self, s: AsyncSession, ch: dict[str, Any]) -> Change:
        kind, row, add = ch["kind"], ch["row"], ch["op"] == "add"
        ids: tuple[int, ...] = ()
        if kind == "rule":
            if add:
                obj = CasbinRule(**row)
                s.add(obj)
                await s.flush()
                ids = (obj.id,)
            else:
                match = [getattr(CasbinRule, k) == v for k, v in row.items()]
                ids = tuple((await s.execute(select(CasbinRule.id).where(*match))).scalars())
                await s.execute(delete(CasbinRule).where(*match))
        elif kind == "department":
            if ch["op"] == "update":
                # In place: deleting the row would cascade to its memberships and child units.
                d = await s.get(Department, row["id"])
                if d is None:
                    raise PolicyError(f"id: no department '{row['id']}'")
                for k, v in row.items():
                    setattr(d, k, OrgLevel(v) if k == "level" else v)
            elif add:
                s.add(Department(**{**row, "level": OrgLevel(row["level"])}))
            else:
                await s.execute(delete(Department).where(Department.id == row["id"]))
        elif kind == "group":
            if add:
                s.add(CameraGroup(**row))
            else:
                await s.execute(delete(CameraGroup).where(CameraGroup.id == row["id"]))
        elif kind == "membership":
            if add:
                s.add(Membership(**row))
            else:
                await s.execute(
                    delete(Membership).where(
                        and_(Membership.user_id == row["user_id"], Membership.department_id == row["department_id"])
                    )
                )
        else:
            raise PolicyError(f"change: unknown kind {kind!r}")
        await s.flush()
        return Change(ch["op"], kind, row, ids, ch.get("old"))

    # -- departments -----------------------------------------------------------------------
    async def put_department(
        self,
        author: str,
        dept_id: str,
        name: str,
        level: str,
        parent_id: str | None,
        area: str | None,
        reason: str = "",
        ptz_priority: int | None = None,
    ) -> Applied:
        """Create or change a department (``ptz_priority`` None: the gateway's default for it)."""
        async with self.db.session() as s:
            ch = await self._department_change(s, dept_id, name, level, parent_id, area, ptz_priority)
            if ch is None:
                raise PolicyError("change: nothing would change")
            return await self._commit(s, author, reason, [await self._apply(s, ch)])

    async def put_departments(
        self,
        author: str,
        depts: Sequence[tuple[str, str, str, str | None, str | None]],
        reason: str = "",
    ) -> Applied:
        """Create or change several departments ``(id, name, level, parent_id, area)`` in one
        transaction and one revision, parents before their children; unchanged ones are skipped
        (revision 0 when nothing changes). An organisation of fifty units written one revision each
        took ~2 s of round trips."""
        async with self.db.session() as s:
            changes = []
            for dept_id, name, level, parent_id, area in depts:
                ch = await self._department_change(s, dept_id, name, level, parent_id, area, None)
                if ch is not None:
                    changes.append(await self._apply(s, ch))
            if not changes:
                return Applied(0, ())
            return await self._commit(s, author, reason, changes)

    async def _department_change(
        self,
        s: AsyncSession,
        dept_id: str,
        name: str,
        level: str,
        parent_id: str | None,
        area: str | None,
        ptz_priority: int | None,
    ) -> dict[str, Any] | None:
        """The checked diff entry that puts this department, or None when it is already so."""
        if not SLUG.match(dept_id):
            raise PolicyError("id: 1-64 letters, digits, '.', '_' or '-'")
        if not name.strip() or len(name) > 128:
            raise PolicyError("name: 1-128 characters")
        try:
            lvl = OrgLevel(level)
        except ValueError:
            raise PolicyError(f"level: must be one of {', '.join(x.value for x in OrgLevel)}") from None
        if ptz_priority is not None and not 0 <= ptz_priority <= 1000:
            raise PolicyError("ptz_priority: 0-1000")
        if parent_id is not None:
            if parent_id == dept_id or await s.get(Department, parent_id) is None:
                raise PolicyError("parent_id: no such department")
            if await self._is_below(s, parent_id, dept_id):
                raise PolicyError("parent_id: would make a cycle")
        new = {
            "id": dept_id,
            "name": name.strip(),
            "level": lvl.value,
            "parent_id": parent_id,
            "area": area,
            "ptz_priority": ptz_priority,
        }
        old = await s.get(Department, dept_id)
        if old is None:
            return {"op": "add", "kind": "department", "row": new}
        before = _dept_row(old)
        if before == new:
            return None
        return {"op": "update", "kind": "department", "row": new, "old": before}

    async def _is_below(self, s: AsyncSession, unit: str, ancestor: str) -> bool:
        seen: set[str] = set()
        cur: str | None = unit
        while cur is not None and cur not in seen:
            if cur == ancestor:
                return True
            seen.add(cur)
            d = await s.get(Department, cur)
            cur = d.parent_id if d else None
        return False

    async def delete_department(self, author: str, dept_id: str, reason: str = "") -> Applied:
        """Delete a department, its memberships and its rules (units below it lose their parent)."""
        async with self.db.session() as s:
            d = await s.get(Department, dept_id)
            if d is None:
                raise PolicyError(f"id: no department '{dept_id}'")
            diff: list[dict[str, Any]] = []
            for r in (await s.execute(select(CasbinRule).where(CasbinRule.v0 == f"dept:{dept_id}"))).scalars():
                diff.append({"op": "remove", "kind": "rule", "row": _rule_row(r)})
            for m in (await s.execute(select(Membership).where(Membership.department_id == dept_id))).scalars():
                diff.append({"op": "remove", "kind": "membership", "row": _membership_row(m)})
            for child in (await s.execute(select(Department).where(Department.parent_id == dept_id))).scalars():
                row = _dept_row(child)
                diff.append({"op": "update", "kind": "department", "row": {**row, "parent_id": None}, "old": row})
            diff.append({"op": "remove", "kind": "department", "row": _dept_row(d)})
            changes = [await self._apply(s, ch) for ch in diff]
            return await self._commit(s, author, reason, changes)

    # -- memberships -----------------------------------------------------------------------
    async def set_membership(
        self, author: str, user_id: int, dept_id: str, role: str = "member", reason: str = ""
    ) -> Applied:
        """Put a user in a department (or change their role there)."""
        if not SLUG.match(role):
            raise PolicyError("role: 1-64 letters, digits, '.', '_' or '-'")
        async with self.db.session() as s:
            if await s.get(User, user_id) is None:
                raise PolicyError(f"user_id: no user {user_id}")
            if await s.get(Department, dept_id) is None:
                raise PolicyError(f"department_id: no department '{dept_id}'")
            changes: list[Change] = []
            old = await s.get(Membership, (user_id, dept_id))
            if old is not None:
                if old.role == role:
                    raise PolicyError("change: nothing would change")
                changes.append(
                    await self._apply(s, {"op": "remove", "kind": "membership", "row": _membership_row(old)})
                )
            row = {"user_id": user_id, "department_id": dept_id, "role": role}
            changes.append(await self._apply(s, {"op": "add", "kind": "membership", "row": row}))
            return await self._commit(s, author, reason, changes)

    async def remove_membership(self, author: str, user_id: int, dept_id: str, reason: str = "") -> Applied:
        """Take a user out of a department."""
        async with self.db.session() as s:
            old = await s.get(Membership, (user_id, dept_id))
            if old is None:
                raise PolicyError("membership: the user is not in that department")
            ch = await self._apply(s, {"op": "remove", "kind": "membership", "row": _membership_row(old)})
            return await self._commit(s, author, reason, [ch])

    # -- groups ----------------------------------------------------------------------------
    async def put_group(
        self,
        author: str,
        group_id: str,
        name: str,
        *,
        cameras: list[str] | None = None,
        filter_: dict[str, list[str]] | None = None,
        reason: str = "",
    ) -> Applied:
        """Create or replace a static group (``cameras``) or a dynamic one (``filter_``)."""
        if not SLUG.match(group_id) or group_id.startswith("@"):
            raise PolicyError("id: 1-64 letters, digits, '.', '_' or '-'")
        if not name.strip() or len(name) > 128:
            raise PolicyError("name: 1-128 characters")
        if (cameras is None) == (filter_ is None):
            raise PolicyError("cameras: give either cameras (static group) or filter (dynamic group)")
        if filter_ is not None:
            bad = [k for k in filter_ if k not in DYNAMIC_KEYS]
            if bad:
                raise PolicyError(f"filter.{bad[0]}: unknown attribute (use {', '.join(DYNAMIC_KEYS)})")
            if not filter_ or any(not isinstance(v, list) or not v for v in filter_.values()):
                raise PolicyError("filter: each attribute needs a non-empty list of values")
        if cameras is not None and len(cameras) > 100_000:
            raise PolicyError("cameras: at most 100000")
        async with self.db.session() as s:
            diff: list[dict[str, Any]] = []
            old = await s.get(CameraGroup, group_id)
            new_row = {"id": group_id, "name": name.strip(), "dynamic": filter_ is not None, "filter": filter_ or {}}
            old_members: set[str] = set()
            if old is not None:
                old_row = {"id": old.id, "name": old.name, "dynamic": old.dynamic, "filter": old.filter}
                q = select(CasbinRule).where(CasbinRule.ptype == "g2", CasbinRule.v1 == f"group:{group_id}")
                old_members = {r.v0.removeprefix("cam:") for r in (await s.execute(q)).scalars()}
                if old_row == new_row and old_members == set(cameras or []):
                    raise PolicyError("change: nothing would change")
                if old_row != new_row:
                    diff.append({"op": "remove", "kind": "group", "row": old_row})
                    diff.append({"op": "add", "kind": "group", "row": new_row})
            else:
                diff.append({"op": "add", "kind": "group", "row": new_row})
            wanted = set(cameras or [])
            # Only the members that change are written: a 5,000-camera group edited by one camera is one row.
            for cid in sorted(old_members - wanted):
                diff.append({"op": "remove", "kind": "rule", "row": _g2_row(cid, group_id)})
            for cid in sorted(wanted - old_members):
                diff.append({"op": "add", "kind": "rule", "row": _g2_row(cid, group_id)})
            changes = [await self._apply(s, ch) for ch in diff]
            return await self._commit(s, author, reason, changes)

    async def delete_group(self, author: str, group_id: str, reason: str = "") -> Applied:
        """Delete a group, its static members and the rules that name it."""
        async with self.db.session() as s:
            g = await s.get(CameraGroup, group_id)
            if g is None:
                raise PolicyError(f"id: no group '{group_id}'")
            diff: list[dict[str, Any]] = []
            q = select(CasbinRule).where(CasbinRule.ptype.in_(("p", "g2")), CasbinRule.v1 == f"group:{group_id}")
            for r in (await s.execute(q)).scalars():
                diff.append({"op": "remove", "kind": "rule", "row": _rule_row(r)})
            diff.append(
                {
                    "op": "remove",
                    "kind": "group",
                    "row": {"id": g.id, "name": g.name, "dynamic": g.dynamic, "filter": g.filter},
                }
            )
            changes = [await self._apply(s, ch) for ch in diff]
            return await self._commit(s, author, reason, changes)

    # -- rules -----------------------------------------------------------------------------
    async def add_rule(self, author: str, spec: RuleSpec, reason: str = "") -> Applied:
        """Add a grant/deny rule (one revision)."""
        return await self.add_rules(author, [spec], reason, skip_existing=False)

    async def add_rules(
        self, author: str, specs: list[RuleSpec], reason: str = "", *, skip_existing: bool = True
    ) -> Applied:
        """Add several rules in one transaction and one revision; identical existing rules are
        skipped (``skip_existing``) or refused. When every rule exists already, nothing is written
        and the result has revision 0."""
        if not specs:
            raise PolicyError("rules: none given")
        for spec in specs:
            spec.validate()
        async with self.db.session() as s:
            changes: list[Change] = []
            seen: set[tuple[str, ...]] = set()
            for spec in specs:
                await self._check_refs(s, spec)
                row = spec.row()
                key = tuple(row.values())
                exists = await s.execute(
                    select(CasbinRule.id).where(*(getattr(CasbinRule, k) == v for k, v in row.items()))
                )
                if key in seen or exists.first() is not None:
                    if skip_existing:
                        continue
                    raise PolicyError("rule: an identical rule exists")
                seen.add(key)
                changes.append(await self._apply(s, {"op": "add", "kind": "rule", "row": row}))
            if not changes and skip_existing:
                return Applied(0, ())
            return await self._commit(s, author, reason, changes)

    async def remove_rule(self, author: str, rule_id: int, reason: str = "") -> Applied:
        """Remove a rule by id."""
        return await self.remove_rules(author, [rule_id], reason)

    async def remove_rules(
        self, author: str, rule_ids: list[int], reason: str = "", *, missing_ok: bool = False
    ) -> Applied:
        """Remove several rules by id in one revision (revision 0 when ``missing_ok`` and none existed)."""
        async with self.db.session() as s:
            changes = []
            for rule_id in dict.fromkeys(rule_ids):
                r = await s.get(CasbinRule, rule_id)
                if r is None or r.ptype != "p":
                    if missing_ok:
                        continue
                    raise PolicyError(f"rule_id: no rule {rule_id}")
                changes.append(Change("remove", "rule", _rule_row(r), (r.id,)))
                await s.delete(r)
            await s.flush()
            if not changes and missing_ok:
                return Applied(0, ())
            return await self._commit(s, author, reason, changes)

    async def replace_rule(self, author: str, rule_id: int, spec: RuleSpec, reason: str = "") -> Applied:
        """Change a rule (its subject, target, action, effect or window) in place, in one revision."""
        spec.validate()
        async with self.db.session() as s:
            r = await s.get(CasbinRule, rule_id)
            if r is None or r.ptype != "p":
                raise PolicyError(f"rule_id: no rule {rule_id}")
            if r.v5 and r.v5 != spec.tag:
                # Incident grants and the location rule are found again by their tag (to revoke, to re-apply):
                # an edit would cut them loose. Delete such a rule, or close its incident.
                raise PolicyError(f"rule_id: rule {rule_id} belongs to '{r.v5}' and cannot be edited; delete it")
            await self._check_refs(s, spec)
            old, new = _rule_row(r), spec.row()
            if old == new:
                raise PolicyError("change: nothing would change")
            for k, v in new.items():
                setattr(r, k, v)
            await s.flush()
            changes = [Change("remove", "rule", old, (rule_id,)), Change("add", "rule", new, (rule_id,))]
            return await self._commit(s, author, reason, changes)

    async def rules_tagged(self, tag: str) -> list[tuple[int, Rule]]:
        """Rules with this tag (e.g. an incident's grants)."""
        async with self.db.session() as s:
            rows = (await s.execute(select(CasbinRule).where(CasbinRule.ptype == "p", CasbinRule.v5 == tag))).scalars()
            return [(r.id, rule_from_row(r)) for r in rows]

    async def _check_refs(self, s: AsyncSession, spec: RuleSpec) -> None:
        kind, _, name = spec.subject.partition(":")
        if kind == "dept" and await s.get(Department, name) is None:
            raise PolicyError(f"subject: no department '{name}'")
        kind, _, name = spec.target.partition(":")
        if kind == "group" and not name.startswith("@") and await s.get(CameraGroup, name) is None:
            raise PolicyError(f"target: no group '{name}'")


def _inverse(ch: dict[str, Any]) -> dict[str, Any]:
    """The diff entry that undoes ``ch``."""
    if ch["op"] == "update":
        return {**ch, "row": ch["old"], "old": ch["row"]}
    return {**ch, "op": "remove" if ch["op"] == "add" else "add"}


def _dept_row(d: Department) -> dict[str, Any]:
    return {
        "id": d.id,
        "name": d.name,
        "level": d.level.value,
        "parent_id": d.parent_id,
        "area": d.area,
        "ptz_priority": d.ptz_priority,
    }


def _membership_row(m: Membership) -> dict[str, Any]:
    return {"user_id": m.user_id, "department_id": m.department_id, "role": m.role}


def _g2_row(camera_id: str, group_id: str) -> dict[str, str]:
    return {"ptype": "g2", "v0": f"cam:{camera_id}", "v1": f"group:{group_id}", "v2": "", "v3": "", "v4": "", "v5": ""}


def epoch(t: dt.datetime | None) -> float:
    """Epoch seconds (inf for None)."""
    return t.timestamp() if t else math.inf
