"""Authoring the policy: every change is one transaction and one revision (with its diff).

A revision's diff is a list of ``{"op": "add"|"remove", "kind": ..., "row": {...}}`` entries over
departments, memberships, camera groups and Casbin rules. Rolling back to revision N applies the
inverse of every later diff, newest first, as a new revision: history is never rewritten.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from acl.index import ACTION_LEVEL, Rule, parse_window
from acl.models import Membership, User
from acl.policy_models import CameraGroup, CasbinRule, Department, OrgLevel, PolicyRevision
from storage.db import Database

__all__ = ["PolicyError", "PolicyState", "PolicyStore", "RuleSpec"]

SLUG = re.compile(r"^[\w.-]{1,64}$")
DYNAMIC_KEYS = ("area", "kind", "tag", "department")


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
    return {"ptype": r.ptype, "v0": r.v0, "v1": r.v1, "v2": r.v2, "v3": r.v3, "v4": r.v4, "v5": r.v5}


def rule_from_row(row: CasbinRule | dict[str, Any]) -> Rule:
    """A compiled :class:`Rule` from a ``p`` row."""
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    nbf, exp = parse_window(str(get("v4") or ""))
    return Rule(
        sub=str(get("v0")),
        obj=str(get("v1")),
        act=str(get("v2")),
        eft=str(get("v3")),
        nbf=nbf,
        exp=exp,
        tag=str(get("v5") or ""),
        rule_id=get("id") if isinstance(row, CasbinRule) else None,
    )


@dataclass
class PolicyState:
    """Everything the index is compiled from (loaded once, then patched on change)."""

    departments: dict[str, Department]
    memberships: dict[int, list[tuple[str, str]]]  # user -> [(dept, role)]
    user_roles: dict[int, str]
    groups: dict[str, CameraGroup]
    static_members: dict[str, set[str]]
    rules: list[Rule]


class PolicyStore:
    """Reads and changes the stored policy."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- loading ---------------------------------------------------------------------------
    async def load(self) -> PolicyState:
        """The whole policy."""
        async with self.db.session() as s:
            depts = {d.id: d for d in (await s.execute(select(Department))).scalars()}
            members: dict[int, list[tuple[str, str]]] = {}
            for m in (await s.execute(select(Membership))).scalars():
                members.setdefault(m.user_id, []).append((m.department_id, m.role))
            roles = {u.id: u.role.value for u in (await s.execute(select(User).where(User.active.is_(True)))).scalars()}
            groups = {g.id: g for g in (await s.execute(select(CameraGroup))).scalars()}
            static: dict[str, set[str]] = {gid: set() for gid, g in groups.items() if not g.dynamic}
            rules: list[Rule] = []
            q = select(
                CasbinRule.ptype,
                CasbinRule.v0,
                CasbinRule.v1,
                CasbinRule.v2,
                CasbinRule.v3,
                CasbinRule.v4,
                CasbinRule.v5,
                CasbinRule.id,
            )
            for ptype, v0, v1, v2, v3, v4, v5, rid in (await s.execute(q)).all():
                if ptype == "p":
                    nbf, exp = parse_window(v4)
                    rules.append(Rule(v0, v1, v2, v3, nbf, exp, v5, rid))
                elif ptype == "g2":
                    static.setdefault(v1.removeprefix("group:"), set()).add(v0.removeprefix("cam:"))
        return PolicyState(depts, members, roles, groups, static, rules)

    # -- revisions -------------------------------------------------------------------------
    async def _commit(self, s: AsyncSession, author: str, reason: str, diff: list[dict[str, Any]]) -> int:
        if not diff:
            raise PolicyError("change: nothing would change")
        rev = PolicyRevision(author=author, reason=reason[:2000], diff={"changes": diff})
        s.add(rev)
        await s.flush()
        return rev.id

    async def revisions(self, limit: int = 100, offset: int = 0) -> list[PolicyRevision]:
        """Revisions, newest first."""
        async with self.db.session() as s:
            q = select(PolicyRevision).order_by(PolicyRevision.id.desc()).offset(offset).limit(limit)
            return list((await s.execute(q)).scalars())

    async def rollback(self, to_revision: int, author: str, reason: str) -> int:
        """Undo every change after ``to_revision`` (as one new revision)."""
        async with self.db.session() as s:
            if to_revision != 0 and await s.get(PolicyRevision, to_revision) is None:
                raise PolicyError(f"revision: {to_revision} does not exist")
            later = list(
                (
                    await s.execute(
                        select(PolicyRevision).where(PolicyRevision.id > to_revision).order_by(PolicyRevision.id.desc())
                    )
                ).scalars()
            )
            if not later:
                raise PolicyError(f"revision: {to_revision} is already the newest")
            inverse: list[dict[str, Any]] = []
            for rev in later:
                for ch in reversed(rev.diff.get("changes", [])):
                    inv = {**ch, "op": "remove" if ch["op"] == "add" else "add"}
                    await self._apply(s, inv)
                    inverse.append(inv)
            return await self._commit(s, author, reason or f"rollback to revision {to_revision}", inverse)

    async def _apply(self, s: AsyncSession, ch: dict[str, Any]) -> None:
        kind, row, add = ch["kind"], ch["row"], ch["op"] == "add"
        if kind == "rule":
            if add:
                s.add(CasbinRule(**row))
            else:
                await s.execute(delete(CasbinRule).where(*(getattr(CasbinRule, k) == v for k, v in row.items())))
        elif kind == "department":
            if add:
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
        await s.flush()

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
    ) -> int:
        """Create or change a department."""
        if not SLUG.match(dept_id):
            raise PolicyError("id: 1-64 letters, digits, '.', '_' or '-'")
        if not name.strip() or len(name) > 128:
            raise PolicyError("name: 1-128 characters")
        try:
            lvl = OrgLevel(level)
        except ValueError:
            raise PolicyError(f"level: must be one of {', '.join(x.value for x in OrgLevel)}") from None
        async with self.db.session() as s:
            if parent_id is not None:
                if parent_id == dept_id or await s.get(Department, parent_id) is None:
                    raise PolicyError("parent_id: no such department")
            new = {"id": dept_id, "name": name.strip(), "level": lvl.value, "parent_id": parent_id, "area": area}
            diff: list[dict[str, Any]] = []
            old = await s.get(Department, dept_id)
            if old is not None:
                before = {
                    "id": old.id,
                    "name": old.name,
                    "level": old.level.value,
                    "parent_id": old.parent_id,
                    "area": old.area,
                }
                if before == new:
                    raise PolicyError("change: nothing would change")
                diff.append({"op": "remove", "kind": "department", "row": before})
                await s.delete(old)
                await s.flush()
            diff.append({"op": "add", "kind": "department", "row": new})
            await self._apply(s, diff[-1])
            return await self._commit(s, author, reason, diff)

    async def delete_department(self, author: str, dept_id: str, reason: str = "") -> int:
        """Delete a department, its memberships and its rules."""
        async with self.db.session() as s:
            d = await s.get(Department, dept_id)
            if d is None:
                raise PolicyError(f"id: no department '{dept_id}'")
            diff: list[dict[str, Any]] = []
            for r in (await s.execute(select(CasbinRule).where(CasbinRule.v0 == f"dept:{dept_id}"))).scalars():
                diff.append({"op": "remove", "kind": "rule", "row": _rule_row(r)})
            for m in (await s.execute(select(Membership).where(Membership.department_id == dept_id))).scalars():
                diff.append(
                    {
                        "op": "remove",
                        "kind": "membership",
                        "row": {"user_id": m.user_id, "department_id": m.department_id, "role": m.role},
                    }
                )
            diff.append(
                {
                    "op": "remove",
                    "kind": "department",
                    "row": {
                        "id": d.id,
                        "name": d.name,
                        "level": d.level.value,
                        "parent_id": d.parent_id,
                        "area": d.area,
                    },
                }
            )
            for ch in diff:
                await self._apply(s, ch)
            return await self._commit(s, author, reason, diff)

    # -- memberships -----------------------------------------------------------------------
    async def set_membership(
        self, author: str, user_id: int, dept_id: str, role: str = "member", reason: str = ""
    ) -> int:
        """Put a user in a department (or change their role there)."""
        if not SLUG.match(role):
            raise PolicyError("role: 1-64 letters, digits, '.', '_' or '-'")
        async with self.db.session() as s:
            if await s.get(User, user_id) is None:
                raise PolicyError(f"user_id: no user {user_id}")
            if await s.get(Department, dept_id) is None:
                raise PolicyError(f"department_id: no department '{dept_id}'")
            diff: list[dict[str, Any]] = []
            old = await s.get(Membership, (user_id, dept_id))
            if old is not None:
                if old.role == role:
                    raise PolicyError("change: nothing would change")
                diff.append(
                    {
                        "op": "remove",
                        "kind": "membership",
                        "row": {"user_id": user_id, "department_id": dept_id, "role": old.role},
                    }
                )
                await self._apply(s, diff[-1])
            diff.append(
                {"op": "add", "kind": "membership", "row": {"user_id": user_id, "department_id": dept_id, "role": role}}
            )
            await self._apply(s, diff[-1])
            return await self._commit(s, author, reason, diff)

    async def remove_membership(self, author: str, user_id: int, dept_id: str, reason: str = "") -> int:
        """Take a user out of a department."""
        async with self.db.session() as s:
            old = await s.get(Membership, (user_id, dept_id))
            if old is None:
                raise PolicyError("membership: the user is not in that department")
            ch = {
                "op": "remove",
                "kind": "membership",
                "row": {"user_id": user_id, "department_id": dept_id, "role": old.role},
            }
            await self._apply(s, ch)
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
    ) -> int:
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
            if old is not None:
                diff.append(
                    {
                        "op": "remove",
                        "kind": "group",
                        "row": {"id": old.id, "name": old.name, "dynamic": old.dynamic, "filter": old.filter},
                    }
                )
                for r in (
                    await s.execute(
                        select(CasbinRule).where(CasbinRule.ptype == "g2", CasbinRule.v1 == f"group:{group_id}")
                    )
                ).scalars():
                    diff.append({"op": "remove", "kind": "rule", "row": _rule_row(r)})
            diff.append(
                {
                    "op": "add",
                    "kind": "group",
                    "row": {
                        "id": group_id,
                        "name": name.strip(),
                        "dynamic": filter_ is not None,
                        "filter": filter_ or {},
                    },
                }
            )
            for cid in sorted(set(cameras or [])):
                diff.append(
                    {
                        "op": "add",
                        "kind": "rule",
                        "row": {
                            "ptype": "g2",
                            "v0": f"cam:{cid}",
                            "v1": f"group:{group_id}",
                            "v2": "",
                            "v3": "",
                            "v4": "",
                            "v5": "",
                        },
                    }
                )
            for ch in diff:
                await self._apply(s, ch)
            return await self._commit(s, author, reason, diff)

    async def delete_group(self, author: str, group_id: str, reason: str = "") -> int:
        """Delete a group, its static members and the rules that name it."""
        async with self.db.session() as s:
            g = await s.get(CameraGroup, group_id)
            if g is None:
                raise PolicyError(f"id: no group '{group_id}'")
            diff: list[dict[str, Any]] = []
            q = select(CasbinRule).where(
                ((CasbinRule.ptype == "g2") & (CasbinRule.v1 == f"group:{group_id}"))
                | ((CasbinRule.ptype == "p") & (CasbinRule.v1 == f"group:{group_id}"))
            )
            for r in (await s.execute(q)).scalars():
                diff.append({"op": "remove", "kind": "rule", "row": _rule_row(r)})
            diff.append(
                {
                    "op": "remove",
                    "kind": "group",
                    "row": {"id": g.id, "name": g.name, "dynamic": g.dynamic, "filter": g.filter},
                }
            )
            for ch in diff:
                await self._apply(s, ch)
            return await self._commit(s, author, reason, diff)

    # -- rules -----------------------------------------------------------------------------
    async def add_rule(self, author: str, spec: RuleSpec, reason: str = "") -> tuple[int, int]:
        """Add a grant/deny rule; returns (rule id, revision)."""
        spec.validate()
        row = {
            "ptype": "p",
            "v0": spec.subject,
            "v1": spec.target,
            "v2": spec.action,
            "v3": spec.effect,
            "v4": spec.window(),
            "v5": spec.tag,
        }
        async with self.db.session() as s:
            await self._check_refs(s, spec)
            exists = await s.execute(
                select(CasbinRule.id).where(*(getattr(CasbinRule, k) == v for k, v in row.items()))
            )
            if exists.first() is not None:
                raise PolicyError("rule: an identical rule exists")
            rule = CasbinRule(**row)
            s.add(rule)
            await s.flush()
            rev = await self._commit(s, author, reason, [{"op": "add", "kind": "rule", "row": row}])
            return rule.id, rev

    async def remove_rule(self, author: str, rule_id: int, reason: str = "") -> int:
        """Remove a rule by id."""
        async with self.db.session() as s:
            r = await s.get(CasbinRule, rule_id)
            if r is None or r.ptype != "p":
                raise PolicyError(f"rule_id: no rule {rule_id}")
            ch = {"op": "remove", "kind": "rule", "row": _rule_row(r)}
            await s.delete(r)
            await s.flush()
            return await self._commit(s, author, reason, [ch])

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


def epoch(t: dt.datetime | None) -> float:
    """Epoch seconds (inf for None)."""
    return t.timestamp() if t else math.inf
