"""Security administration: departments, users, memberships, camera groups, rules, explain, history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from acl.admin import PolicyAdmin
from acl.decider import rule_dict
from acl.identity import Subject
from acl.index import ACTION_LEVEL
from acl.models import Membership, Role, User
from acl.policy import Applied, PolicyError, RuleSpec
from acl.users import AdminsOnly, NoSuchUser, UserChange, UserError, change_user, upsert_user
from gateway.container import services
from gateway.policy import require_roles, require_user_admin
from gateway.policy.rules import may_manage_user

router = APIRouter(prefix="/api/admin", tags=["admin"])
EDIT = require_roles(Role.security_admin)
READ = require_roles(Role.security_admin, Role.auditor)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    reason: str = Field("", max_length=2000, description="Why: kept in the policy history.")


class DepartmentBody(_Body):
    """A department or organisational unit."""

    name: str = Field(min_length=1, max_length=128)
    level: str = Field("department", description="district, subdistrict, station or department")
    parent_id: str | None = Field(None, max_length=64)
    area: str | None = Field(None, max_length=64)
    ptz_priority: int | None = Field(
        None, ge=0, le=1000, description="PTZ priority (higher wins a camera); absent: the default for the unit"
    )


class UserBody(_Body):
    """A new user."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=1024)
    role: Role = Role.operator
    display_name: str = Field("", max_length=128)


class UserPatch(_Body):
    """Changes to a user."""

    role: Role | None = None
    active: bool | None = None
    password: str | None = Field(None, min_length=8, max_length=1024)
    display_name: str | None = Field(None, max_length=128)


class MembershipBody(_Body):
    """A user's role inside a department."""

    role: str = Field("member", min_length=1, max_length=32)


class GroupBody(_Body):
    """A static (cameras) or dynamic (filter) camera group."""

    name: str = Field(min_length=1, max_length=128)
    cameras: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(None, max_length=100_000)
    filter: dict[str, list[Annotated[str, Field(max_length=64)]]] | None = None


class RuleBody(_Body):
    """A grant (effect allow) or deny rule."""

    subject: str = Field(max_length=80, description="dept:<id>, role:<name> or *")
    target: str = Field(max_length=80, description="cam:<id> or group:<id>")
    action: str = Field(description="view_snapshot, view_live, ptz, ptz_preset or manage")
    effect: str = Field("allow", description="allow or deny")
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None


class IncidentGrantBody(_Body):
    """Temporary access for an incident."""

    incident_id: str = Field(min_length=1, max_length=64)
    departments: list[str] = Field(min_length=1, max_length=100)
    cameras: list[str] = Field(min_length=1, max_length=500)
    minutes: int = Field(120, ge=1, le=7 * 24 * 60)
    action: str = "view_live"


class RollbackBody(_Body):
    """Return to an earlier revision."""


def _fail(e: Exception) -> HTTPException:
    msg = str(e)
    field, _, text = msg.partition(": ")
    code = status.HTTP_404_NOT_FOUND if text.startswith("no ") and field in ("id", "rule_id") else 422
    return HTTPException(code, [{"field": field, "message": text or msg}])


async def _policy_change(
    request: Request, what: str, op: Callable[[str], Awaitable[Applied]], reason: str = ""
) -> dict[str, int]:
    """Run one stored policy change (one revision) through the ACL: patched, audited, enforced."""
    author = _author(request)
    try:
        applied = await policy_admin(request).changes.change(author, what, lambda: op(author), reason)
    except PolicyError as e:
        raise _fail(e) from None
    return {"revision": applied.revision}


def policy_admin(request: Request) -> PolicyAdmin:
    """The ACL as the admin routes use it."""
    admin: PolicyAdmin = services(request).acl
    return admin


def _author(request: Request) -> str:
    subject: Subject = request.state.subject
    return subject.username


# -- departments ------------------------------------------------------------------------------
@router.get("/departments", dependencies=[READ])
async def list_departments(request: Request) -> list[dict[str, Any]]:
    """Every department, with its member count."""
    acl = policy_admin(request)
    st = acl.decider.loaded_state()
    counts: dict[str, int] = {}
    for ms in st.memberships.values():
        for dept, _ in ms:
            counts[dept] = counts.get(dept, 0) + 1
    return [
        {
            "id": d.id,
            "name": d.name,
            "level": d.level.value,
            "parent_id": d.parent_id,
            "area": d.area,
            "ptz_priority": d.ptz_priority,
            "members": counts.get(d.id, 0),
        }
        for d in sorted(st.departments.values(), key=lambda d: d.id)
    ]


@router.put("/departments/{dept_id}", dependencies=[EDIT])
async def put_department(request: Request, dept_id: str, body: DepartmentBody) -> dict[str, int]:
    """Create or change a department."""
    policy = policy_admin(request).policy
    return await _policy_change(
        request,
        f"department {dept_id} saved",
        lambda a: policy.put_department(
            a, dept_id, body.name, body.level, body.parent_id, body.area, body.reason, ptz_priority=body.ptz_priority
        ),
        body.reason,
    )


@router.delete("/departments/{dept_id}", dependencies=[EDIT])
async def delete_department(request: Request, dept_id: str, reason: str = "") -> dict[str, int]:
    """Delete a department with its memberships and rules."""
    policy = policy_admin(request).policy
    return await _policy_change(
        request, f"department {dept_id} deleted", lambda a: policy.delete_department(a, dept_id, reason), reason
    )


# -- users and memberships --------------------------------------------------------------------
@router.get("/users", dependencies=[READ])
async def list_users(request: Request) -> list[dict[str, Any]]:
    """Users with their departments."""
    ld = services(request)
    async with ld.db.session() as s:
        users = list((await s.execute(select(User).order_by(User.id))).scalars())
        ms = list((await s.execute(select(Membership))).scalars())
    by_user: dict[int, list[dict[str, str]]] = {}
    for m in ms:
        by_user.setdefault(m.user_id, []).append({"department_id": m.department_id, "role": m.role})
    return [
        {
            "id": u.id,
            "username": u.username,
            "display_name": u.display_name,
            "role": u.role.value,
            "active": u.active,
            "memberships": by_user.get(u.id, []),
        }
        for u in users
    ]


@router.post("/users", status_code=201, dependencies=[require_user_admin(Role.security_admin, body=UserBody)])
async def create_user(request: Request, body: UserBody) -> dict[str, Any]:
    """Create a user (only admins may create admins)."""
    ld = services(request)
    subject: Subject = request.state.subject
    try:
        async with ld.db.session() as s:
            user, _ = await upsert_user(
                s, body.username, body.password, body.role, display_name=body.display_name, passwords=ld.passwords
            )
    except UserError as e:
        raise _fail(e) from None
    await ld.audit.record("user_created", subject=subject, detail=f"user {user.id} {body.username} ({body.role.value})")
    await policy_admin(request).changes.user_changed(user.id, user.role, True)
    return {"id": user.id, "username": user.username, "role": user.role.value}


@router.patch("/users/{user_id}", dependencies=[require_user_admin(Role.security_admin, body=UserPatch)])
async def patch_user(request: Request, user_id: int, body: UserPatch) -> dict[str, Any]:
    """Change a user's role, password or active flag (only admins may make or change admins);
    deactivating ends their logins and streams."""
    ld = services(request)
    subject: Subject = request.state.subject
    change = UserChange(body.role, body.active, body.password, body.display_name)
    try:
        done = await change_user(
            ld.db,
            user_id,
            change,
            may_manage=lambda role: may_manage_user(subject, role),
            passwords=ld.passwords,
            tokens=ld.tokens,
        )
    except AdminsOnly as e:
        raise HTTPException(403, [{"field": e.field, "message": str(e)}] if e.field else str(e)) from None
    except NoSuchUser as e:
        raise HTTPException(404, str(e)) from None
    ld.auth.forget_user(user_id)  # the next request reads the user again (role, active, revoked logins)
    if done.why:
        await ld.user_logins_ended(user_id, done.ended_tokens, done.why)
    changed = sorted(k for k, v in body.model_dump(exclude={"reason"}).items() if v is not None)
    await ld.audit.record(
        "user_changed",
        subject=subject,
        detail=f"user {user_id} {done.username}: {', '.join(changed) or 'nothing'}"
        + (f" ({body.reason})" if body.reason else ""),
    )
    await policy_admin(request).changes.user_changed(user_id, done.role, done.active)
    return {"id": user_id, "ok": True}


@router.put("/users/{user_id}/memberships/{dept_id}", dependencies=[EDIT])
async def put_membership(request: Request, user_id: int, dept_id: str, body: MembershipBody) -> dict[str, int]:
    """Put a user in a department with a role."""
    policy = policy_admin(request).policy
    return await _policy_change(
        request,
        f"membership of user {user_id} in {dept_id} set to {body.role}",
        lambda a: policy.set_membership(a, user_id, dept_id, body.role, body.reason),
        body.reason,
    )


@router.delete("/users/{user_id}/memberships/{dept_id}", dependencies=[EDIT])
async def delete_membership(request: Request, user_id: int, dept_id: str, reason: str = "") -> dict[str, int]:
    """Take a user out of a department (their streams that depended on it end)."""
    policy = policy_admin(request).policy
    return await _policy_change(
        request,
        f"membership of user {user_id} in {dept_id} removed",
        lambda a: policy.remove_membership(a, user_id, dept_id, reason),
        reason,
    )


# -- pickers ----------------------------------------------------------------------------------
@router.get("/camera-attributes", dependencies=[READ])
async def camera_attributes(request: Request) -> dict[str, Any]:
    """What the policy editors choose from instead of typing ids: every sub-district, station (with
    its sub-district), tag and owning department the inventory has, and every camera as
    ``[id, name]`` (thousands: the console searches them in the browser)."""
    cams, _ = await services(request).store.search(limit=1 << 30)
    stations = sorted({(c.station, c.area) for c in cams if c.station})
    return {
        "areas": sorted({c.area for c in cams if c.area}),
        "stations": [{"value": s, "area": a} for s, a in stations],
        "tags": sorted({t for c in cams for t in c.tags or ()}),
        "departments": sorted({c.department for c in cams if c.department}),
        "cameras": [[c.id, c.name] for c in cams],
    }


# -- groups -----------------------------------------------------------------------------------
@router.get("/groups", dependencies=[READ])
async def list_groups(request: Request) -> list[dict[str, Any]]:
    """Camera groups with their current size."""
    acl = policy_admin(request)
    st = acl.decider.loaded_state()
    out = []
    for g in sorted(st.groups.values(), key=lambda g: g.id):
        size = bin(acl.decider.index.target_bits(f"group:{g.id}")).count("1")
        out.append({"id": g.id, "name": g.name, "dynamic": g.dynamic, "filter": g.filter, "cameras": size})
    return out


@router.get("/groups/{group_id}/cameras", dependencies=[READ])
async def group_cameras(request: Request, group_id: str) -> list[str]:
    """The cameras a group holds now (dynamic groups follow the inventory)."""
    acl = policy_admin(request)
    if group_id not in acl.decider.loaded_state().groups:
        raise HTTPException(404, f"no group '{group_id}'")
    bits = acl.decider.index.target_bits(f"group:{group_id}")
    return [c.id for i, c in enumerate(acl.decider.index.cameras) if bits >> i & 1]


@router.put("/groups/{group_id}", dependencies=[EDIT])
async def put_group(request: Request, group_id: str, body: GroupBody) -> dict[str, int]:
    """Create or replace a group."""
    policy = policy_admin(request).policy
    return await _policy_change(
        request,
        f"group {group_id} saved",
        lambda a: policy.put_group(
            a, group_id, body.name, cameras=body.cameras, filter_=body.filter, reason=body.reason
        ),
        body.reason,
    )


@router.delete("/groups/{group_id}", dependencies=[EDIT])
async def delete_group(request: Request, group_id: str, reason: str = "") -> dict[str, int]:
    """Delete a group and the rules naming it."""
    policy = policy_admin(request).policy
    return await _policy_change(
        request, f"group {group_id} deleted", lambda a: policy.delete_group(a, group_id, reason), reason
    )


# -- rules ------------------------------------------------------------------------------------
@router.get("/rules", dependencies=[READ])
async def list_rules(
    request: Request,
    subject: Annotated[str | None, Query(max_length=80)] = None,
    target: Annotated[str | None, Query(max_length=80)] = None,
) -> list[dict[str, Any]]:
    """Grant and deny rules (incident grants included, tagged)."""
    rules = policy_admin(request).decider.loaded_state().rules
    return [
        rule_dict(r)
        for r in sorted(rules, key=lambda r: r.rule_id or 0)
        if (subject is None or r.sub == subject) and (target is None or r.obj == target)
    ]


@router.post("/rules", status_code=201, dependencies=[EDIT])
async def add_rule(request: Request, body: RuleBody) -> dict[str, int]:
    """Add a grant or a deny rule."""
    acl = policy_admin(request)
    spec = RuleSpec(body.subject, body.target, body.action, body.effect, body.not_before, body.not_after)
    try:
        rule_id, rev = await acl.changes.add_rule(_author(request), spec, body.reason)
    except PolicyError as e:
        raise _fail(e) from None
    return {"id": rule_id, "revision": rev}


@router.put("/rules/{rule_id}", dependencies=[EDIT])
async def replace_rule(request: Request, rule_id: int, body: RuleBody) -> dict[str, int]:
    """Change a rule (subject, target, action, effect or window); it keeps its id."""
    acl = policy_admin(request)
    spec = RuleSpec(body.subject, body.target, body.action, body.effect, body.not_before, body.not_after)
    author = _author(request)
    try:
        applied = await acl.changes.change(
            author, f"change rule {rule_id}", lambda: acl.policy.replace_rule(author, rule_id, spec, body.reason)
        )
    except PolicyError as e:
        raise _fail(e) from None
    return {"id": applied.rule_ids[0], "revision": applied.revision}


@router.delete("/rules/{rule_id}", dependencies=[EDIT])
async def delete_rule(request: Request, rule_id: int, reason: str = "") -> dict[str, int]:
    """Remove a rule; streams that depended on it end within a second."""
    acl = policy_admin(request)
    try:
        rev = await acl.changes.remove_rule(_author(request), rule_id, reason)
    except PolicyError as e:
        raise _fail(e) from None
    return {"revision": rev}


@router.post("/incident-grants", status_code=201, dependencies=[EDIT])
async def add_incident_grants(request: Request, body: IncidentGrantBody) -> dict[str, Any]:
    """Grant departments access to cameras for an incident, expiring by itself."""
    acl = policy_admin(request)
    if body.action not in ACTION_LEVEL:
        raise HTTPException(422, [{"field": "action", "message": f"must be one of {', '.join(ACTION_LEVEL)}"}])
    until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=body.minutes)
    try:
        ids = await acl.changes.grant_incident(
            _author(request), body.incident_id, body.departments, body.cameras, until, body.action
        )
    except PolicyError as e:
        raise _fail(e) from None
    return {"rules": ids, "expires": until.isoformat()}


@router.delete("/incident-grants/{incident_id}", dependencies=[EDIT])
async def revoke_incident_grants(request: Request, incident_id: str) -> dict[str, int]:
    """End an incident's grants now."""
    n = await policy_admin(request).changes.revoke_incident(_author(request), incident_id)
    if n == 0:
        raise HTTPException(404, f"no grants for incident '{incident_id}'")
    return {"revoked": n}


# -- explain and history ----------------------------------------------------------------------
def _action(action: str) -> str:
    if action not in ACTION_LEVEL:
        raise HTTPException(422, [{"field": "action", "message": f"must be one of {', '.join(ACTION_LEVEL)}"}])
    return action


@router.get("/explain/camera/{camera_id}", dependencies=[READ])
async def who_can_view(
    request: Request, camera_id: str, action: Annotated[str, Query(max_length=20)] = "view_live"
) -> dict[str, Any]:
    """Who can ``action`` this camera now and by which rules; and who a deny rule blocks."""
    ld = services(request)
    acl = policy_admin(request)
    _action(action)
    if camera_id not in acl.decider.index.all():
        raise HTTPException(404, f"no camera '{camera_id}'")
    async with ld.db.session() as s:
        q = select(User.id, User.username, User.role).where(User.active.is_(True)).order_by(User.id)
        users = [(uid, name, role.value) for uid, name, role in (await s.execute(q)).all()]
    allowed, blocked = acl.decider.who_can(camera_id, action, users)
    return {"camera_id": camera_id, "action": action, "users": allowed, "blocked": blocked}


@router.get("/explain/user/{user_id}", dependencies=[READ])
async def what_can_user_view(
    request: Request,
    user_id: int,
    action: Annotated[str, Query(max_length=20)] = "view_live",
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> dict[str, Any]:
    """What a user can ``action`` now, and which rules grant each camera (first ``limit`` cameras)."""
    ld = services(request)
    acl = policy_admin(request)
    _action(action)
    async with ld.db.session() as s:
        u = await s.get(User, user_id)
    if u is None:
        raise HTTPException(404, f"no user {user_id}")
    subject = acl.decider.subject_for(u.id, u.username, u.role.value)
    out: dict[str, Any] = {
        "user_id": user_id,
        "username": u.username,
        "role": u.role.value,
        "active": u.active,
        "departments": sorted(subject.departments),
    }
    if not u.active:
        return {**out, "total": 0, "cameras": [], "because": "the account is deactivated"}
    visible = acl.decider.visible_cameras(subject, action)
    cams: list[dict[str, Any]] = []
    for cid in visible:
        if len(cams) >= limit:
            break
        rules = acl.decider.explain(subject, action, cid)["rules"]
        cams.append({"camera_id": cid, "rules": [r for r in rules if r["effect"] == "allow"]})
    because = "system role admin" if subject.is_admin else None
    return {**out, "total": len(visible), "because": because, "cameras": cams}


@router.get("/revisions", dependencies=[READ])
async def revisions(
    request: Request,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    """Policy history, newest first, with diffs."""
    revs = await policy_admin(request).policy.revisions(limit, offset)
    return [
        {
            "id": r.id,
            "author": r.author,
            "created_at": r.created_at.isoformat(),
            "reason": r.reason,
            "changes": r.diff.get("changes", []),
        }
        for r in revs
    ]


@router.post("/revisions/{revision_id}/rollback", dependencies=[EDIT])
async def rollback(request: Request, revision_id: int, body: RollbackBody) -> dict[str, int]:
    """Return the policy to how it was right after ``revision_id`` (recorded as a new revision)."""
    policy = policy_admin(request).policy
    return await _policy_change(
        request,
        f"rollback to revision {revision_id}",
        lambda a: policy.rollback(revision_id, a, body.reason),
        body.reason,
    )
