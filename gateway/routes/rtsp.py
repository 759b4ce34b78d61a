"""RTSP credentials: the Digest password of the caller's login, for a decoder or player pulling
``rtsp://HOST:PORT/cameras/{id}`` from the gateway's RTSP server (``docs/rtsp.md``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from acl.identity import Subject
from gateway.container import services
from gateway.policy import authenticated

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/rtsp-credential", dependencies=[authenticated()])
async def rtsp_credential(request: Request) -> dict[str, Any]:
    """The RTSP Digest username and password of the login this request is made with (a bearer
    token, a browser session or an integration account's machine token). The password is derived
    from that login, not stored: asking again gives the same one, and it ends with the login
    (logout, revocation, a password or role change, deactivation, expiry), ending the RTSP
    sessions it opened."""
    ld = services(request)
    subject: Subject = request.state.subject
    if ld.rtsp is None:
        raise HTTPException(409, [{"field": "rtsp_out.enabled", "message": "the RTSP server is off"}])
    if subject.token_id is None:
        raise HTTPException(403, [{"field": "", "message": "an RTSP credential derives from a login"}])
    await ld.audit.record(
        "rtsp_credential",
        subject=subject,
        address=request.client.host if request.client else None,
        detail=f"RTSP Digest password of login {subject.token_id}",
    )
    host = request.url.hostname or ld.settings.server.host
    return {
        "username": subject.username,
        "password": ld.rtsp_passwords.password_for(subject.token_id),
        "realm": ld.settings.rtsp_out.realm,
        "expires_at": subject.expires_at.isoformat() if subject.expires_at else None,
        "url": f"rtsp://{host}:{ld.rtsp.port}/cameras/{{camera_id}}",
    }
