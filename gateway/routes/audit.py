"""The audit log for auditors: read, export, verify. Nothing here can change it."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from acl.models import Role
from gateway.container import services
from gateway.policy import require_roles

router = APIRouter(prefix="/api/audit", tags=["audit"])
AUDITORS = require_roles(Role.auditor)


@router.get("", dependencies=[AUDITORS])
async def list_audit(
    request: Request,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    user_id: int | None = None,
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
    incident_id: Annotated[str | None, Query(max_length=64)] = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Audit entries, newest first."""
    rows = await services(request).audit.query(
        kind=kind,
        user_id=user_id,
        camera_id=camera_id,
        incident_id=incident_id,
        since=since,
        until=until,
        offset=offset,
        limit=limit,
    )
    return [r.as_dict() for r in rows]


@router.get("/export.csv", dependencies=[AUDITORS])
async def export_csv(
    request: Request,
    since: dt.datetime | None = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    user_id: int | None = None,
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
    incident_id: Annotated[str | None, Query(max_length=64)] = None,
    until: dt.datetime | None = None,
) -> Response:
    """Entries as CSV, oldest first, with the same filters as the list."""
    text = await services(request).audit.export_csv(
        since, kind=kind, user_id=user_id, camera_id=camera_id, incident_id=incident_id, until=until
    )
    return Response(
        text, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": 'attachment; filename="audit.csv"'}
    )


@router.get("/verify", dependencies=[AUDITORS])
async def verify(request: Request) -> dict[str, Any]:
    """Check the hash chain; names the first broken entry."""
    r = await services(request).audit.verify()
    return {"ok": r.ok, "checked": r.checked, "first_broken_id": r.first_broken_id, "problem": r.problem}
