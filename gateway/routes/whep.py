"""WHEP (draft-ietf-wish-whep, the egress twin of WHIP, RFC 9725): POST an SDP offer, get the camera."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, Response, status

from acl.credentials import Scope
from acl.identity import Subject
from gateway.container import services
from gateway.policy import public, require_camera, require_session
from gateway.routes.sessions import end_guarded_session
from gateway.routes.stream_errors import REFUSAL_RESPONSES, STREAM_REFUSALS, stream_refused
from gateway.webrtc.sdp import SdpError
from gateway.webrtc.trickle import CONTENT_TYPE, FragmentError, parse_fragment
from gateway.webrtc.whep import IceRestartUnsupported
from streams import Variant

router = APIRouter(tags=["webrtc"])
log = logging.getLogger(__name__)
_ACCEPT_POST = {"Accept-Post": "application/sdp"}


def _ice_links(request: Request) -> dict[str, str]:
    urls = services(request).settings.webrtc.ice_servers
    if not urls:
        return {}
    return {"Link": ", ".join(f'<{u}>; rel="ice-server"' for u in urls)}


@router.options("/api/cameras/{camera_id}/whep", dependencies=[public()])
async def whep_options(camera_id: str) -> Response:
    """What the WHEP endpoint accepts (also answers CORS-style preflights; no camera data)."""
    _ = camera_id
    return Response(status_code=204, headers={**_ACCEPT_POST, "Allow": "OPTIONS, POST"})


@router.post(
    "/api/cameras/{camera_id}/whep",
    status_code=201,
    dependencies=[require_camera("view_live", Scope.stream_entry)],
    responses={
        **REFUSAL_RESPONSES,
        201: {"content": {"application/sdp": {}}, "description": "SDP answer; Location = session"},
        400: {"description": "bad SDP offer"},
        415: {"description": "codec not playable in browsers and transcoding disabled, or body not application/sdp"},
        503: {"description": "WebRTC disabled, camera unreachable (Retry-After 2), or every transcoder slot busy"},
    },
)
async def whep_offer(request: Request, camera_id: str, variant: Variant = Variant.auto) -> Response:
    """Create a viewer session from an SDP offer; answers 201 with the SDP answer.

    ``variant=low`` asks for the camera's low-bitrate rendition (a shared transcode); cameras whose
    codec browsers cannot play (H.265) are transcoded to H.264 automatically."""
    ld = services(request)
    if not ld.settings.webrtc.enabled:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "WebRTC is disabled on this gateway; use HLS")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/sdp":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "Content-Type: must be application/sdp", headers=_ACCEPT_POST
        )
    body = await request.body()
    subject: Subject = request.state.subject
    try:
        cam = await ld.store.get(camera_id)
        answer = await ld.whep.create(
            camera_id,
            body,
            subject,
            request.client.host if request.client else None,
            known_codec=cam.codec,
            variant=variant,
        )
    except SdpError as e:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(e)) from None
    except STREAM_REFUSALS as e:
        return stream_refused(request, camera_id, e, headers=_ACCEPT_POST)
    except ValueError as e:  # aiortc rejects offers it cannot parse
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"SDP offer: {str(e)[:200]}") from None
    location = f"/api/whep/{answer.session_id}"
    return Response(
        content=answer.sdp,
        status_code=201,
        media_type="application/sdp",
        headers={"Location": location, "ETag": _etag(answer.session_id), **_ice_links(request)},
    )


@router.delete("/api/whep/{session_id}", status_code=200, dependencies=[require_session(Scope.stream_session)])
async def whep_delete(request: Request, session_id: str) -> Response:
    """End a WHEP session: the credential that opened it (the same login, or the same stream
    token), or an admin."""
    await end_guarded_session(request, session_id)
    return Response(status_code=200)


@router.patch(
    "/api/whep/{session_id}",
    status_code=204,
    dependencies=[require_session(Scope.stream_session)],
    responses={
        204: {"description": "candidates handed to ICE"},
        404: {"description": "no such session (here)"},
        409: {"description": "the session's media is on another node (cluster): PATCH must reach that node"},
        412: {"description": "If-Match names another ICE session than this one"},
        415: {"description": "body not application/trickle-ice-sdpfrag"},
        422: {"description": "bad fragment, or an ICE restart (not supported)"},
    },
)
async def whep_patch(request: Request, session_id: str) -> Response:
    """Trickle ICE (RFC 8840 fragments, as WHIP RFC 9725 section 4.3): the player's candidates after its offer.

    ``If-Match`` must name the session's ``ETag`` (412 otherwise); ICE restarts (new credentials, or
    ``If-Match: *``) answer 422: aiortc cannot restart ICE, so the player must POST a new offer."""
    ld = services(request)
    # require_session let in only the credential that opened the session (or an admin).
    mids = ld.whep.media_sections(session_id)
    if mids is None:  # a session of another node (cluster): its peer connection is there
        node = request.state.viewer_session.get("node", "another node")
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"session {session_id}: its media is on node {node}; trickle candidates must reach that node"
            " (route /api/whep/ URLs to it, or send every candidate in the offer)",
        )
    accept_patch = {"Accept-Patch": CONTENT_TYPE}
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != CONTENT_TYPE:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"Content-Type: must be {CONTENT_TYPE}", headers=accept_patch
        )
    etag = _etag(session_id)
    if_match = request.headers.get("if-match", "").strip()
    if if_match == "*":
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, _NO_RESTART, headers={"ETag": etag})
    if if_match and etag not in [t.strip().removeprefix("W/") for t in if_match.split(",")]:
        raise HTTPException(
            status.HTTP_412_PRECONDITION_FAILED,
            f"If-Match: {if_match[:80]} is not this session's ICE session (ETag {etag})",
            headers={"ETag": etag},
        )
    try:
        fragment = parse_fragment(await request.body(), ld.settings.webrtc.max_sdp_bytes, mids)
        await ld.whep.trickle(session_id, fragment)
    except FragmentError as e:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"trickle-ice-sdpfrag: {e}") from None
    except IceRestartUnsupported:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, _NO_RESTART, headers={"ETag": etag}) from None
    except LookupError:  # ended meanwhile
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such session") from None
    return Response(status_code=204, headers={"ETag": etag})


_NO_RESTART = (
    "ICE restart is not supported (new a=ice-ufrag/a=ice-pwd or If-Match: *): DELETE this session and POST a new offer"
)


def _etag(session_id: str) -> str:
    """The session's entity-tag: it names the ICE session, and there is one per WHEP session (no restarts)."""
    return f'"{session_id}"'
