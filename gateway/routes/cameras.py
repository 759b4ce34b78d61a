"""The camera inventory over HTTP: list and read (filtered by the viewing policy), admin edits,
inventory import (the CLI's importer) and source probes."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status

from acl.models import Role
from camera_registry.inventory import MAX_FILE_BYTES, InventoryError, detect_format, import_inventory, parse_bundle
from camera_registry.models import Camera, CameraKind, CameraStatus
from camera_registry.schemas import CameraIn, CameraPatch
from camera_registry.store import CameraFilter, NotFound
from gateway.container import services
from gateway.policy import authenticated, require_camera, require_roles
from gateway.policy.rules import SOURCE_FIELDS, may_see_camera_sources, visible_camera_ids

router = APIRouter(prefix="/api/cameras", tags=["cameras"])


def camera_reply(request: Request, cam: Camera) -> dict[str, Any]:
    """A camera as the caller may see it (its source only if :func:`~gateway.policy.rules.may_see_camera_sources`);
    every route that answers with a camera builds it here."""
    out = cam.public_dict()
    if not may_see_camera_sources(request.state.subject):
        for name in SOURCE_FIELDS:
            del out[name]
    return out


def _with_state(request: Request, cam: dict[str, Any]) -> dict[str, Any]:
    hub = getattr(services(request), "hub", None)
    if hub is not None:
        cam["stream"] = hub.describe(cam["id"])
    return cam


@router.get("", dependencies=[authenticated()])
async def list_cameras(
    request: Request,
    area: Annotated[str | None, Query(max_length=64)] = None,
    station: Annotated[str | None, Query(max_length=64, description="neighbourhood station (居村委)")] = None,
    kind: CameraKind | None = None,
    status_: Annotated[CameraStatus | None, Query(alias="status")] = None,
    department: Annotated[str | None, Query(max_length=64)] = None,
    text: Annotated[str | None, Query(max_length=100)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Cameras the caller may view (at least a snapshot), filtered and paginated, ordered by id."""
    ld = services(request)
    visible = visible_camera_ids(ld.authorizer, request.state.subject)
    f = CameraFilter(area=area, station=station, kind=kind, status=status_, department=department, text=text)
    rows, total = await ld.store.search(f, only_ids=visible, offset=offset, limit=limit)
    return {
        "total": total,
        "offset": offset,
        "limit": limit,
        "items": [_with_state(request, camera_reply(request, c)) for c in rows],
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
    ld = services(request)
    visible = visible_camera_ids(ld.authorizer, request.state.subject)
    found = await ld.positions.nearest(
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


@router.post(
    "/import",
    dependencies=[require_roles(Role.admin)],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {}}, "text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def import_camera_inventory(
    request: Request,
    strict: Annotated[bool, Query(description="Write nothing if any row is rejected.")] = False,
    what: Annotated[
        Literal["cameras", "vehicles"], Query(description="What a JSON list or a CSV body holds.")
    ] = "cameras",
    substitute: Annotated[
        list[str] | None, Query(max_length=20, description="KEY=VALUE: fills {KEY} in source URLs.")
    ] = None,
) -> dict[str, Any]:
    """Upsert an inventory (the ``liandong cameras import`` format) and report every row.

    The body is CSV (``text/csv``) or JSON: a list of records, or ``{"vehicles": [...],
    "cameras": [...]}`` to import both in one transaction. The reply counts created / updated /
    unchanged / rejected rows and lists each rejected row with its number and reason.
    """
    ld = services(request)
    subs = _substitutions(substitute or [])
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FILE_BYTES:
            raise HTTPException(413, [{"field": "body", "message": f"larger than {MAX_FILE_BYTES} bytes"}])
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        data = bytes(body)
        cameras, vehicles = await asyncio.to_thread(parse_bundle, data, detect_format(ctype, data), what)
    except InventoryError as e:
        raise HTTPException(422, [{"field": "body", "message": str(e).removeprefix("file: ")}]) from None
    report = await import_inventory(ld.store, cameras, vehicles, strict=strict, substitutions=subs)
    if report.changed:
        await ld.inventory_changed()
    summary = report.summary()
    await ld.audit.record(
        "cameras_imported",
        subject=request.state.subject,
        detail=f"{summary['created']} created, {summary['updated']} updated, {summary['rejected']} rejected"
        + ("" if report.written else ", nothing written"),
    )
    return summary


def _substitutions(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        key, sep, val = v.partition("=")
        if not sep or not key.isidentifier() or len(v) > 200:
            raise HTTPException(422, [{"field": "substitute", "message": "expected KEY=VALUE"}])
        out[key] = val
    return out


@router.post("/{camera_id}/probe", dependencies=[require_roles(Role.admin)])
async def probe_camera(
    request: Request,
    camera_id: str,
    timeout_s: Annotated[float, Query(alias="timeout", ge=0.5, le=30, description="seconds")] = 5.0,
) -> dict[str, Any]:
    """Check the camera's source now (RTSP DESCRIBE over TCP) and record codec, size, fps and status."""
    from camera_registry.probe import probe_cameras

    ld = services(request)
    try:
        await ld.store.get(camera_id)
    except NotFound as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(e)) from None
    slots: asyncio.Semaphore = ld.probe_slots
    async with slots:
        results = await probe_cameras(ld.store, [camera_id], concurrency=1, timeout_s=timeout_s)
    if not results:  # deleted meanwhile
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"camera '{camera_id}' not found")
    await ld.audit.record("camera_probed", subject=request.state.subject, camera_id=camera_id)
    cam = await ld.store.get(camera_id)
    return {**results[0].as_dict(), "last_seen": cam.last_seen.isoformat() if cam.last_seen else None}


@router.get("/{camera_id}", dependencies=[require_camera("view_snapshot")])
async def get_camera(request: Request, camera_id: str) -> dict[str, Any]:
    """One camera."""
    try:
        cam = await services(request).store.get(camera_id)
    except NotFound as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(e)) from None
    return _with_state(request, camera_reply(request, cam))


@router.post("", status_code=201, dependencies=[require_roles(Role.admin)])
async def create_camera(request: Request, body: CameraIn) -> dict[str, Any]:
    """Register a camera (credentials in the URL are stored encrypted and never shown again)."""
    ld = services(request)
    try:
        cam = await ld.store.create(body)
    except ValueError as e:
        raise HTTPException(status.HTTP_409_CONFLICT if "exists" in str(e) else 422, str(e)) from None
    await ld.inventory_changed()
    await ld.audit.record("camera_created", subject=request.state.subject, camera_id=cam.id)
    return camera_reply(request, cam)


@router.patch("/{camera_id}", dependencies=[require_roles(Role.admin)])
async def update_camera(request: Request, camera_id: str, body: CameraPatch) -> dict[str, Any]:
    """Change a camera; the merged record is validated as a whole."""
    ld = services(request)
    try:
        cam = await ld.store.update(camera_id, body)
    except NotFound as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(e)) from None
    except ValueError as e:
        raise HTTPException(422, _safe_error(e)) from None
    await ld.inventory_changed()
    await ld.audit.record("camera_updated", subject=request.state.subject, camera_id=camera_id)
    return camera_reply(request, cam)


@router.delete("/{camera_id}", status_code=204, dependencies=[require_roles(Role.admin)])
async def delete_camera(request: Request, camera_id: str) -> None:
    """Delete a camera; its viewers are disconnected."""
    ld = services(request)
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
