"""Preview of a policy change: what it would write and who would gain or lose which cameras."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from acl.identity import Subject
from acl.models import Role, User
from acl.policy import Applied, PolicyError, PolicyStore, RuleSpec
from acl.preview import ActionEffect
from gateway.container import services
from gateway.policy import require_roles
from gateway.routes.acl_admin import GroupBody, RuleBody, _fail, policy_admin

router = APIRouter(prefix="/api/acl", tags=["admin"])
EDIT = require_roles(Role.security_admin)
MAX_USERS = 200
MAX_CHANGES = 500

Op = Literal[
    "add_rule",
    "replace_rule",
    "remove_rule",
    "set_membership",
    "remove_membership",
    "put_group",
    "delete_group",
    "delete_department",
    "rollback",
    "patch_user",
]


class PreviewBody(BaseModel):
    """A proposed change, in the same terms as the admin API call that would make it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    op: Op
    rule: RuleBody | None = Field(None, description="add_rule, replace_rule")
    rule_id: int | None = Field(None, description="replace_rule, remove_rule")
    user_id: int | None = Field(None, description="set_membership, remove_membership")
    department_id: str | None = Field(None, max_length=64, description="memberships, delete_department")
    role: str = Field("member", max_length=32, description="set_membership")
    group_id: str | None = Field(None, max_length=64, description="put_group, delete_group")
    group: GroupBody | None = Field(None, description="put_group")
    revision_id: int | None = Field(None, ge=0, description="rollback")
    system_role: Role | None = Field(None, description="patch_user: the new system role")
    active: bool | None = Field(None, description="patch_user: deactivate (false) or reactivate")


def _need(value: Any, name: str, op: str) -> Any:
    if value is None:
        raise HTTPException(422, [{"field": name, "message": f"required for {op}"}])
    return value


async def _user_roles(request: Request, body: PreviewBody) -> dict[int, str | None]:
    """patch_user: the user's system role after the change (None when deactivated)."""
    uid = _need(body.user_id, "user_id", body.op)
    async with services(request).db.session() as s:
        user = await s.get(User, uid)
    if user is None:
        raise HTTPException(422, [{"field": "user_id", "message": f"no user {uid}"}])
    active = user.active if body.active is None else body.active
    role = user.role if body.system_role is None else body.system_role
    return {uid: role.value if active else None}


def _operation(body: PreviewBody, author: str) -> Callable[[PolicyStore], Awaitable[Applied]]:
    """The PolicyStore call the real change would make."""
    op = body.op
    if op in ("add_rule", "replace_rule"):
        r: RuleBody = _need(body.rule, "rule", op)
        spec = RuleSpec(r.subject, r.target, r.action, r.effect, r.not_before, r.not_after)
        if op == "add_rule":
            return lambda p: p.add_rule(author, spec)
        rid = _need(body.rule_id, "rule_id", op)
        return lambda p: p.replace_rule(author, rid, spec)
    if op == "remove_rule":
        rid = _need(body.rule_id, "rule_id", op)
        return lambda p: p.remove_rule(author, rid)
    if op in ("set_membership", "remove_membership"):
        uid = _need(body.user_id, "user_id", op)
        dept = _need(body.department_id, "department_id", op)
        if op == "set_membership":
            return lambda p: p.set_membership(author, uid, dept, body.role)
        return lambda p: p.remove_membership(author, uid, dept)
    if op == "put_group":
        gid = _need(body.group_id, "group_id", op)
        g: GroupBody = _need(body.group, "group", op)
        return lambda p: p.put_group(author, gid, g.name, cameras=g.cameras, filter_=g.filter)
    if op == "delete_group":
        gid = _need(body.group_id, "group_id", op)
        return lambda p: p.delete_group(author, gid)
    if op == "delete_department":
        dept = _need(body.department_id, "department_id", op)
        return lambda p: p.delete_department(author, dept)
    rev = _need(body.revision_id, "revision_id", op)
    return lambda p: p.rollback(rev, author, "")


def _effect(e: ActionEffect, names: dict[int, str], depts: dict[str, str]) -> dict[str, Any]:
    users = sorted(e.users, key=lambda u: (-(u.gained + u.lost), u.user_id))
    return {
        "action": e.action,
        "users_gaining": e.users_gaining,
        "users_losing": e.users_losing,
        "cameras_gained": e.gained_bits.bit_count(),
        "cameras_lost": e.lost_bits.bit_count(),
        "departments": [
            d.as_dict(depts.get(d.department_id, d.department_id)) for _, d in sorted(e.departments.items())
        ],
        "users": [
            {
                "user_id": u.user_id,
                "username": names.get(u.user_id, str(u.user_id)),
                "gained": u.gained,
                "lost": u.lost,
                "gained_sample": list(u.gained_sample),
                "lost_sample": list(u.lost_sample),
            }
            for u in users[:MAX_USERS]
        ],
        "users_total": len(users),
    }


@router.post("/preview", dependencies=[EDIT])
async def preview(request: Request, body: PreviewBody) -> dict[str, Any]:
    """What a change would write and whose visible cameras it would widen or narrow (for
    ``view_snapshot`` and ``view_live``), computed on a scratch copy of the policy: nothing is
    stored and nothing is audited. Errors are the ones the change itself would give (422 naming the
    field). System admins see everything either way and are not counted. ``patch_user`` previews a
    user's new system role or deactivation (``PATCH /api/admin/users/{id}``), which writes no revision."""
    ld = services(request)
    acl = policy_admin(request)
    subject: Subject = request.state.subject
    try:
        if body.op == "patch_user":
            changes, effects = await acl.previews.preview(None, user_roles=await _user_roles(request, body))
        else:
            changes, effects = await acl.previews.preview(_operation(body, subject.username))
    except PolicyError as e:
        err = _fail(e)
        err.status_code = 422  # the ids are in the body here, not in the path
        raise err from None
    ids = {u.user_id for e in effects for u in e.users}
    names: dict[int, str] = {}
    if ids:
        async with ld.db.session() as s:
            rows = await s.execute(select(User.id, User.username).where(User.id.in_(ids)))
            names = {uid: name for uid, name in rows.all()}
    depts = {d.id: d.name for d in acl.decider.loaded_state().departments.values()}
    return {
        "changes": [
            {"op": c.op, "kind": c.kind, "row": c.row, **({"old": c.old} if c.old else {})}
            for c in changes[:MAX_CHANGES]
        ],
        "changes_total": len(changes),
        "effects": [_effect(e, names, depts) for e in effects],
    }
