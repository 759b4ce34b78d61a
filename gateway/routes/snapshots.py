"""Thumbnails: ``GET /api/cameras/{id}/snapshot.jpg``, privacy masks (admins), interest (consoles)."""

from __future__ import annotations

import datetime as dt
import time
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from acl.credentials import Scope
from acl.identity import Subject
from acl.models import Role
from gateway.container import services
from gateway.policy import authenticated, require_camera, require_roles
from gateway.routes.stream_errors import to_owner
from snapshot.service import SnapshotResult, SnapshotUnavailable

router = APIRouter(tags=["snapshots"])


def _check_width(request: Request, width: int) -> None:
    widths = services(request).settings.snapshot.widths
    if width not in widths:
        raise HTTPException(422, [{"field": "width", "message": f"must be one of {widths}"}])


async def _camera_exists(request: Request, camera_id: str) -> None:
    try:
        await services(request).store.get(camera_id)
    except LookupError as e:
        raise HTTPException(404, str(e)) from None


def _not_modified(request: Request, etag: str, taken: dt.datetime) -> bool:
    inm = request.headers.get("if-none-match")
    if inm is not None:  # RFC 9110: If-None-Match wins over If-Modified-Since; weak comparison
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in tags or etag in tags
    ims = request.headers.get("if-modified-since")
    if ims:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        return since.tzinfo is not None and taken.replace(microsecond=0) <= since
    return False


def _headers(res: SnapshotResult) -> dict[str, str]:
    thumb = res.thumb
    taken = dt.datetime.fromtimestamp(thumb.taken_at, dt.UTC)
    headers = {
        "ETag": f'"{thumb.etag}"',
        "Last-Modified": format_datetime(taken, usegmt=True),
        "X-Snapshot-Taken": taken.isoformat(timespec="milliseconds"),
        "X-Snapshot-Age": f"{max(0.0, time.time() - thumb.taken_at):.1f}",
        "X-Snapshot-Source": res.source,
        "X-Camera-Status": res.camera_status,
        "Cache-Control": "private, max-age=1",
    }
    if res.stale_reason is not None:
        headers["X-Snapshot-Stale"] = res.stale_reason
        headers["Cache-Control"] = "private, no-cache"
    return headers


@router.get(
    "/api/cameras/{camera_id}/snapshot.jpg",
    dependencies=[require_camera("view_snapshot", Scope.stream_entry)],
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "A thumbnail (stale ones carry X-Snapshot-Stale)."},
        307: {"description": "Another gateway node pulls this camera: fetch it there (cluster)."},
        304: {"description": "Unchanged since If-None-Match / If-Modified-Since."},
        422: {"description": "width is not one of snapshot.widths."},
        503: {"description": "Camera offline or failing, and no earlier thumbnail."},
    },
)
async def snapshot(request: Request, camera_id: str, width: Annotated[int, Query(ge=16, le=4096)] = 320) -> Response:
    """A JPEG thumbnail. ``X-Snapshot-Taken``/``Last-Modified`` say when the frame was taken,
    ``X-Camera-Status`` whether the camera answered; a stale thumbnail carries ``X-Snapshot-Stale``."""
    _check_width(request, width)
    await _camera_exists(request, camera_id)
    ld = services(request)
    cluster = ld.cluster
    if cluster is not None and ld.hub.latest_keyframe(camera_id) is None:
        # Another node pulls the camera: it has the live keyframe, and a cold pull here would be a
        # second session at the camera.
        owner = await cluster.served_elsewhere(camera_id)
        if owner is not None:
            return to_owner(request, camera_id, owner)
    try:
        res = await ld.snapshots.get(camera_id, width)
    except SnapshotUnavailable as e:
        raise HTTPException(
            503,
            {"camera_id": camera_id, "status": e.status, "reason": e.reason, "message": f"camera {e.status}: {e}"},
            headers={"Retry-After": "5", "X-Camera-Status": e.status},
        ) from None
    headers = _headers(res)
    taken = dt.datetime.fromtimestamp(res.thumb.taken_at, dt.UTC)
    if _not_modified(request, f'"{res.thumb.etag}"', taken):
        return Response(status_code=304, headers=headers)
    return Response(res.thumb.jpeg, media_type="image/jpeg", headers=headers)


class MaskBody(BaseModel):
    """One privacy mask: a polygon in fractions (0..1) of the picture's width and height."""

    model_config = ConfigDict(extra="forbid")
    points: list[tuple[float, float]] = Field(min_length=3, max_length=64)
    mode: Literal["fill", "blur"] = "fill"

    @field_validator("points")
    @classmethod
    def _inside(cls, v: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if any(not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0) for x, y in v):
            raise ValueError("coordinates must be within 0..1")
        return v


class MasksBody(BaseModel):
    """A camera's masks (replaces the old ones; an empty list removes them)."""

    model_config = ConfigDict(extra="forbid")
    masks: list[MaskBody] = Field(max_length=32)


@router.get("/api/cameras/{camera_id}/masks", dependencies=[require_roles(Role.security_admin)])
async def get_masks(request: Request, camera_id: str) -> dict[str, Any]:
    """A camera's privacy masks."""
    await _camera_exists(request, camera_id)
    return {"camera_id": camera_id, "masks": await services(request).snapshots.masks.get(camera_id)}


@router.put("/api/cameras/{camera_id}/masks", dependencies=[require_roles(Role.security_admin)])
async def put_masks(request: Request, camera_id: str, body: MasksBody) -> dict[str, Any]:
    """Replace a camera's privacy masks; every thumbnail from then on has them."""
    ld = services(request)
    await _camera_exists(request, camera_id)
    subject: Subject = request.state.subject
    masks = [{"points": [list(p) for p in m.points], "mode": m.mode} for m in body.masks]
    await ld.snapshots.set_masks(camera_id, masks, subject.username)
    await ld.audit.record("masks_changed", subject=subject, camera_id=camera_id, detail=f"{len(masks)} masks")
    return {"camera_id": camera_id, "masks": masks}


class InterestBody(BaseModel):
    """The cameras a console shows now (replaces its previous report)."""

    model_config = ConfigDict(extra="forbid")
    camera_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(max_length=2000)
    width: int | None = Field(None, ge=16, le=4096, description="Thumbnail width shown; empty = as requested.")


@router.post("/api/snapshots/interest", dependencies=[authenticated()])
async def interest(request: Request, body: InterestBody) -> dict[str, Any]:
    """Keep these cameras' thumbnails fresh while the console shows them (most-watched first).

    Only cameras the caller may view count. Reports add up; each camera lapses ``ttl_s`` after the
    console last named it, so the page names cameras as they come on screen and again while they stay.
    """
    ld = services(request)
    if body.width is not None:
        _check_width(request, body.width)
    subject: Subject = request.state.subject
    ids = [c for c in dict.fromkeys(body.camera_ids) if ld.authorizer.authorize(subject, "view_snapshot", c)]
    console = f"{subject.user_id}:{subject.token_id}"
    accepted = ld.snapshots.report_interest(console, ids, body.width)
    s = ld.settings.snapshot
    return {"accepted": accepted, "ttl_s": s.interest_ttl_s, "refresh_interval_s": s.refresh_interval_s}
