"""GB/T 28181 for security admins: devices (which are registered or waiting, and accepting one:
its catalog then becomes cameras in the given area and department) and the cascade's superior
platforms (registration state, what is shared, their live INVITEs)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from acl.models import Role
from gateway.container import services
from gateway.policy import require_roles

router = APIRouter(tags=["gb28181"])
ADMIN = require_roles(Role.security_admin)
DeviceId = Annotated[str, Path(pattern=r"^[0-9]{20}$")]


class AcceptBody(BaseModel):
    """Where the accepted device's channels are placed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    area: str = Field("", max_length=64)
    department: str = Field("", max_length=64)


def _node(request: Request) -> Any:
    node = services(request).gb28181
    if node is None:
        raise HTTPException(404, "gb28181: not enabled on this gateway")
    return node


@router.get("/api/admin/gb28181/devices", dependencies=[ADMIN])
async def list_devices(request: Request) -> list[dict[str, Any]]:
    """Registered devices (online or offline) and devices waiting to be accepted."""
    return list(_node(request).devices())


@router.post("/api/admin/gb28181/devices/{device_id}/accept", dependencies=[ADMIN])
async def accept_device(request: Request, device_id: DeviceId, body: AcceptBody) -> dict[str, Any]:
    """Accept a device: its next REGISTER succeeds and its channels become cameras."""
    ld = services(request)
    was_waiting = _node(request).accept(device_id, body.area, body.department)
    await ld.audit.record("gb28181_device_accepted", subject=request.state.subject, detail=device_id)
    return {"device_id": device_id, "was_waiting": was_waiting, "area": body.area, "department": body.department}


@router.get("/api/admin/gb28181/superiors", dependencies=[ADMIN])
async def list_superiors(request: Request) -> list[dict[str, Any]]:
    """The superior platforms of the cascade: registered or not, how many cameras are shared with
    each, and its live INVITEs (each also a viewer session: ``DELETE /api/sessions/{id}`` ends it)."""
    cascade = services(request).cascade
    return cascade.status() if cascade is not None else []
