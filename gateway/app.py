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

from acl.audit import AuditLog, audit_key
from acl.models import Role
from acl.revocation import EdgeClaim, LocalEdgeClaim
from acl.service import AclService, build_acl
from acl.sessions import SessionTerminator
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
    hls,
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
    from camera_registry.store import CameraStore
    from storage.db import Database
    from storage.secretbox import SecretBox

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url, echo=settings.database.echo)
    box = SecretBox.from_data_dir(settings.data_dir)
    store = CameraStore(db, box, _camera_networks(settings))
    audit = AuditLog(db, audit_key(box))
    # The ACL ends streams in these session holders; the media parts add theirs below.
    session_holders: list[SessionTerminator] = []
    edges, cluster_client = _window_edge_claim(settings)
    acl = build_acl(settings.acl, db, store, audit, sessions=session_holders, edges=edges)
    ld = Liandong(settings=settings, db=db, box=box, store=store, authorizer=acl.decider, acl=acl, audit=audit)
    ld.extras["session_terminators"] = session_holders
    _attach_media(ld)
    _wire_acl(ld, acl)
    _attach_positions(ld, acl)
    if settings.cluster.enabled:
        from gateway.cluster.node import attach_cluster

        attach_cluster(ld, acl, client=cluster_client)
    return ld


def _window_edge_claim(settings: Settings) -> tuple[EdgeClaim, Any]:
    """Which node announces a validity-window edge: this one alone, or the first of the cluster's
    nodes to claim it on Redis; and the cluster's Redis client (None without a cluster)."""
    if settings.cluster.redis_url is None:
        return LocalEdgeClaim(), None
    from gateway.cluster.edges import RedisEdgeClaim
    from gateway.cluster.node import node_identity, redis_client

    client = redis_client(settings.cluster.redis_url)
    return RedisEdgeClaim(client, node_identity(settings)[0], settings.cluster.redis_timeout_s), client


def _wire_acl(ld: Liandong, acl: AclService) -> None:
    """The ACL's hooks into the gateway: departments for logins, logins checked again after a
    reload, consoles told of changes, inventory changes, and its start (before anything serves)."""
    assert ld.auth is not None
    ld.auth.departments_of = acl.decider.departments_of
    acl.notices.on_reloaded.append(ld.auth.forget_logins)
    ld.on_inventory_changed.append(acl.inventory_changed)

    def tell_consoles(revision: int, users: frozenset[int] | None) -> None:
        # The consoles of the users it reaches refresh their own (server-filtered) camera lists;
        # the others learn nothing of it. Policy editors' and auditors' consoles follow every change.
        if ld.events is None:
            return
        if users is None:
            ld.events.publish("policy.changed", {"revision": revision}, everyone=True)
        else:
            readers = (Role.security_admin.value, Role.auditor.value)
            ld.events.publish("policy.changed", {"revision": revision}, users=sorted(users), roles=readers)

    acl.notices.on_policy_changed.append(tell_consoles)

    async def start(_ld: Liandong) -> Callable[[], Awaitable[None]]:
        await acl.start()
        return acl.stop

    # The policy must be loaded before anything else starts serving.
    ld.extras.setdefault("startups", []).insert(0, start)


def _camera_networks(settings: Settings) -> Any:
    """The boundary of camera URLs (``cameras.allowed_networks``); without one, say so at startup."""
    from camera_registry.egress import CameraNetworks

    if not settings.cameras.allowed_networks:
        log.warning(
            "cameras.allowed_networks is empty: camera URLs may lead to any host, internal services included "
            "(set it to the camera networks' CIDRs)"
        )
    return CameraNetworks(settings.cameras.allowed_networks)


def _attach_positions(ld: Liandong, acl: AclService) -> None:
    """Vehicle positions (nearest cameras, the location rule), live events, and alarms/incidents."""
    from camera_registry.positions import PositionService
    from camera_registry.vehicle_index import MemoryVehicleIndex, RedisVehicleIndex, VehicleIndex
    from gateway.alarms.ports import AclOrganisation
    from gateway.alarms.service import AlarmService
    from gateway.events import LocalEventBus

    s = ld.settings
    index: VehicleIndex = MemoryVehicleIndex()
    if s.shared_redis_url:
        import redis.asyncio

        index = RedisVehicleIndex(redis.asyncio.from_url(s.shared_redis_url))
    ld.events = LocalEventBus(s.events.kept, s.events.heartbeat_s, s.events.queue)
    if s.cluster.redis_url:
        from gateway.cluster.events import RedisEventBus
        from gateway.cluster.node import node_identity, redis_client

        ld.events = RedisEventBus(
            redis_client(s.cluster.redis_url),
            group=node_identity(s)[0],
            keep=s.events.kept,
            stream_keep=s.cluster.events_kept,
            heartbeat_s=s.events.heartbeat_s,
            queue=s.events.queue,
            group_idle_s=s.cluster.event_group_idle_s,
        )
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
    from functools import partial

    from camera_registry.opener import CheckedOpener
    from gateway.hls.service import HlsService
    from gateway.sessions import SessionRegistry
    from gateway.webrtc.whep import WhepService
    from streams import RtspUpstream, StreamFeeds, StreamHub

    # Every camera connection is checked against cameras.allowed_networks after DNS (the store's).
    opener = CheckedOpener(ld.store.networks)
    ld.hub = StreamHub(
        ld.settings.hub, ld.store.open_url, ld.metrics, upstream_factory=partial(RtspUpstream, opener=opener)
    )
    ld.media = StreamFeeds(ld.hub, ld.settings.hub, ld.settings.transcoder, ld.store.get, ld.metrics)
    ld.sessions = SessionRegistry(
        ld.audit,
        on_change=lambda proto, n: ld.metrics.sessions.labels(proto).set(n),
        max_per_user=ld.settings.sessions.max_per_user,
    )
    ld.whep = WhepService(ld.media, ld.sessions, ld.settings.webrtc, ld.metrics, bind_host=ld.settings.server.host)
    ld.hls = HlsService(ld.media, ld.sessions, ld.settings.hls, ld.metrics, ld.settings.webrtc.open_timeout_s)
    assert ld.auth is not None
    ld.auth.session_keys = ld.hls.subject_for
    ld.hub.on_live.append(ld.hls.on_camera_live)
    ld.extras.setdefault("session_terminators", []).append(ld.sessions)
    ld.snapshots = _snapshot_service(ld)

    async def camera_removed(camera_id: str) -> None:
        await ld.sessions.end_for_camera(camera_id, "camera deleted")
        await ld.hls.end_camera(camera_id, "camera deleted")
        await ld.media.end_camera(camera_id, "camera deleted")
        await ld.hub.end_camera(camera_id, "camera deleted")
        await ld.snapshots.forget(camera_id)

    async def token_revoked(token_id: int) -> None:
        await ld.sessions.end_for_token(token_id, "login ended")

    ld.on_camera_removed.append(camera_removed)
    ld.on_camera_removed.append(ld.metrics.forget_camera)
    ld.on_token_revoked.append(token_revoked)

    async def start(_ld: Liandong) -> Callable[[], Awaitable[None]]:
        ld.snapshots.start()
        ld.hls.start()

        async def stop() -> None:
            await ld.snapshots.close()
            await ld.sessions.close()
            await ld.hls.close()
            await ld.media.close()
            await ld.hub.close()

        return stop

    ld.extras.setdefault("startups", []).append(start)


def _snapshot_service(ld: Liandong) -> Any:
    from snapshot.cache import MemoryCache, RedisCache, SnapshotCache
    from snapshot.service import SnapshotService

    cache: SnapshotCache = MemoryCache()
    if ld.settings.shared_redis_url:
        import redis.asyncio

        cache = RedisCache(redis.asyncio.from_url(ld.settings.shared_redis_url))
    return SnapshotService(ld.settings.snapshot, ld.hub, ld.store.open_url, ld.db, cache, networks=ld.store.networks)


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
        # FastAPI's pages load Swagger UI/ReDoc from a CDN with an inline script: web.docs serves them instead.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.ld = ld
    cluster = ld.extras.get("cluster")
    if cluster is not None and cluster.origins is not None:
        from gateway.cluster.cors import install_cors

        # A browser redirected from another node's console (inside request_context: ids, metrics).
        install_cors(app, cluster.origins)
    _install_middleware(app, ld)
    _install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(cameras.router)
    app.include_router(whep.router)
    app.include_router(hls.router)
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
    from web.docs import router as docs_router
    from web.routes import router as web_router

    app.include_router(web_router)
    app.include_router(docs_router)


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
