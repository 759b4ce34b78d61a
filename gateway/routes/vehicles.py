"""Vehicle positions from the tracking systems, vehicle list and tracks for consoles."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from acl.identity import Subject
from acl.models import Role
from camera_registry.schemas import VEHICLE_FIELDS
from camera_registry.store import CameraFilter
from gateway.container import services
from gateway.policy import authenticated, require_roles
from gateway.policy.rules import may_see_vehicle, vehicle_details, viewable_cameras

router = APIRouter(prefix="/api/vehicles", tags=["vehicles"])


@router.post(
    "/positions",
    dependencies=[require_roles(Role.integration)],
    openapi_extra={"requestBody": {"content": {"application/json": {}, "application/x-ndjson": {}}}},
)
async def post_positions(request: Request) -> dict[str, Any]:
    """A batch of ``{vehicle_id, lat, lon, time, speed, heading}`` as a JSON array or NDJSON.

    Bad items are reported by index; good ones are applied. Older-than-latest fixes go to the
    track but do not move the vehicle.
    """
    body = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "body: not UTF-8") from None
    items: list[Any] = []
    if ctype in ("application/x-ndjson", "application/jsonl", "application/json-seq"):
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError:
                    items.append(ValueError(f"line {n}: invalid JSON"))
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise HTTPException(400, f"body: invalid JSON at line {e.lineno} column {e.colno}") from None
        if not isinstance(doc, list):
            raise HTTPException(422, [{"field": "body", "message": "must be a JSON array of positions"}])
        items = doc
    try:
        return dict(await services(request).positions.ingest(items))
    except ValueError as e:
        raise HTTPException(413, str(e)) from None


def _kind_cameras(request: Request, kind: str) -> list[str]:
    """Cameras on vehicles of ``kind`` (what decides whether a vehicle without cameras is seen)."""
    ld = services(request)
    return [
        cid
        for vid, cams in ld.positions.vehicle_cameras.items()
        if ld.positions.vehicles.get(vid, ("", ""))[0] == kind
        for cid, _ in cams
    ]


def _visible_vehicle(request: Request, vehicle_id: str, by_kind: dict[str, bool] | None = None) -> bool:
    ld = services(request)
    subject: Subject = request.state.subject
    cams = [cid for cid, _ in ld.positions.vehicle_cameras.get(vehicle_id, [])]
    if cams:
        return may_see_vehicle(ld.authorizer, subject, cams, ())
    kind = ld.positions.vehicles.get(vehicle_id, ("", ""))[0]
    if by_kind is not None and kind in by_kind:
        return by_kind[kind]
    seen = may_see_vehicle(ld.authorizer, subject, (), _kind_cameras(request, kind))
    if by_kind is not None:
        by_kind[kind] = seen  # asked once per kind and request, not once per camera-less vehicle
    return seen


@router.get("", dependencies=[authenticated()])
async def list_vehicles(request: Request) -> list[dict[str, Any]]:
    """Vehicles the caller may see (one of their cameras, or for a vehicle with GPS but no camera
    yet, a camera on a vehicle of its kind), with their latest fix."""
    ld = services(request)
    by_kind: dict[str, bool] = {}
    ids = [vid for vid in sorted(ld.positions.vehicles) if _visible_vehicle(request, vid, by_kind)]
    fixes = await ld.positions.latest_many(ids)
    out = []
    for vid in ids:
        kind, home = ld.positions.vehicles[vid]
        fix = fixes.get(vid)
        out.append(
            {
                "id": vid,
                "kind": kind,
                "home_district": home,
                "cameras": viewable_cameras(
                    ld.authorizer, request.state.subject, [c for c, _ in ld.positions.vehicle_cameras.get(vid, [])]
                ),
                "position": None
                if fix is None
                else {"lat": fix.lat, "lon": fix.lon, "time": fix.t, "speed": fix.speed, "heading": fix.heading},
            }
        )
    return out


@router.get("/{vehicle_id}", dependencies=[authenticated()])
async def vehicle_panel(request: Request, vehicle_id: str) -> dict[str, Any]:
    """A vehicle's panel: a bus's line, plate, driver, company and its cameras; a truck's cargo,
    escort, driver and phone, company and where it is registered; its latest fix. Only if the
    caller may see the vehicle (as on the map), and a truck registered elsewhere only while it is
    inside the district. 404 otherwise, the same as for a vehicle that does not exist."""
    ld = services(request)
    missing = HTTPException(404, f"no vehicle '{vehicle_id}' you may view")
    if vehicle_id not in ld.positions.vehicles or not _visible_vehicle(request, vehicle_id):
        raise missing
    found = await ld.store.vehicles([vehicle_id])
    if not found:
        raise missing
    v = found[0]
    record = {"id": v.id, "kind": v.kind.value, **{f: getattr(v, f) for f in VEHICLE_FIELDS if f not in ("id", "kind")}}
    cams = [cid for cid, _ in ld.positions.vehicle_cameras.get(vehicle_id, [])]
    reply = vehicle_details(ld.authorizer, request.state.subject, record, cams, shared=ld.location.shares(vehicle_id))
    if reply is None:
        raise missing
    rows, _ = await ld.store.search(CameraFilter(), only_ids=set(reply["cameras"]), limit=len(cams) or 1)
    reply["cameras"] = [{"id": c.id, "name": c.name, "position": c.vehicle_position} for c in rows]
    fix = (await ld.positions.latest_many([vehicle_id])).get(vehicle_id)
    reply["position"] = (
        None
        if fix is None
        else {"lat": fix.lat, "lon": fix.lon, "time": fix.t, "speed": fix.speed, "heading": fix.heading}
    )
    return reply


@router.get("/{vehicle_id}/track", dependencies=[authenticated()])
async def vehicle_track(
    request: Request, vehicle_id: str, since: Annotated[float | None, Query(description="epoch seconds")] = None
) -> dict[str, Any]:
    """A vehicle's recent fixes (only if the caller may view one of its cameras)."""
    ld = services(request)
    if vehicle_id not in ld.positions.vehicles or not _visible_vehicle(request, vehicle_id):
        raise HTTPException(404, f"no vehicle '{vehicle_id}' you may view")
    points = ld.positions.track(vehicle_id, since)
    return {"vehicle_id": vehicle_id, "points": [list(p) for p in points]}
