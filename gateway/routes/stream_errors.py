"""What a viewer hears when a camera's stream cannot start here: one answer for WHEP, HLS and
snapshots (404, 429, 415, 503 with a retry hint, or a 307 to the node that pulls the camera)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import HTTPException, Request, Response, status

from camera_registry.store import NotFound
from gateway.cluster.ownership import OwnedElsewhere
from gateway.cluster.redirect import redirect_to_owner
from gateway.sessions import SessionLimit
from streams import StreamUnavailable, TranscodeCapacity, UnsupportedCodec

__all__ = ["REFUSAL_RESPONSES", "STREAM_REFUSALS", "stream_refused", "to_owner"]

# What starting a viewer on a camera may raise; :func:`stream_refused` answers each.
STREAM_REFUSALS = (NotFound, SessionLimit, UnsupportedCodec, TranscodeCapacity, StreamUnavailable)

# The answers of :func:`stream_refused`, for the routes' OpenAPI ``responses``.
REFUSAL_RESPONSES: dict[int | str, dict[str, Any]] = {
    307: {"description": "another gateway node pulls this camera: repeat the request there (cluster)"},
    404: {"description": "no such camera"},
    415: {"description": "the camera's codec is not playable in browsers and transcoding is disabled"},
    429: {"description": "the user holds sessions.max_per_user viewer sessions already"},
    503: {"description": "camera unreachable (Retry-After 2), or every transcoder slot busy (Retry-After 10)"},
}


def stream_refused(
    request: Request, camera_id: str, error: Exception, *, headers: Mapping[str, str] | None = None
) -> Response:
    """The reply to ``error`` (one of :data:`STREAM_REFUSALS`) from starting ``camera_id``: the 307
    to the node that pulls the camera is returned, every other answer raised as an HTTPException.
    ``headers`` go with a 415 (what the protocol accepts instead, e.g. WHEP's ``Accept-Post``)."""
    if isinstance(error, OwnedElsewhere):
        return to_owner(request, camera_id, error.url)
    if isinstance(error, NotFound):
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error))
    if isinstance(error, SessionLimit):
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(error))
    if isinstance(error, UnsupportedCodec):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"camera '{camera_id}' sends {error.codec}, which browsers cannot play, and transcoding is disabled",
            headers=dict(headers or {}),
        )
    if isinstance(error, TranscodeCapacity):  # a slot frees when a viewer leaves: not at once
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error), headers={"Retry-After": "10"})
    if isinstance(error, StreamUnavailable):
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error), headers={"Retry-After": "2"})
    raise error


def to_owner(request: Request, camera_id: str, owner_url: str) -> Response:
    """A 307 to the node at ``owner_url`` that pulls ``camera_id``, for the caller (with a stream
    token: see :func:`gateway.cluster.redirect.redirect_to_owner`)."""
    return redirect_to_owner(request, owner_url, camera_id, request.state.subject)
