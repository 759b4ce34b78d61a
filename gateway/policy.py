"""Route policies: every route declares who may call it; a route without one fails the test suite.

Authentication and authorization are decided here and only here (with :mod:`acl` answering the
camera questions). Routers attach exactly one of these dependencies to each route:

- :func:`public` -- no credentials (health, login).
- :func:`authenticated` -- any logged-in user.
- :func:`require_roles` -- a system role (admin, security_admin, auditor).
- :func:`require_camera` -- ``acl.authorize(subject, action, camera_id)`` on the ``camera_id`` path
  parameter.
- :func:`require_session` -- a viewer session's owner (the credential that opened it) or an admin.
- :func:`require_incident` -- the incident workflow's rules for the ``incident_id`` path parameter.
- :func:`hmac_source` -- a request signed by a registered alarm source (machines, no user).

Each guard also declares the route's credential :class:`~acl.credentials.Scope` (``api`` unless
said otherwise): which kinds of credential it accepts is the credential table's answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, HTTPException, Request, status

from acl.credentials import CredentialEnded, Kind, Scope
from acl.identity import Subject
from acl.models import Role

__all__ = [
    "POLICY_ATTR",
    "SCOPE_ATTR",
    "authenticated",
    "current_subject",
    "hmac_source",
    "public",
    "require_camera",
    "require_incident",
    "require_roles",
    "require_session",
]

log = logging.getLogger(__name__)
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
        subject = await request.app.state.ld.auth.authenticate(request, scope)
    except CredentialEnded as e:
        raise HTTPException(status.HTTP_410_GONE, str(e)) from None
    if subject is None:
        await request.app.state.ld.audit_unauthenticated(request)
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
        if subject.role not in allowed:
            await request.app.state.ld.audit_denied(request, subject, f"role:{'|'.join(sorted(allowed))}", None)
            raise HTTPException(status.HTTP_403_FORBIDDEN, "your role may not do this")
        return subject

    return Depends(_mark(_roles, f"roles:{','.join(sorted(allowed))}", Scope.api))


def require_camera(action: str, scope: Scope = Scope.api) -> Any:
    """``acl.authorize(subject, action, camera_id)`` for the route's ``camera_id`` path parameter.

    A denial answers 403 and is audited. The ACL denies unknown cameras too, so a user cannot
    probe which camera ids exist; admins, who may see everything, get 404 from the handler.
    """

    async def _camera(request: Request, camera_id: str, subject: Subject = Depends(_subject_in(scope))) -> Subject:
        ld = request.app.state.ld
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
        ld = request.app.state.ld
        found = await ld.find_session(session_id)
        if found is None or not may_end_session(subject, found):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such session")
        request.state.viewer_session = found
        return subject

    return Depends(_mark(_session, "session-owner", scope))


def may_end_session(subject: Subject, session: dict[str, Any]) -> bool:
    """Whether ``subject`` may end (or change) a viewer session (see :func:`require_session`)."""
    if subject.credential is Kind.stream_token:
        return session.get("credential_ref") == subject.credential_ref and session.get("user_id") == subject.user_id
    return bool(session.get("user_id") == subject.user_id or subject.is_admin)


def hmac_source() -> Any:
    """A registered, active alarm source: HMAC-SHA256 over ``<timestamp>.<body>`` (headers
    ``X-Liandong-Source``, ``X-Liandong-Timestamp``, ``X-Liandong-Signature: sha256=<hex>``; see
    :mod:`gateway.alarms.hmac_auth`). Failures answer 401 and are audited in aggregate
    (:mod:`gateway.refusals`)."""

    async def _hmac(request: Request) -> str:
        from gateway.alarms.hmac_auth import SignatureError

        ld = request.app.state.ld
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


def require_incident() -> Any:
    """The route's ``incident_id`` (and ``action``, default ``view``) checked by the incident
    workflow's rules (:meth:`gateway.alarms.incidents.IncidentWorkflow.may_act`).

    An incident the caller may not see answers 404, as if it did not exist; a step the caller may
    not take answers 403 and is audited. The incident is left in ``request.state.incident``.
    """

    async def _incident(request: Request, incident_id: str, subject: Subject = Depends(current_subject)) -> Subject:
        ld = request.app.state.ld
        flow = ld.alarms.incidents
        inc = await flow.get(incident_id)
        if inc is None or not flow.may_act(subject, "view", inc):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident '{incident_id}'")
        action = str(request.path_params.get("action", "view"))
        if not flow.may_act(subject, action, inc):
            await ld.audit_denied(request, subject, f"incident:{action}", None)
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"not permitted: {action} on incident '{incident_id}'")
        request.state.incident = inc
        return subject

    return Depends(_mark(_incident, "incident", Scope.api))


PolicyCheck = Callable[..., Awaitable[Any]]
