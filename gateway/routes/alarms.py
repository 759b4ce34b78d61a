"""The alarm webhook (HMAC-signed), and for security administrators: alarm sources and the routing table."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from acl.models import Role
from gateway.alarms.hmac_auth import SourceError
from gateway.alarms.routing import RouteError
from gateway.alarms.service import AlarmError, parse_alarm
from gateway.container import services
from gateway.policy import hmac_source, require_roles
from gateway.settings import AlarmRoute

router = APIRouter(tags=["alarms"])
ADMIN = require_roles(Role.security_admin)


def _unprocessable(e: ValueError) -> HTTPException:
    field, _, msg = str(e).partition(": ")
    return HTTPException(422, [{"field": field, "message": msg}])


@router.post(
    "/api/alarms",
    status_code=202,
    responses={200: {"description": "a repeated alarm id: the same incident"}, 401: {"description": "bad signature"}},
)
async def post_alarm(request: Request, source: str = hmac_source()) -> JSONResponse:
    """An alarm: ``{alarm_id, type, vehicle_id and/or lat/lon, time, text}``, signed by its source.

    The alarm and its incident are stored before the reply (202 with the incident id); a repeated
    alarm id from the same source gets the same incident id (200, ``duplicate: true``).
    """
    ld = services(request)
    try:
        alarm = parse_alarm(await request.body())
    except AlarmError as e:
        raise _unprocessable(e) from None
    res = await ld.alarms.receive(source, alarm)
    return JSONResponse(
        {"incident_id": res.incident_id, "duplicate": res.duplicate}, status_code=200 if res.duplicate else 202
    )


class SourceBody(BaseModel):
    """A new alarm source."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)


class SourcePatch(BaseModel):
    """Switch a source off or on."""

    model_config = ConfigDict(extra="forbid")
    active: bool


@router.get("/api/admin/alarm-sources", dependencies=[ADMIN])
async def list_sources(request: Request) -> list[dict[str, Any]]:
    """Registered alarm sources (never their secrets)."""
    return list(await services(request).alarms.sources.list())


@router.post("/api/admin/alarm-sources", status_code=201, dependencies=[ADMIN])
async def add_source(request: Request, body: SourceBody) -> dict[str, str]:
    """Register a source; its secret is in this reply only."""
    ld = services(request)
    try:
        secret = await ld.alarms.sources.add(body.name)
    except SourceError as e:
        raise _unprocessable(e) from None
    await ld.audit.record("alarm_source_added", subject=request.state.subject, detail=body.name)
    return {"name": body.name, "secret": secret}


@router.post("/api/admin/alarm-sources/{name}/rotate", dependencies=[ADMIN])
async def rotate_source(request: Request, name: str) -> dict[str, str]:
    """A new secret for a source (shown once; the old one stops working)."""
    ld = services(request)
    try:
        secret = await ld.alarms.sources.rotate(name)
    except LookupError as e:
        raise HTTPException(404, str(e)) from None
    await ld.audit.record("alarm_source_rotated", subject=request.state.subject, detail=name)
    return {"name": name, "secret": secret}


@router.patch("/api/admin/alarm-sources/{name}", dependencies=[ADMIN])
async def patch_source(request: Request, name: str, body: SourcePatch) -> dict[str, Any]:
    """Disable a source (its alarms are refused) or enable it again."""
    ld = services(request)
    try:
        await ld.alarms.sources.set_active(name, body.active)
    except LookupError as e:
        raise HTTPException(404, str(e)) from None
    await ld.audit.record(
        "alarm_source_" + ("enabled" if body.active else "disabled"), subject=request.state.subject, detail=name
    )
    return {"name": name, "active": body.active}


@router.get("/api/admin/alarm-routes", dependencies=[ADMIN])
async def list_routes(request: Request) -> list[dict[str, Any]]:
    """The routing table: from settings (fixed) and from this API; the area's sub-district centre
    is always on duty as well."""
    return list(services(request).alarms.routing.routes())


@router.post("/api/admin/alarm-routes", status_code=201, dependencies=[ADMIN])
async def add_route(request: Request, body: AlarmRoute) -> dict[str, Any]:
    """Add a route ``{area, type, departments, hours}`` (``*`` matches any; hours ``HH:MM-HH:MM``, local)."""
    ld = services(request)
    try:
        route = await ld.alarms.routing.add(body, request.state.subject.username)
    except RouteError as e:
        raise _unprocessable(e) from None
    await ld.audit.record("alarm_route_added", subject=request.state.subject, detail=str(route))
    return dict(route)


@router.delete("/api/admin/alarm-routes/{route_id}", dependencies=[ADMIN])
async def delete_route(request: Request, route_id: int) -> dict[str, bool]:
    """Remove a route added through the API."""
    ld = services(request)
    try:
        await ld.alarms.routing.remove(route_id)
    except LookupError as e:
        raise HTTPException(404, str(e)) from None
    await ld.audit.record("alarm_route_removed", subject=request.state.subject, detail=str(route_id))
    return {"removed": True}
