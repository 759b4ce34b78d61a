"""Thumbnails: ``GET /api/cameras/{id}/snapshot.jpg``, masks (admins), interest (consoles)."""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from acl.identity import Subject
from acl.models import Role
from gateway.policy import authenticated, require_camera, require_roles
from snapshot.service import SnapshotUnavailable

router = APIRouter(tags=["snapshots"])


@router.get(
    "/api/cameras/{camera_id}/snapshot.jpg",
    dependencies=[require_camera("view_snapshot")],
    responses={200: {"content": {"image/jpeg": {}}}, 304: {}, 503: {"description": "camera offline, no thumbnail"}},
)
async def snapshot(request: Request, camera_id: str, width: Annotated[int, Query(ge=16, le=4096)] = 320) -> Response:
    """A JPEG thumbnail. ``X-Snapshot-Taken`` says when; stale ones carry ``X-Snapshot-Stale``."""
    ld = request.app.state.ld
    if width not in ld.settings.snapshot.widths:
        raise HTTPException(422, [{"field": "width", "message": f"must be one of {ld.settings.snapshot.widths}"}])
    try:
        await ld.store.get(camera_id)
    except LookupError as e:
        raise HTTPException(404, str(e)) from None
    try:
        res = await ld.snapshots.get(camera_id, width)
    except SnapshotUnavailable as e:
        raise HTTPException(503, f"camera '{camera_id}' unavailable: {e}", headers={"Retry-After": "5"}) from None
    thumb = res.thumb
    taken = dt.datetime.fromtimestamp(thumb.taken_at, dt.UTC)
    headers = {
        "ETag": f'"{thumb.etag}"',
        "Last-Modified": format_datetime(taken, usegmt=True),
        "X-Snapshot-Taken": taken.isoformat(timespec="milliseconds"),
        "X-Snapshot-Source": res.source,
        "Cache-Control": "private, max-age=1",
    }
    if res.stale_reason:
        headers["X-Snapshot-Stale"] = res.stale_reason
        headers["X-Camera-Status"] = "offline"
    if request.headers.get("if-none-match", "").strip() == f'"{thumb.etag}"':
        return Response(status_code=304, headers=headers)
    return Response(thumb.jpeg, media_type="image/jpeg", headers=headers)


class MaskBody(BaseModel):
    """One privacy mask."""

    model_config = ConfigDict(extra="forbid")
    points: list[tuple[float, float]] = Field(min_length=3, max_length=64)
    mode: str = Field("fill", pattern="^(fill|blur)$")


class MasksBody(BaseModel):
    """A camera's masks (replaces the old ones)."""

    model_config = ConfigDict(extra="forbid")
    masks: list[MaskBody] = Field(max_length=32)


@router.get("/api/cameras/{camera_id}/masks", dependencies=[require_roles(Role.security_admin)])
async def get_masks(request: Request, camera_id: str) -> dict[str, Any]:
    """A camera's privacy masks."""
    return {"camera_id": camera_id, "masks": await request.app.state.ld.snapshots.masks(camera_id)}


@router.put("/api/cameras/{camera_id}/masks", dependencies=[require_roles(Role.security_admin)])
async def put_masks(request: Request, camera_id: str, body: MasksBody) -> dict[str, Any]:
    """Replace a camera's privacy masks (coordinates are fractions 0..1 of width and height)."""
    ld = request.app.state.ld
    for i, m in enumerate(body.masks):
        if any(not (0 <= x <= 1 and 0 <= y <= 1) for x, y in m.points):
            raise HTTPException(422, [{"field": f"masks.{i}.points", "message": "coordinates must be within 0..1"}])
    try:
        await ld.store.get(camera_id)
    except LookupError as e:
        raise HTTPException(404, str(e)) from None
    subject: Subject = request.state.subject
    masks = [m.model_dump() for m in body.masks]
    await ld.snapshots.set_masks(camera_id, masks, subject.username)
    await ld.audit.record("masks_changed", subject=subject, camera_id=camera_id, detail=f"{len(masks)} masks")
    return {"camera_id": camera_id, "masks": masks}


class InterestBody(BaseModel):
    """Cameras a console is showing now."""

    model_config = ConfigDict(extra="forbid")
    camera_ids: list[Annotated[str, Field(max_length=64)]] = Field(max_length=2000)


@router.post("/api/snapshots/interest", dependencies=[authenticated()])
async def interest(request: Request, body: InterestBody) -> dict[str, int]:
    """Keep these cameras' thumbnails fresh (only cameras the caller may view count)."""
    ld = request.app.state.ld
    subject: Subject = request.state.subject
    ids = [c for c in body.camera_ids if ld.authorizer.authorize(subject, "view_snapshot", c)]
    return {"accepted": ld.snapshots.interest(ids)}
