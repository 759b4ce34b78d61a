"""Route guards: the FastAPI dependencies that decide, per route, who may call it.

Routers attach exactly one of these to each route (see :mod:`gateway.policy` for the list); each
decides with the rules of :mod:`gateway.policy.rules` and :mod:`gateway.policy.incidents`, and
declares the route's credential :class:`~acl.credentials.Scope` (``api`` unless said otherwise):
which kinds of credential it accepts is the credential table's answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Depends, HTTPException, Request, status
from pydantic import BaseModel, TypeAdapter, ValidationError

from acl.credentials import CredentialEnded, Scope
from acl.identity import Subject
from acl.models import Role, User
from gateway.container import services
from gateway.policy.incidents import IncidentRules
from gateway.policy.rules import Refused, has_role, may_end_session, may_grant_role, may_manage_user, owner_scope

__all__ = [
    "POLICY_ATTR",
    "SCOPE_ATTR",
    "authenticated",
    "current_subject",
    "hmac_source",
    "incident_rules",
    "public",
    "require_camera",
    "require_case_intake",
    "require_incident",
    "require_owner_or_admin",
    "require_roles",
    "require_session",
    "require_user_admin",
    "user_may_be_managed",
]

log = logging.getLogger(__name__)
_Q = TypeVar("_Q")
POLICY_ATTR = "__liandong_policy__"
SCOPE_ATTR = "__liandong_scope__"


def _mark(fn: Callable[..., Any], description: str, scope: Scope | None = None) -> Callable[..., Any]:
    setattr(fn, POLICY_ATTR, description)
    setattr(fn, SCOPE_ATTR, scope)
    return fn


async def authenticate(request: Request, scope: Scope) -> Subject:
    """The authenticated subject of the request for ``scope``, or 401 (410 for an ended
    credential), audited (see :mod:`gateway.auth` and :mod:`acl.credentials`)."""
    try:
        subject = await services(request).auth.authenticate(request, scope)
    except CredentialEnded as e:
        raise HTTPException(status.HTTP_410_GONE, str(e)) from None
    if subject is None:
        await services(request).audit_unauthenticated(request)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "authentication required" + _problem(request),
            headers={"WWW-Authenticate": "Bearer"},
        )
    return subject


def _problem(request: Request) -> str:
    problem = getattr(request.state, "credential_problem", None)
    return f": {problem}" if problem else ""


async def current_subject(request: Request) -> Subject:
    """The authenticated subject of an ``api`` route, or 401."""
    return await authenticate(request, Scope.api)


def _subject_in(scope: Scope) -> Callable[[Request], Awaitable[Subject]]:
    if scope is Scope.api:
        return current_subject

    async def _scoped(request: Request) -> Subject:
        return await authenticate(request, scope)

    return _scoped


def public(scope: Scope | None = None) -> Any:
    """No credentials needed (``Scope.login`` for the routes that take a password)."""

    async def _public() -> None:
        return None

    return Depends(_mark(_public, "public", scope))


def authenticated() -> Any:
    """Any authenticated user."""

    async def _auth(subject: Subject = Depends(current_subject)) -> Subject:
        return subject

    return Depends(_mark(_auth, "authenticated", Scope.api))


def require_roles(*roles: Role) -> Any:
    """A user whose system role is one of ``roles`` (admin always passes)."""
    allowed = frozenset(roles) | {Role.admin}

    async def _roles(request: Request, subject: Subject = Depends(current_subject)) -> Subject:
        await _check_roles(request, subject, allowed)
        return subject

    return Depends(_mark(_roles, f"roles:{','.join(sorted(allowed))}", Scope.api))


async def _check_roles(request: Request, subject: Subject, allowed: frozenset[Role]) -> None:
    if not has_role(subject, allowed):
        await services(request).audit_denied(request, subject, f"role:{'|'.join(sorted(allowed))}", None)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "your role may not do this")


def require_user_admin(*roles: Role, body: type[BaseModel]) -> Any:
    """Creating or changing a user: a system role of ``roles`` (admin always passes), and only an
    admin may make an admin (the ``role`` of the request's ``body`` model) or change one (the
    ``user_id`` path parameter, when the route has one); see
    :func:`~gateway.policy.rules.may_grant_role` and :func:`~gateway.policy.rules.may_manage_user`.

    The body is read with the route's own model, so the rule sees the role the route will apply; a
    body the model refuses passes here for the route's 422, a user id that does not exist for its 404."""
    allowed = frozenset(roles) | {Role.admin}

    async def _user_admin(request: Request, subject: Subject = Depends(current_subject)) -> Subject:
        await _check_roles(request, subject, allowed)
        changing = "user_id" in request.path_params
        if not may_grant_role(subject, getattr(await _valid_body(request, body), "role", None)):
            verb = "make" if changing else "create"
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, [{"field": "role", "message": f"only admins may {verb} admins"}]
            )
        if changing:
            await user_may_be_managed(request, subject, request.path_params["user_id"])
        return subject

    return Depends(_mark(_user_admin, f"user-admin:{','.join(sorted(allowed))}", Scope.api))


async def user_may_be_managed(request: Request, subject: Subject, user_id: Any, current: Role | None = None) -> None:
    """403 unless ``subject`` may change user ``user_id`` (only admins change admins); ``current``:
    the user's role as the caller's transaction reads it (else it is read here)."""
    if current is None:
        uid = _query(str(user_id), int)
        if uid is None:
            return  # not a user id: the route's own validation answers
        async with services(request).db.session() as s:
            user = await s.get(User, uid)
        if user is None:
            return
        current = user.role
    if not may_manage_user(subject, current):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only admins may change admins")


async def _valid_body(request: Request, model: type[BaseModel]) -> BaseModel | None:
    """The request's JSON body as the route's ``model`` reads it, or None if it does not (the
    route's own validation then answers 422 before its handler runs)."""
    try:
        return model.model_validate(await request.json())  # as FastAPI does: decoded, then validated
    except (ValueError, ValidationError):  # not JSON (UnicodeDecodeError, JSONDecodeError), or refused
        return None


def require_owner_or_admin(
    *, user_param: str | None = None, all_param: str | None = None, admins_see_all: bool = False, rows: str = "rows"
) -> Any:
    """Rows that belong to users (sessions, tokens): admins may read or end anyone's, others only
    their own (:func:`~gateway.policy.rules.owner_scope`). The query parameter ``user_param`` names
    a user, ``all_param`` (a boolean) asks for everyone's; asking for another user's answers 403.
    Whose rows the route may touch is left in ``request.state.owner_scope`` (a user id, or None
    for every user's)."""

    async def _owner(request: Request, subject: Subject = Depends(current_subject)) -> Subject:
        q = request.query_params
        everyone = bool(_query(q.get(all_param) if all_param else None, bool))
        user_id = _query(q.get(user_param) if user_param else None, int)
        try:
            request.state.owner_scope = owner_scope(
                subject, user_id, everyone=everyone, admins_see_all=admins_see_all, rows=rows
            )
        except Refused as e:
            param = all_param if e.field == "everyone" else user_param
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"{param}: {e.message}") from None
        return subject

    return Depends(_mark(_owner, "owner-or-admin", Scope.api))


def _query(value: str | None, type_: type[_Q]) -> _Q | None:
    """A query parameter read as the route will read it (None if absent or invalid: the route's
    own validation then answers 422)."""
    if value is None:
        return None
    try:
        return TypeAdapter(type_).validate_python(value)
    except ValidationError:
        return None


def require_camera(action: str, scope: Scope = Scope.api) -> Any:
    """``acl.authorize(subject, action, camera_id)`` for the route's ``camera_id`` path parameter.

    A denial answers 403 and is audited. The ACL denies unknown cameras too, so a user cannot
    probe which camera ids exist; admins, who may see everything, get 404 from the handler.
    """

    async def _camera(request: Request, camera_id: str, subject: Subject = Depends(_subject_in(scope))) -> Subject:
        ld = services(request)
        if not ld.authorizer.authorize(subject, action, camera_id):
            await ld.audit_denied(request, subject, action, camera_id)
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"not permitted: {action} on camera '{camera_id}'")
        return subject

    return Depends(_mark(_camera, f"camera:{action}", scope))


def require_session(scope: Scope = Scope.api) -> Any:
    """The route's ``session_id`` is a viewer session its caller may end: opened by the same user
    with a login (not a stream token), opened with the very stream token the caller presents, or
    the caller is an admin. Any other session answers 404, as if it did not exist. The session
    (``{"user_id", "credential_ref", ...}``) is left in ``request.state.viewer_session``."""

    async def _session(request: Request, session_id: str, subject: Subject = Depends(_subject_in(scope))) -> Subject:
        ld = services(request)
        found = await ld.find_session(session_id)
        if found is None or not may_end_session(subject, found):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such session")
        request.state.viewer_session = found
        return subject

    return Depends(_mark(_session, "session-owner", scope))


def hmac_source() -> Any:
    """A registered, active alarm source: HMAC-SHA256 over ``<timestamp>.<body>`` (headers
    ``X-Liandong-Source``, ``X-Liandong-Timestamp``, ``X-Liandong-Signature: sha256=<hex>``; see
    :mod:`gateway.alarms.hmac_auth`). Failures answer 401 and are audited in aggregate
    (:mod:`gateway.refusals`)."""

    async def _hmac(request: Request) -> str:
        from gateway.alarms.hmac_auth import SignatureError

        ld = services(request)
        body = await request.body()
        h = request.headers
        try:
            return str(
                await ld.alarms.sources.verify(
                    h.get("x-liandong-source", ""),
                    h.get("x-liandong-timestamp", ""),
                    h.get("x-liandong-signature", ""),
                    body,
                )
            )
        except SignatureError as e:
            # Anyone can send these: counted and audited in aggregate, off the request path.
            ld.metrics.denials.labels("hmac-source").inc()
            source = h.get("x-liandong-source", "")[:64]
            ld.refusals.note(
                "alarm_rejected",
                request.client.host if request.client else None,
                f"{e} (source {source!r})",
                detail=str(e),
            )
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(e)) from None

    return Depends(_mark(_hmac, "hmac-source", Scope.alarm_intake))


def require_incident(action: str | None = None) -> Any:
    """The route's ``incident_id`` and ``action`` (the given one, else the ``action`` path
    parameter, else ``view``) checked by the incident rules
    (:meth:`gateway.policy.incidents.IncidentRules.may_act`).

    An incident the caller may not see answers 404, as if it did not exist; a step the caller may
    not take answers 403 and is audited. The incident is left in ``request.state.incident``.
    """

    async def _incident(request: Request, incident_id: str, subject: Subject = Depends(current_subject)) -> Subject:
        ld = services(request)
        rules = incident_rules(request)
        inc = await rules.flow.get(incident_id)
        if inc is None or not rules.may_act(subject, "view", inc):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident '{incident_id}'")
        step = action or str(request.path_params.get("action", "view"))
        if not rules.may_act(subject, step, inc):
            await ld.audit_denied(request, subject, f"incident:{step}", None)
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"not permitted: {step} on incident '{incident_id}'")
        request.state.incident = inc
        return subject

    return Depends(_mark(_incident, f"incident:{action}" if action else "incident", Scope.api))


def require_case_intake() -> Any:
    """Opening a case: hotline call-takers and patrols (operators of a command centre), integration
    accounts and admins (:meth:`gateway.policy.incidents.IncidentRules.may_open_case`); others 403,
    audited. Machine tokens are accepted (the ``api`` scope)."""

    async def _intake(request: Request, subject: Subject = Depends(current_subject)) -> Subject:
        if not incident_rules(request).may_open_case(subject):
            await services(request).audit_denied(request, subject, "incident:open", None)
            raise HTTPException(status.HTTP_403_FORBIDDEN, "only call-takers and integration accounts open cases")
        return subject

    return Depends(_mark(_intake, "case-intake", Scope.api))


def incident_rules(request: Request) -> IncidentRules:
    """The incident rules of this gateway's workflow."""
    ld = services(request)
    return IncidentRules(ld.alarms.incidents, ld.authorizer)


PolicyCheck = Callable[..., Awaitable[Any]]
