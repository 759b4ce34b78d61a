"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from gateway.container import services
from gateway.policy import public, require_roles

router = APIRouter(tags=["health"])


@router.get("/healthz", dependencies=[public()])
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", dependencies=[public()])
async def readyz(request: Request) -> JSONResponse:
    """The database answers and nothing keeps the node from doing its job (e.g. the truck location
    rule without a district polygon: ``problems``); 503 otherwise."""
    ld = services(request)
    try:
        async with ld.db.session() as s:
            await s.execute(text("SELECT 1"))
    except Exception:  # any database failure means not ready
        return JSONResponse({"status": "unavailable", "database": "error"}, status_code=503)
    problems = [p for check in ld.readiness if (p := check()) is not None]
    if problems:
        return JSONResponse({"status": "unavailable", "database": "ok", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/metrics", dependencies=[require_roles()], include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus metrics (admins and machine tokens of admins)."""
    return Response(generate_latest(services(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)
