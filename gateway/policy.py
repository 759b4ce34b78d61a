"""Route policies: every route declares who may call it; a route without one fails the test suite.

Authentication and authorization are decided here and only here (with :mod:`acl` answering the
camera questions). Routers attach exactly one of these dependencies to each route:

- :func:`public` -- no credentials (health, login).
- :func:`authenticated` -- any logged-in user.
- :func:`require_roles` -- a system role (admin, security_admin, auditor).
- :func:`require_camera` -- ``acl.authorize(subject, action, camera_id)`` on the ``camera_id`` path
  parameter.
- :func:`require_incident` -- the incident workflow's rules for the ``incident_id`` path parameter.
- :func:`hmac_source` -- a request signed by a registered alarm source (machines, no user).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, HTTPException, Request, status

from acl.identity import Subject
from acl.models import Role

__all__ = [
    "POLICY_ATTR",
    "authenticated",
    "current_subject",
    "hmac_source",
    "public",
    "require_camera",
    "require_incident",
    "require_roles",
]

log = logging.getLogger(__name__)
POLICY_ATTR = "__liandong_policy__"


def _mark(fn: Callable[..., Any], description: str) -> Callable[..., Any]:
    setattr(fn, POLICY_ATTR, description)
    return fn


async def current_subject(request: Request) -> Subject:
    """The authenticated subject of the request, or 401, audited (see :mod:`gateway.auth`)."""
    subject = await request.app.state.ld.auth.authenticate(request)
    if subject is None:
        await request.app.state.ld.audit_unauthenticated(request)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "authentication required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return subject


def public() -> Any:
    """No credentials needed."""

    async def _public() -> None:
        return None

    return Depends(_mark(_public, "public"))


def authenticated() -> Any:
    """Any authenticated user."""

    async def _auth(subject: Subject = Depends(current_subject)) -> Subject:
        return subject

    return Depends(_mark(_auth, "authenticated"))


def require_roles(*roles: Role) -> Any:
    """A user whose system role is one of ``roles`` (admin always passes)."""
    allowed = frozenset(roles) | {Role.admin}

    async def _roles(request: Request, subject: Subject = Depends(current_subject)) -> Subject:
        if subject.role not in allowed:
            await request.app.state.ld.audit_denied(request, subject, f"role:{'|'.join(sorted(allowed))}", None)
            raise HTTPException(status.HTTP_403_FORBIDDEN, "your role may not do this")
        return subject

    return Depends(_mark(_roles, f"roles:{','.join(sorted(allowed))}"))


def require_camera(action: str) -> Any:
    """``acl.authorize(subject, action, camera_id)`` for the route's ``camera_id`` path parameter.

    A denial answers 403 and is audited. The ACL denies unknown cameras too, so a user cannot
    probe which camera ids exist; admins, who may see everything, get 404 from the handler.
    """

    async def _camera(request: Request, camera_id: str, subject: Subject = Depends(current_subject)) -> Subject:
        ld = request.app.state.ld
        if not ld.authorizer.authorize(subject, action, camera_id):
            await ld.audit_denied(request, subject, action, camera_id)
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"not permitted: {action} on camera '{camera_id}'")
        return subject

    return Depends(_mark(_camera, f"camera:{action}"))


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

    return Depends(_mark(_hmac, "hmac-source"))


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

    return Depends(_mark(_incident, "incident"))


PolicyCheck = Callable[..., Awaitable[Any]]
