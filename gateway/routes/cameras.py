"""The camera inventory over HTTP: list and read (filtered by the viewing policy), admin edits."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status

from acl.identity import Subject
from acl.models import Role
from camera_registry.models import CameraKind, CameraStatus
from camera_registry.schemas import CameraIn, CameraPatch
from camera_registry.store import CameraFilter, NotFound
from gateway.policy import authenticated, require_camera, require_roles

router = APIRouter(prefix="/api/cameras", tags=["cameras"])


def _with_state(request: Request, cam: dict[str, Any]) -> dict[str, Any]:
    hub = getattr(request.app.state.ld, "hub", None)
    if hub is not None:
        cam["stream"] = hub.describe(cam["id"])
    return cam


@router.get("", dependencies=[authenticated()])
async def list_cameras(
    request: Request,
    area: Annotated[str | None, Query(max_length=64)] = None,
    kind: CameraKind | None = None,
    status_: Annotated[CameraStatus | None, Query(alias="status")] = None,
    department: Annotated[str | None, Query(max_length=64)] = None,
    text: Annotated[str | None, Query(max_length=100)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Cameras the caller may view (at least a snapshot), filtered and paginated, ordered by id."""
    ld = request.app.state.ld
    subject: Subject = request.state.subject
    visible = None if subject.is_admin else ld.authorizer.visible_cameras(subject, "view_snapshot")
    f = CameraFilter(area=area, kind=kind, status=status_, department=department, text=text)
    rows, total = await ld.store.search(f, only_ids=visible, offset=offset, limit=limit)
    return {
        "total": total,
        "offset": offset,
        "limit": limit,
        "items": [_with_state(request, c.public_dict()) for c in rows],
    }


@router.get("/nearest", dependencies=[authenticated()])
async def nearest_cameras(
    request: Request,
    lat: Annotated[float, Query(ge=-90, le=90)],
    lon: Annotated[float, Query(ge=-180, le=180)],
    kind: Annotated[list[CameraKind] | None, Query()] = None,
    max_age: Annotated[float | None, Query(gt=0, le=86400, description="s; freshness of vehicle fixes")] = None,
    radius: Annotated[float | None, Query(gt=0, le=200_000, description="metres")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 10,
) -> dict[str, Any]:
    """Cameras nearest to a point that the caller may view; moving ones by their vehicle's fresh fix."""
    ld = request.app.state.ld
    subject: Subject = request.state.subject
    visible = None if subject.is_admin else ld.authorizer.visible_cameras(subject, "view_snapshot")
    found = ld.positions.nearest(
        lat,
        lon,
        kinds={k.value for k in kind} if kind else None,
        max_age_s=max_age,
        radius_m=radius,
        limit=limit,
        visible=visible,
    )
    return {
        "items": [
            {
                "camera_id": c.camera_id,
                "distance_m": round(c.distance_m, 1),
                "kind": c.kind,
                "vehicle_id": c.vehicle_id,
                "position_age_s": c.position_age_s,
            }
            for c in found
        ]
    }


@router.get("/{camera_id}", dependencies=[require_camera("view_snapshot")])
async def get_camera(request: Request, camera_id: str) -> dict[str, Any]:
    """One camera."""
    try:
        cam = await request.app.state.ld.store.get(camera_id)
    except NotFound as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(e)) from None
    return _with_state(request, cam.public_dict())


@router.post("", status_code=201, dependencies=[require_roles(Role.admin)])
async def create_camera(request: Request, body: CameraIn) -> dict[str, Any]:
    """Register a camera (credentials in the URL are stored encrypted and never shown again)."""
    ld = request.app.state.ld
    try:
        cam = await ld.store.create(body)
    except ValueError as e:
        raise HTTPException(status.HTTP_409_CONFLICT if "exists" in str(e) else 422, str(e)) from None
    await ld.inventory_changed()
    await ld.audit.record("camera_created", subject=request.state.subject, camera_id=cam.id)
    return cam.public_dict()


@router.patch("/{camera_id}", dependencies=[require_roles(Role.admin)])
async def update_camera(request: Request, camera_id: str, body: CameraPatch) -> dict[str, Any]:
    """Change a camera; the merged record is validated as a whole."""
    ld = request.app.state.ld
    try:
        cam = await ld.store.update(camera_id, body)
    except NotFound as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(e)) from None
    except ValueError as e:
        raise HTTPException(422, _safe_error(e)) from None
    await ld.inventory_changed()
    await ld.audit.record("camera_updated", subject=request.state.subject, camera_id=camera_id)
    return cam.public_dict()


@router.delete("/{camera_id}", status_code=204, dependencies=[require_roles(Role.admin)])
async def delete_camera(request: Request, camera_id: str) -> None:
    """Delete a camera; its viewers are disconnected."""
    ld = request.app.state.ld
    try:
        await ld.store.delete(camera_id)
    except NotFound as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(e)) from None
    await ld.inventory_changed()
    await ld.camera_removed(camera_id)
    await ld.audit.record("camera_deleted", subject=request.state.subject, camera_id=camera_id)


def _safe_error(e: Exception) -> Any:
    """A validation error as a list of {field, message}, without the rejected input values."""
    errors = getattr(e, "errors", None)
    if callable(errors):
        return [{"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in errors()]
    return str(e)
