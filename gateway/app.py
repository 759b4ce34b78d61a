"""The FastAPI application factory: ``create_app(settings, ...)`` wires collaborators together."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
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
    events,
    health,
    incidents,
    sessions,
    snapshots,
    vehicles,
    whep,
)
from gateway.settings import Settings

__all__ = ["build_container", "create_app"]

log = logging.getLogger(__name__)

Startup = Callable[[Liandong], Awaitable[Callable[[], Awaitable[None]] | None]]


def build_container(settings: Settings) -> Liandong:
    """Build the default collaborators from settings (SQLite under the data dir, in-process state)."""
    from acl.service import build_acl
    from camera_registry.store import CameraStore
    from storage.db import Database
    from storage.secretbox import SecretBox

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url, echo=settings.database.echo)
    box = SecretBox.from_data_dir(settings.data_dir)
    store = CameraStore(db, box)
    acl = build_acl(settings, db, store)
    ld = Liandong(settings=settings, db=db, box=box, store=store, authorizer=acl, audit=acl.audit)
    _attach_media(ld)
    acl.attach(ld)
    _attach_positions(ld, acl)
    return ld


def _attach_positions(ld: Liandong, acl: Any) -> None:
    """Vehicle positions (nearest cameras, the location rule), live events, and alarms/incidents."""
    from camera_registry.positions import PositionService
    from camera_registry.vehicle_index import MemoryVehicleIndex, RedisVehicleIndex, VehicleIndex
    from gateway.alarms.ports import AclOrganisation
    from gateway.alarms.service import AlarmService
    from gateway.events import LocalEventBus

    s = ld.settings
    index: VehicleIndex = MemoryVehicleIndex()
    if s.redis_url:
        import redis.asyncio

        index = RedisVehicleIndex(redis.asyncio.from_url(s.redis_url))
    ld.events = LocalEventBus(s.events.kept, s.events.heartbeat_s, s.events.queue)
    ld.positions = PositionService(
        s.vehicles, ld.store, s.acl.home_district, acl.inside_district, index=index, on_fix=acl.update_vehicle_position
    )

    async def camera_offline(camera_id: str) -> bool:
        try:
            return bool((await ld.store.get(camera_id)).status.value == "offline")
        except LookupError:
            return True

    ld.alarms = AlarmService(
        s.alarms,
        ld.db,
        ld.box,
        positions=ld.positions,
        org=AclOrganisation(acl),
        grants=acl,
        hub=ld.hub,
        events=ld.events,
        audit=ld.audit,
        camera_offline=camera_offline,
    )
    ld.positions.on_moved = ld.alarms.vehicle_moved  # follow mode
    ld.on_token_revoked.append(ld.events.end_for_token)

    async def reload() -> None:
        await ld.positions.load()

    ld.on_inventory_changed.append(reload)

    async def start(_ld: Liandong) -> Callable[[], Awaitable[None]]:
        await ld.positions.load()
        stop_alarms = await ld.alarms.start()

        async def stop() -> None:
            await stop_alarms()
            await ld.positions.close()

        return stop

    ld.extras.setdefault("startups", []).append(start)


def _attach_media(ld: Liandong) -> None:
    """The stream hub, the session registry and WebRTC, with their hooks and shutdown."""
    from gateway.hub import StreamHub
    from gateway.sessions import SessionRegistry
    from gateway.webrtc.whep import WhepService

    ld.hub = StreamHub(ld.settings.hub, ld.store.open_url, ld.metrics)
    ld.sessions = SessionRegistry(ld.audit, on_change=lambda proto, n: ld.metrics.sessions.labels(proto).set(n))
    ld.whep = WhepService(ld.hub, ld.sessions, ld.settings.webrtc, ld.metrics)
    ld.extras.setdefault("session_terminators", []).append(ld.sessions)
    ld.snapshots = _snapshot_service(ld)

    async def camera_removed(camera_id: str) -> None:
        await ld.sessions.end_for_camera(camera_id, "camera deleted")
        await ld.hub.end_camera(camera_id, "camera deleted")
        await ld.snapshots.forget(camera_id)

    async def token_revoked(token_id: int) -> None:
        await ld.sessions.end_for_token(token_id, "login ended")

    ld.on_camera_removed.append(camera_removed)
    ld.on_token_revoked.append(token_revoked)

    async def start(_ld: Liandong) -> Callable[[], Awaitable[None]]:
        ld.snapshots.start()

        async def stop() -> None:
            await ld.snapshots.close()
            await ld.sessions.close()
            await ld.hub.close()

        return stop

    ld.extras.setdefault("startups", []).append(start)


def _snapshot_service(ld: Liandong) -> Any:
    from snapshot.cache import MemoryCache, RedisCache, SnapshotCache
    from snapshot.service import SnapshotService

    cache: SnapshotCache = MemoryCache()
    if ld.settings.redis_url:
        import redis.asyncio

        cache = RedisCache(redis.asyncio.from_url(ld.settings.redis_url))
    return SnapshotService(ld.settings.snapshot, ld.hub, ld.store.open_url, ld.db, cache)


def create_app(settings: Settings, *, container: Liandong | None = None, migrate: bool = True) -> FastAPI:
    """The gateway app. ``container`` replaces the default collaborators (tests pass their own)."""
    ld = container or build_container(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if migrate:
            import asyncio

            await asyncio.to_thread(ld.db.migrate)
        stops: list[Callable[[], Awaitable[None]]] = []
        for start in ld.extras.get("startups", []):
            stop = await start(ld)
            if stop is not None:
                stops.append(stop)
        try:
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
    )
    app.state.ld = ld
    _install_middleware(app, ld)
    _install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(cameras.router)
    app.include_router(whep.router)
    app.include_router(sessions.router)
    app.include_router(acl_admin.router)
    app.include_router(acl_preview.router)
    app.include_router(audit.router)
    app.include_router(snapshots.router)
    app.include_router(vehicles.router)
    app.include_router(alarms.router)
    app.include_router(incidents.router)
    app.include_router(events.router)
    for router in ld.extras.get("routers", []):
        app.include_router(router)
    _mount_web(app)
    return app


def _mount_web(app: FastAPI) -> None:
    from web.routes import router as web_router

    app.include_router(web_router)


def _install_middleware(app: FastAPI, ld: Liandong) -> None:
    max_body = ld.settings.server.max_body_bytes

    @app.middleware("http")
    async def request_context(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        rid = request.headers.get("x-request-id", "")
        if not (0 < len(rid) <= 64 and rid.replace("-", "").isalnum()):
            rid = uuid.uuid4().hex[:16]
        token = REQUEST_ID.set(rid)
        started = time.perf_counter()
        try:
            length = request.headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > max_body):
                response: Response = JSONResponse(
                    {"detail": f"request body larger than {max_body} bytes"}, status_code=413
                )
            else:
                response = await call_next(request)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, redact(request.url.path))
            response = JSONResponse({"detail": "internal error", "request_id": rid}, status_code=500)
        finally:
            REQUEST_ID.reset(token)
        route = request.scope.get("route")
        label = getattr(route, "path", "unmatched")
        ld.metrics.http_requests.labels(request.method, label, str(response.status_code)).inc()
        ld.metrics.http_latency.labels(label).observe(time.perf_counter() - started)
        response.headers["X-Request-ID"] = rid
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Never echo the rejected input: it may hold a camera password or other secrets.
        errors: list[dict[str, Any]] = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form")]
            errors.append({"field": ".".join(loc) or "body", "message": redact(str(err.get("msg", "invalid")))})
        return JSONResponse({"detail": errors}, status_code=422)

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
