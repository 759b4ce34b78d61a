"""Alarm webhook (HMAC-signed), alarm sources (admins), incidents and their workflow, live events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from acl.identity import Subject
from acl.models import Role
from gateway.alarms.service import AlarmError, incident_dict
from gateway.policy import authenticated, hmac_source, require_roles

router = APIRouter(tags=["alarms"])


@router.post("/api/alarms", status_code=202, responses={401: {"description": "bad or stale signature"}})
async def post_alarm(request: Request, source: str = hmac_source()) -> JSONResponse:
    """An alarm: ``{alarm_id, type, vehicle_id and/or lat/lon, time, text}``. Stored before the reply;
    a repeated alarm id gets the same incident id (200 instead of 202)."""
    ld = request.app.state.ld
    try:
        alarm = ld.alarms.parse(await request.body())
    except AlarmError as e:
        field, _, msg = str(e).partition(": ")
        raise HTTPException(422, [{"field": field, "message": msg}]) from None
    res = await ld.alarms.receive(source, alarm)
    return JSONResponse(
        {"incident_id": res.incident_id, "duplicate": res.duplicate}, status_code=200 if res.duplicate else 202
    )


class SourceBody(BaseModel):
    """A new alarm source."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)


@router.get("/api/admin/alarm-sources", dependencies=[require_roles(Role.security_admin)])
async def list_sources(request: Request) -> list[dict[str, Any]]:
    """Registered alarm sources (never their secrets)."""
    return list(await request.app.state.ld.alarms.sources())


@router.post("/api/admin/alarm-sources", status_code=201, dependencies=[require_roles(Role.security_admin)])
async def add_source(request: Request, body: SourceBody) -> dict[str, str]:
    """Register a source; the secret is in this reply only."""
    ld = request.app.state.ld
    try:
        secret = await ld.alarms.add_source(body.name)
    except AlarmError as e:
        raise HTTPException(422, [{"field": "name", "message": str(e).partition(": ")[2]}]) from None
    await ld.audit.record("alarm_source_added", subject=request.state.subject, detail=body.name)
    return {"name": body.name, "secret": secret}


@router.post("/api/admin/alarm-sources/{name}/rotate", dependencies=[require_roles(Role.security_admin)])
async def rotate_source(request: Request, name: str) -> dict[str, str]:
    """A new secret for a source (shown once; the old one stops working)."""
    ld = request.app.state.ld
    try:
        secret = await ld.alarms.rotate_source(name)
    except AlarmError as e:
        raise HTTPException(404, str(e)) from None
    await ld.audit.record("alarm_source_rotated", subject=request.state.subject, detail=name)
    return {"name": name, "secret": secret}


def _may_see(request: Request, cameras: list[str]) -> bool:
    subject: Subject = request.state.subject
    if subject.role in (Role.admin, Role.security_admin, Role.auditor):
        return True
    return any(request.app.state.ld.authorizer.authorize(subject, "view_snapshot", c) for c in cameras)


@router.get("/api/incidents", dependencies=[authenticated()])
async def list_incidents(
    request: Request,
    state: Annotated[str | None, Query(max_length=16)] = None,
    area: Annotated[str | None, Query(max_length=64)] = None,
) -> list[dict[str, Any]]:
    """Incidents whose cameras the caller may view (supervisors see all)."""
    rows = await request.app.state.ld.alarms.list(state=state, area=area)
    return [incident_dict(i) for i in rows if _may_see(request, i.cameras)]


@router.get("/api/incidents/stats", dependencies=[authenticated()])
async def incident_stats(request: Request) -> dict[str, Any]:
    """Open, handled % and overdue per sub-district and per department."""
    return dict(await request.app.state.ld.alarms.stats())


@router.get("/api/incidents/{incident_id}", dependencies=[authenticated()])
async def get_incident(request: Request, incident_id: str) -> dict[str, Any]:
    """One incident with its history."""
    inc = await request.app.state.ld.alarms.get(incident_id)
    if inc is None or not _may_see(request, inc.cameras):
        raise HTTPException(404, f"no incident '{incident_id}'")
    return incident_dict(inc)


class StepBody(BaseModel):
    """A workflow step: ``department`` for dispatch, ``text`` for notes."""

    model_config = ConfigDict(extra="forbid")
    department: str | None = Field(None, max_length=64)
    text: str | None = Field(None, max_length=4000)


@router.post("/api/incidents/{incident_id}/{action}", dependencies=[authenticated()])
async def incident_step(request: Request, incident_id: str, action: str, body: StepBody) -> dict[str, Any]:
    """dispatch, acknowledge, onsite, resolve, close, reopen, escalate or note."""
    ld = request.app.state.ld
    if action not in ("dispatch", "acknowledge", "onsite", "resolve", "close", "reopen", "escalate", "note"):
        raise HTTPException(404, f"no action '{action}'")
    inc = await ld.alarms.get(incident_id)
    if inc is None or not _may_see(request, inc.cameras):
        raise HTTPException(404, f"no incident '{incident_id}'")
    subject: Subject = request.state.subject
    try:
        inc = await ld.alarms.act(incident_id, action, subject.username, body.model_dump(exclude_none=True))
    except AlarmError as e:
        field, _, msg = str(e).partition(": ")
        raise HTTPException(409 if field == "action" else 422, [{"field": field, "message": msg}]) from None
    return incident_dict(inc)


@router.get("/api/events", dependencies=[authenticated()])
async def events(
    request: Request, last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None
) -> StreamingResponse:
    """Server-Sent Events for this user (filtered by what they may view); resumes after Last-Event-ID."""
    ld = request.app.state.ld
    subject: Subject = request.state.subject
    last = int(last_event_id) if last_event_id and last_event_id.isdigit() else None

    def visible(camera_id: str) -> bool:
        return bool(ld.authorizer.authorize(subject, "view_snapshot", camera_id))

    return StreamingResponse(
        ld.events.stream(visible, last),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
