"""PTZ: a camera's capabilities, presets, position and holder; commands; incidents' PTZ locks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from acl.identity import Subject
from gateway.container import services
from gateway.policy.guards import incident_rules
from gateway.policy.ptz import lock_departments, require_ptz, require_ptz_lock
from gateway.ptz.commands import PtzCommand
from gateway.ptz.service import PtzRefused

router = APIRouter(tags=["ptz"])


class LockBody(BaseModel):
    """How long an incident locks its cameras' PTZ for its handling units."""

    model_config = ConfigDict(extra="forbid")
    minutes: int = Field(120, ge=1, le=7 * 24 * 60)


def _refused(e: PtzRefused) -> JSONResponse:
    return JSONResponse(e.body, status_code=e.status)


@router.get("/api/cameras/{camera_id}/ptz", dependencies=[require_ptz()], response_model=None)
async def ptz_status(request: Request, camera_id: str) -> dict[str, Any] | JSONResponse:
    """Capabilities, presets, the position where the camera reports it, who holds it, its lock."""
    subject: Subject = request.state.subject
    try:
        return await services(request).ptz.status(subject, camera_id)
    except PtzRefused as e:
        return _refused(e)


@router.post("/api/cameras/{camera_id}/ptz", dependencies=[require_ptz()], response_model=None)
async def ptz_command(request: Request, camera_id: str, body: PtzCommand) -> dict[str, Any] | JSONResponse:
    """One command (``continuous``, ``stop``, ``absolute``, ``relative``, ``home``, ``goto_preset``,
    ``set_preset``); 409 while another unit holds the camera (the body names it and the seconds left)."""
    subject: Subject = request.state.subject
    try:
        return await services(request).ptz.command(subject, camera_id, body)
    except PtzRefused as e:
        return _refused(e)


@router.delete("/api/cameras/{camera_id}/ptz/hold", dependencies=[require_ptz()])
async def ptz_release(request: Request, camera_id: str) -> dict[str, bool]:
    """Let go of the camera (a running move stops); a no-op if someone else holds it."""
    subject: Subject = request.state.subject
    return {"released": await services(request).ptz.release(subject, camera_id)}


@router.post("/api/ptz/locks/{incident_id}", dependencies=[require_ptz_lock()])
async def lock_incident(request: Request, incident_id: str, body: LockBody) -> dict[str, Any]:
    """Lock the incident's cameras' PTZ for its handling units until it closes (or ``minutes``)."""
    subject: Subject = request.state.subject
    inc = request.state.incident
    depts = lock_departments(incident_rules(request), inc)
    return await services(request).ptz.lock_incident(subject, incident_id, list(inc.cameras), depts, body.minutes)


@router.delete("/api/ptz/locks/{incident_id}", dependencies=[require_ptz_lock()])
async def unlock_incident(request: Request, incident_id: str) -> dict[str, int]:
    """Remove the incident's PTZ locks."""
    subject: Subject = request.state.subject
    inc = request.state.incident
    return {"unlocked": await services(request).ptz.unlock_incident(subject.username, incident_id, list(inc.cameras))}
