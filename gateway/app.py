"""The HTTP application: ``http_app(services, routers)`` builds the FastAPI app around the
collaborators the composition root (:mod:`gateway.wiring`) built: middleware, error replies, the
gateway's routers, and a lifespan that runs the services' start-ups in their order."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.container import Liandong
from gateway.logs import REQUEST_ID, redact
from gateway.routes import (
    acl_admin,
    acl_preview,
    alarms,
    audit,
    auth,
    cameras,
    cases,
    events,
    gb28181,
    health,
    hls,
    incidents,
    ptz,
    recordings,
    rtsp,
    sessions,
    snapshots,
    vehicles,
    whep,
)

__all__ = ["http_app"]

log = logging.getLogger(__name__)


def http_app(ld: Liandong, routers: Sequence[APIRouter] = (), *, migrate: bool = True) -> FastAPI:
    """The gateway's HTTP app around ``ld``, with ``routers`` (the consoles', the cluster's) after
    the gateway's own. Its lifespan migrates the database, runs ``ld.startups`` in their order and
    their stops in the reverse order."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if migrate:
            await asyncio.to_thread(ld.db.migrate)
        stops: list[Callable[[], Awaitable[None]]] = []
        try:
            for start in ld.startups:
                stop = await start()
                if stop is not None:
                    stops.append(stop)
            yield
        finally:
            for stop in reversed(stops):
                try:
                    await stop()
                except Exception:
                    log.exception("shutdown step failed")
            await ld.db.close()

    app = FastAPI(
        title="Liandong",
        version="0.1.0",
        description="Video-surveillance aggregation gateway and permissioned stream proxy.",
        lifespan=lifespan,
        # FastAPI's pages load Swagger UI/ReDoc from a CDN with an inline script: web.docs serves them instead.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.ld = ld
    if ld.cluster is not None and ld.cluster.origins is not None:
        from gateway.cluster.cors import install_cors

        # A browser redirected from another node's console (inside request_context: ids, metrics).
        install_cors(app, ld.cluster.origins)
    _install_middleware(app, ld)
    _install_error_handlers(app)
    for module in (
        health,
        auth,
        cameras,
        whep,
        hls,
        sessions,
        acl_admin,
        acl_preview,
        audit,
        snapshots,
        vehicles,
        alarms,
        cases,  # before incidents: its /api/incidents/{id}/photos is not a workflow step
        incidents,
        ptz,
        events,
        gb28181,
        rtsp,
        recordings,
    ):
        app.include_router(module.router)
    for router in routers:
        app.include_router(router)
    return app


def _install_middleware(app: FastAPI, ld: Liandong) -> None:
    from gateway.server import BodyLimit

    server = ld.settings.server
    # Inside request_context (added first = inner): its 413/408 replies are counted like any other.
    app.add_middleware(BodyLimit, max_bytes=server.max_body_bytes, idle_timeout_s=server.body_timeout_s)

    @app.middleware("http")
    async def request_context(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        rid = request.headers.get("x-request-id", "")
        if not (0 < len(rid) <= 64 and rid.replace("-", "").isalnum()):
            rid = uuid.uuid4().hex[:16]
        token = REQUEST_ID.set(rid)
        started = time.perf_counter()
        try:
            response: Response = await call_next(request)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, redact(request.url.path))
            response = JSONResponse({"detail": "internal error", "request_id": rid}, status_code=500)
        finally:
            REQUEST_ID.reset(token)
        # Labels from bounded sets only (gateway/metrics.py): a client's random method or path is no new series.
        ld.metrics.http_request(
            request.method, request.scope.get("route"), response.status_code, time.perf_counter() - started
        )
        response.headers["X-Request-ID"] = rid
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    if server.trusted_proxies:
        from gateway.proxy import ForwardedFor

        # Added last = outermost: everything inside sees the client behind the proxy (gateway/proxy.py).
        app.add_middleware(ForwardedFor, trusted=server.trusted_proxies)


_STORAGE_REPLIES = {
    "full": (507, "storage full: no space left for the gateway's database; nothing was written"),
    "read-only": (503, "storage read-only: the gateway's data dir cannot be written; nothing was written"),
    "io": (503, "storage error: the gateway's database could not be written (I/O error); nothing was written"),
    "busy": (503, "database busy: try again"),
}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Never echo the rejected input: it may hold a camera password or other secrets.
        errors: list[dict[str, Any]] = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form")]
            errors.append({"field": ".".join(loc) or "body", "message": redact(str(err.get("msg", "invalid")))})
        return JSONResponse({"detail": errors}, status_code=422)

    from sqlalchemy.exc import OperationalError

    from storage.db import storage_failure

    logged: dict[str, float] = {}  # kind -> when last logged: a full disk fails every write, once a minute is enough

    @app.exception_handler(OperationalError)
    async def storage_error(request: Request, exc: OperationalError) -> JSONResponse:
        # A full disk or a read-only data dir is an operator's problem, not a bug: say so (in the
        # log once a minute) and keep serving reads. The session rolled the transaction back.
        kind = storage_failure(exc)
        if kind is None:
            log.error("database error on %s %s", request.method, redact(request.url.path), exc_info=exc)
            return JSONResponse({"detail": "internal error", "request_id": REQUEST_ID.get()}, status_code=500)
        status, detail = _STORAGE_REPLIES[kind]
        now = time.monotonic()
        if now - logged.get(kind, -3600.0) >= 60:
            logged[kind] = now
            log.error("storage %s: %s (writes fail until it is fixed)", kind, getattr(exc, "orig", exc))
        return JSONResponse(
            {"detail": detail}, status_code=status, headers={"Retry-After": "5"} if status == 503 else {}
        )

    from acl.identity import PasswordsBusy

    @app.exception_handler(PasswordsBusy)
    async def passwords_busy(_request: Request, _exc: PasswordsBusy) -> JSONResponse:
        # Password hashing is bounded (acl.identity.Passwords): beyond its queue, come back shortly.
        return JSONResponse({"detail": "too many password operations at once; try again"}, 503, {"Retry-After": "1"})

    from camera_registry.vehicle_index import IndexUnavailable

    @app.exception_handler(IndexUnavailable)
    async def positions_unavailable(_request: Request, exc: IndexUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        headers = getattr(exc, "headers", None)
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=headers)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)
