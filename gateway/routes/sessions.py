"""Viewer sessions: list and end (your own; everyone's for admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from acl.models import Role
from gateway.container import services
from gateway.policy import require_owner_or_admin, require_roles, require_session
from gateway.sessions import end_reason

router = APIRouter(prefix="/api/sessions", tags=["sessions"])


@router.get("", dependencies=[require_owner_or_admin(user_param="user_id", admins_see_all=True, rows="sessions")])
async def list_sessions(
    request: Request,
    user_id: int | None = None,
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[dict[str, Any]]:
    """Open sessions: admins see all (filterable by ``user_id``), others their own."""
    ld = services(request)
    _ = user_id  # declared for validation and the docs; whose sessions is the guard's answer
    owner: int | None = request.state.owner_scope
    cluster = ld.cluster
    if cluster is not None:  # every node's sessions; live stats for this node's own
        rows = await cluster.sessions.list(user_id=owner, camera_id=camera_id)
        for d in rows:
            if d["node"] == cluster.node_id and d["protocol"] == "webrtc":
                d.update(ld.whep.stats(d["id"]))
        return rows
    out = []
    for s in ld.sessions.list(user_id=owner, camera_id=camera_id):
        d = s.public()
        if s.protocol == "webrtc":
            d.update(ld.whep.stats(s.id))
        out.append(d)
    return out


@router.delete("/{session_id}", dependencies=[require_session()])
async def end_session(request: Request, session_id: str) -> dict[str, bool]:
    """End one session (yours, or anyone's for admins)."""
    return {"ok": await end_guarded_session(request, session_id)}


async def end_guarded_session(request: Request, session_id: str) -> bool:
    """End the session :func:`~gateway.policy.require_session` let the caller end (here and as
    ``DELETE /api/whep/{id}``), audited as ended by its viewer or by an admin."""
    reason = end_reason(request.state.viewer_session["user_id"], request.state.subject)
    return bool(await services(request).end_session(session_id, reason))


@router.delete("", dependencies=[require_roles(Role.admin)])
async def end_sessions(
    request: Request,
    user_id: int | None = None,
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, int]:
    """End every session of a user and/or a camera (one of the two is required)."""
    if user_id is None and camera_id is None:
        raise HTTPException(422, [{"field": "user_id", "message": "give user_id and/or camera_id"}])
    ld = services(request)
    cluster = ld.cluster
    if cluster is not None:
        return {"ended": await cluster.sessions.end_sessions(user_id, camera_id, "ended by admin")}
    n = await ld.sessions.end_sessions(user_id, {camera_id} if camera_id else None, "ended by admin")
    return {"ended": n}
