"""The composition root: every part of a gateway node, built from its settings in dependency order
and joined through constructors and the hooks written here, and nowhere else.

Read top to bottom, :func:`build_services` is the house: storage, the camera registry, the audit,
the viewing policy, identity, the stream core and its outputs (WebRTC, HLS, snapshots), events,
positions and alarms, and the cluster when one is configured. Its last lines set the start-up
order (the policy first; shutdown runs in the reverse order). :func:`create_app` wraps the result
in the HTTP app with the consoles' routers; only this module and the CLI import every package.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI

from acl.audit import AuditLog, audit_key
from acl.digest import DigestPasswords
from acl.identity import LoginThrottle, Passwords, StreamTokens, Subject, TokenService
from acl.models import Role
from acl.revocation import EdgeClaim, LocalEdgeClaim
from acl.service import AclService, build_acl
from acl.sessions import SessionTerminator
from camera_registry.egress import CameraNetworks
from camera_registry.opener import CheckedOpener
from camera_registry.positions import PositionService
from camera_registry.store import CameraStore
from camera_registry.vehicle_index import Fix, MemoryVehicleIndex, RedisVehicleIndex, VehicleIndex
from gateway.alarms.notify_wiring import build_notices
from gateway.alarms.photos import PhotoStore
from gateway.alarms.ports import AclOrganisation
from gateway.alarms.service import AlarmService
from gateway.app import http_app
from gateway.auth import Authenticator
from gateway.container import Liandong, Startup, Stop
from gateway.events import EventBus, LocalEventBus
from gateway.hls.service import HlsService
from gateway.metrics import Metrics
from gateway.refusals import RefusalAudit
from gateway.sessions import SessionRegistry
from gateway.settings import Settings
from gateway.webrtc.whep import WhepService
from snapshot.cache import MemoryCache, RedisCache, SnapshotCache
from snapshot.cold import ColdFrame
from snapshot.render import decode_keyframe
from snapshot.service import SnapshotService
from storage.db import Database
from storage.secretbox import SecretBox
from streams import LocalOwnership, Ownership, RtspUpstream, StreamFeeds, StreamHub, Upstream, UpstreamFactory
from streams.ports import UpstreamCallbacks, UpstreamTimeouts

if TYPE_CHECKING:
    from gateway.cluster.node import FixOutbox
    from gateway.cluster.ownership import CameraOwnership

__all__ = ["build_services", "create_app"]

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, migrate: bool = True) -> FastAPI:
    """The gateway app for ``settings``: every part built here, the consoles' pages and data, the
    API docs and, in a cluster, the cluster's status routes."""
    from web.docs import router as docs_router
    from web.routes import router as web_router

    ld = build_services(settings)
    routers: list[APIRouter] = [web_router, docs_router]
    if ld.cluster is not None:
        from gateway.cluster.routes import router as cluster_router

        routers.insert(0, cluster_router)
    return http_app(ld, routers, migrate=migrate)


def build_services(settings: Settings) -> Liandong:
    """Every part of a node, in dependency order (SQLite under the data dir and in-process state
    unless the settings name PostgreSQL, Redis or a cluster)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url, echo=settings.database.echo)
    box = SecretBox.from_data_dir(settings.data_dir)
    store = CameraStore(db, box, _camera_networks(settings))
    audit = AuditLog(db, audit_key(box))

    # A cluster's Redis client: camera leases, the window-edge claim, the control bus, events.
    cluster_client = None
    if settings.cluster.enabled:
        from gateway.cluster.node import redis_client

        assert settings.cluster.redis_url is not None
        cluster_client = redis_client(settings.cluster.redis_url)

    # The viewing policy ends streams in the session holders the media parts add below.
    session_holders: list[SessionTerminator] = []
    acl = build_acl(
        settings.acl, db, store, audit, sessions=session_holders, edges=_edge_claim(settings, cluster_client)
    )

    a = settings.auth
    tokens = TokenService()
    stream_tokens = StreamTokens(box.derive_key("stream-tokens"), a.stream_token_ttl_s)
    auth = Authenticator(
        db,
        tokens,
        stream_tokens,
        a.cookie_name,
        acl.decider.departments_of,
        login_cache_s=a.login_cache_s,
        login_cache_size=a.login_cache_size,
    )
    ld = Liandong(
        settings=settings,
        db=db,
        box=box,
        store=store,
        authorizer=acl.decider,
        acl=acl,
        audit=audit,
        metrics=Metrics(),
        passwords=Passwords(a.login_verify_concurrency, a.login_verify_queue),
        tokens=tokens,
        throttle=LoginThrottle(
            a.login_max_failures, a.login_window_s, delay_s=a.login_delay_s, delay_max_s=a.login_delay_max_s
        ),
        stream_tokens=stream_tokens,
        auth=auth,
        refusals=RefusalAudit(audit, a.refusal_window_s, a.refusal_addresses),
        session_terminators=session_holders,
    )
    # The truck location rule is never silently off: /readyz reports why it cannot work.
    ld.readiness.append(acl.location.problem)
    ld.location = acl.location
    # First: an ended login is refused before the other hooks end its streams (relayed to the
    # other nodes of a cluster with the rest).
    ld.on_token_revoked.append(auth.forget_token)

    ownership: Ownership = LocalOwnership()
    cluster_ownership = None
    if cluster_client is not None:
        cluster_ownership = _cluster_leases(ld, cluster_client)
        ownership = cluster_ownership
    outbox = None
    if cluster_ownership is not None:
        from gateway.cluster.node import FixOutbox

        outbox = FixOutbox()
    start_media = _media(ld, ownership)
    start_rtsp = _rtsp_out(ld, acl)
    start_cascade = _cascade(ld, acl)
    start_acl = _acl_hooks(ld, acl)
    start_positions = _positions_and_alarms(ld, acl, ownership, outbox)
    start_recording = _recording(ld, acl)
    start_ptz = _ptz(ld, acl, cluster_client)
    start_cluster: Startup | None = None
    if cluster_client is not None and cluster_ownership is not None and outbox is not None:
        # Last: it relays the hooks every other part has added by now.
        start_cluster = _cluster(ld, acl, cluster_client, cluster_ownership, outbox)

    # Start-up in this order, shutdown in the reverse: refusal accounting first (it writes its open
    # windows last), then the policy (nothing serves before it is loaded), the cluster (leases),
    # the events between nodes, the media parts (they stop before the leases go), positions and alarms.
    ld.startups = [
        _refusals_start(ld.refusals),
        start_acl,
        *([start_cluster] if start_cluster is not None else []),
        _events_start(ld.events),
        start_media,
        start_rtsp,
        start_cascade,
        start_positions,
        start_recording,
        start_ptz,
    ]
    return ld


def _camera_networks(settings: Settings) -> CameraNetworks:
    """The boundary of camera URLs (``cameras.allowed_networks``); without one, say so at startup."""
    if not settings.cameras.allowed_networks:
        log.warning(
            "cameras.allowed_networks is empty: camera URLs may lead to any host, internal services included "
            "(set it to the camera networks' CIDRs)"
        )
    return CameraNetworks(settings.cameras.allowed_networks)


def _edge_claim(settings: Settings, cluster_client: Any) -> EdgeClaim:
    """Which node announces a validity-window edge: this one alone, or the first of the cluster's
    nodes to claim it on Redis."""
    if cluster_client is None:
        return LocalEdgeClaim()
    from gateway.cluster.edges import RedisEdgeClaim
    from gateway.cluster.node import node_identity

    return RedisEdgeClaim(cluster_client, node_identity(settings)[0], settings.cluster.redis_timeout_s)


def _cluster_leases(ld: Liandong, client: Any) -> CameraOwnership:
    """The camera leases of a cluster node, and what a lost, paused or confirmed-again lease does
    to the node's media (``ld.hub`` and ``ld.sessions`` are built by the time a lease changes)."""
    from gateway.cluster.node import cluster_ownership

    async def lost(camera_id: str, reason: str) -> None:
        # Viewers reconnect (the console retries) and are redirected to the new owner.
        await ld.sessions.end_for_camera(camera_id, f"camera moved to another node: {reason}")
        await ld.hub.end_camera(camera_id, reason)

    # Redis unreachable: pause the pull (this node can no longer prove it owns the camera) but keep
    # the viewers connected; when Redis confirms the lease again the pull resumes, and when another
    # node took the camera meanwhile (a partition, not an outage) the viewers are sent there.
    def suspend(camera_id: str, reason: str) -> None:
        ld.hub.suspend(camera_id, reason)

    async def resume(camera_id: str) -> bool:
        return bool(await ld.hub.resume(camera_id))

    return cluster_ownership(ld.settings, client, on_lost=lost, on_suspend=suspend, on_resume=resume)


def _cluster(ld: Liandong, acl: AclService, client: Any, ownership: CameraOwnership, outbox: FixOutbox) -> Startup:
    """This node in the cluster: changes made here are stored first, then announced; other nodes
    reload from the database or run their own hooks when they hear of them."""
    from gateway.cluster.node import ClusterNode

    async def reload_policy(reason: str, inventory: bool) -> int:
        return await acl.changes.reload(reason, inventory=inventory)

    node = ClusterNode(
        ld.settings,
        client,
        ownership,
        ld.sessions,
        ld.metrics.registry,
        reload_policy=reload_policy,
        fixes_heard=lambda fixes: ld.positions.heard_elsewhere(Fix(*f) for f in fixes),
        outbox=outbox,
        latest_fixes=ld.positions.index.latest_fixes,
        watched_trucks=acl.location.foreign_trucks,
        truck_position=acl.location.update_vehicle_position,
    )
    ld.cluster = node
    acl.notices.on_stored.append(node.policy_stored)
    ld.on_inventory_changed.append(node.relay("inventory", ld.on_inventory_changed))
    ld.on_camera_removed.append(node.relay("camera_removed", ld.on_camera_removed, "camera_id"))
    ld.on_token_revoked.append(node.relay("token_revoked", ld.on_token_revoked, "token_id"))
    return node.start


def _events_start(events: EventBus) -> Startup:
    async def start() -> Stop:
        await events.start()
        return events.stop

    return start


def _refusals_start(refusals: RefusalAudit) -> Startup:
    async def start() -> Stop:
        refusals.start()
        return refusals.close

    return start


def _acl_hooks(ld: Liandong, acl: AclService) -> Startup:
    """The policy's hooks into the rest: logins checked again after a reload, consoles told of
    changes, inventory changes; and its start."""
    acl.notices.on_reloaded.append(ld.auth.forget_logins)
    ld.on_inventory_changed.append(acl.changes.inventory_changed)

    def tell_consoles(revision: int, users: frozenset[int] | None) -> None:
        # The consoles of the users it reaches refresh their own (server-filtered) camera lists;
        # the others learn nothing of it. Policy editors' and auditors' consoles follow every change.
        if users is None:
            ld.events.publish("policy.changed", {"revision": revision}, everyone=True)
        else:
            readers = (Role.security_admin.value, Role.auditor.value)
            ld.events.publish("policy.changed", {"revision": revision}, users=sorted(users), roles=readers)

    acl.notices.on_policy_changed.append(tell_consoles)

    async def start() -> Stop:
        await acl.start()
        return acl.stop

    return start


def _media(ld: Liandong, ownership: Ownership) -> Startup:
    """The stream core and its outputs: the hub, feeds, viewer sessions, WebRTC, HLS, snapshots."""
    s = ld.settings
    # Every camera connection is checked against cameras.allowed_networks after DNS (the store's).
    opener = CheckedOpener(ld.store.networks)
    factory: UpstreamFactory = partial(RtspUpstream, opener=opener)
    if s.gb28181.enabled:
        # GB/T 28181 channels (gb28181:// sources) are one more upstream kind; nothing above the hub knows.
        from gb28181.metrics import SipCollector
        from gb28181.node import Gb28181Node

        ld.gb28181 = Gb28181Node(s.gb28181, ld.store, ld.inventory_changed)
        if s.cluster.enabled:
            log.warning(
                "gb28181 on a cluster node: devices register to this node only, and a channel leased to another"
                " node cannot be INVITEd there (docs/gb28181.md, Several nodes); enable gb28181 on one node"
            )
        ld.metrics.registry.register(SipCollector(ld.gb28181.server))
        factory = partial(
            _by_scheme, rtsp=factory, gb28181=partial(ld.gb28181.upstream, transport=s.gb28181.media_transport)
        )
    ld.hub = StreamHub(
        s.hub,
        ld.store.open_url,
        ld.metrics,
        upstream_factory=factory,
        ownership=ownership,
    )
    ld.media = StreamFeeds(ld.hub, s.hub, s.transcoder, ld.store.get, ld.metrics)
    ld.sessions = SessionRegistry(
        ld.audit,
        on_change=lambda proto, n: ld.metrics.sessions.labels(proto).set(n),
        max_per_user=s.sessions.max_per_user,
        max_transcodes_per_user=s.sessions.max_transcodes_per_user,
    )
    ld.whep = WhepService(ld.media, ld.sessions, s.webrtc, ld.metrics, bind_host=s.server.host)
    ld.hls = HlsService(ld.media, ld.sessions, s.hls, ld.metrics, s.webrtc.open_timeout_s)
    ld.auth.session_keys = ld.hls.subject_for
    ld.hub.on_live.append(ld.hls.on_camera_live)
    ld.session_terminators.append(ld.sessions)
    ld.snapshots = _snapshots(ld)

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

    async def start() -> Stop:
        ld.snapshots.start()
        ld.hls.start()
        if ld.gb28181 is not None:
            await ld.gb28181.start()

        async def stop() -> None:
            if ld.gb28181 is not None:
                await ld.gb28181.stop()
            await ld.snapshots.close()
            await ld.sessions.close()
            await ld.hls.close()
            await ld.media.close()
            await ld.hub.close()

        return stop

    return start


def _by_scheme(
    camera_id: str,
    url: str,
    loop: asyncio.AbstractEventLoop,
    *,
    callbacks: UpstreamCallbacks,
    timeouts: UpstreamTimeouts,
    rtsp: UpstreamFactory,
    gb28181: UpstreamFactory,
) -> Upstream:
    """The upstream kind a camera's source URL names: ``gb28181://`` channels, else RTSP."""
    make = gb28181 if url.startswith("gb28181://") else rtsp
    return make(camera_id, url, loop, callbacks=callbacks, timeouts=timeouts)


def _rtsp_out(ld: Liandong, acl: AclService) -> Startup:
    """RTSP out (``rtsp_out``): Digest passwords derived from logins, the policy's gate, and the
    server reading the hub and registering its sessions with the others (so revocations end them)."""
    from gateway.policy.rtsp import RtspGate
    from gateway.rtsp.server import RtspServer

    s = ld.settings
    ld.rtsp_passwords = DigestPasswords(ld.box.derive_key("rtsp-digest"))
    if not s.rtsp_out.enabled:

        async def off() -> None:
            return None

        return off
    gate = RtspGate(
        ld.db,
        ld.rtsp_passwords,
        acl.decider.departments_of,
        acl.decider,
        ld.audit,
        ld.refusals,
        ld.metrics,
        realm=s.rtsp_out.realm,
        nonce_key=ld.box.derive_key("rtsp-nonce"),
        nonce_ttl_s=s.rtsp_out.nonce_ttl_s,
    )
    server = ld.rtsp = RtspServer(s.rtsp_out, s.server.host, gate, ld.hub, ld.sessions)

    async def start() -> Stop:
        await server.start()
        return server.close

    return start


def _cascade(ld: Liandong, acl: AclService) -> Startup:
    """The GB/T 28181 cascade (``gb28181.superiors``): registered to each superior, its catalog and
    INVITEs decided by the policy's gate, its streams hub readers in the session registry (so
    revocations and admins end them), its catalog notified after every policy change."""
    s = ld.settings

    async def off() -> None:
        return None

    if not s.gb28181.superiors:
        return off
    from gateway.cascade import GatewayShare
    from gateway.policy.cascade import CascadeGate
    from gb28181.cascade import Cascade
    from gb28181.metrics import CascadeCollector

    if s.cluster.enabled:
        log.warning(
            "gb28181.superiors on a cluster node: each node registers to the superiors itself; configure them on"
            " one node only (docs/cascade.md, Not done yet)"
        )
    gate = CascadeGate(acl.decider, ld.audit, ld.metrics)
    cascade = ld.cascade = Cascade(s.gb28181, GatewayShare(s.gb28181, gate, ld.store, ld.hub, ld.sessions))
    ld.metrics.registry.register(CascadeCollector(cascade))
    notifying: set[asyncio.Task[None]] = set()

    def notify(*_: object) -> None:
        task = asyncio.get_running_loop().create_task(cascade.policy_changed())
        notifying.add(task)
        task.add_done_callback(notifying.discard)

    acl.notices.on_policy_changed.append(notify)

    async def inventory_changed() -> None:
        notify()

    async def start() -> Stop:
        # Added at start, after the policy's own hook: the catalog is read once dynamic groups follow.
        ld.on_inventory_changed.append(inventory_changed)
        await cascade.start()
        return cascade.stop

    return start


def _snapshots(ld: Liandong) -> SnapshotService:
    cache: SnapshotCache = MemoryCache()
    if ld.settings.shared_redis_url:
        import redis.asyncio

        cache = RedisCache(redis.asyncio.from_url(ld.settings.shared_redis_url))

    async def through_hub(camera_id: str) -> ColdFrame:
        # A cold thumbnail of a source FFmpeg cannot open (a GB/T 28181 channel): one short hub reader.
        feed = await ld.media.attach(camera_id, "snapshot")
        try:
            while not (unit := await feed.reader.get()).keyframe:
                pass
            info = ld.hub.info(camera_id)
            image = await asyncio.to_thread(decode_keyframe, info.codec if info else "h264", unit.data)
            return ColdFrame(image, unit.wallclock)
        finally:
            feed.detach("snapshot taken")

    return SnapshotService(
        ld.settings.snapshot, ld.hub, ld.store.open_url, ld.db, cache, networks=ld.store.networks,
        through_hub=through_hub,
    )  # fmt: skip


def _ptz(ld: Liandong, acl: AclService, cluster_client: Any) -> Startup:
    """PTZ: holders and incident locks (on Redis in a cluster: one holder across nodes), unit
    priorities from the policy's departments, drivers behind cameras.allowed_networks; a login's
    end stops its moves, an incident's close lifts its locks."""
    from camera_registry.ptz_endpoints import PtzEndpoints
    from gateway.policy.ptz import UnitRank, lock_admits, rank_of
    from gateway.ptz.drivers import driver_factory
    from gateway.ptz.holds import LocalPtzHolds, PtzHolds
    from gateway.ptz.service import PtzService

    s = ld.settings.ptz
    holds: PtzHolds = LocalPtzHolds()
    node = ""
    if cluster_client is not None:
        from gateway.cluster.node import node_identity
        from gateway.cluster.ptz_holds import RedisPtzHolds

        holds, node = RedisPtzHolds(cluster_client), node_identity(ld.settings)[0]

    def rank(subject: Subject) -> UnitRank:
        st = acl.decider.state
        return rank_of(subject, st.departments if st is not None else {}, s)

    ld.ptz = PtzService(
        s,
        PtzEndpoints(ld.db, ld.box, ld.store.networks),
        holds,
        ld.audit,
        rank_of=rank,
        lock_admits=lock_admits,
        connect=driver_factory(ld.store.networks, s.onvif_timeout_s),
        node=node,
    )
    ld.on_token_revoked.append(ld.ptz.end_for_token)
    tasks: set[asyncio.Task[int]] = set()

    def incident_closed(inc: Any) -> None:
        t = asyncio.get_running_loop().create_task(ld.ptz.unlock_incident("system", inc.id, list(inc.cameras)))
        tasks.add(t)
        t.add_done_callback(tasks.discard)

    ld.alarms.incidents.on_closed.append(incident_closed)

    async def start() -> Stop:
        ld.ptz.start()
        return ld.ptz.close

    return start


def _events(settings: Settings, acl: AclService, ownership: Ownership) -> EventBus:
    """Live events for the consoles: in process, or a Redis stream shared by the cluster's nodes
    (which renders an event by a policy at least as new as its publisher's, and removes the
    consumer groups of nodes whose leases stopped heartbeating)."""
    s = settings
    if not s.cluster.redis_url:
        return LocalEventBus(s.events.kept, s.events.heartbeat_s, s.events.queue)
    from gateway.cluster.events import RedisEventBus
    from gateway.cluster.node import node_identity, redis_client
    from gateway.cluster.ownership import CameraOwnership

    assert isinstance(ownership, CameraOwnership)

    def revision() -> int:
        return int(acl.decider.state.revision) if acl.decider.state is not None else 0

    async def catch_up() -> None:
        await acl.changes.reload("an event needs a newer policy")

    return RedisEventBus(
        redis_client(s.cluster.redis_url),
        group=node_identity(s)[0],
        keep=s.events.kept,
        stream_keep=s.cluster.events_kept,
        heartbeat_s=s.events.heartbeat_s,
        queue=s.events.queue,
        group_idle_s=s.cluster.event_group_idle_s,
        policy_revision=revision,
        catch_up=catch_up,
        heartbeating=ownership.heartbeating,
    )


def _positions_and_alarms(ld: Liandong, acl: AclService, ownership: Ownership, outbox: FixOutbox | None) -> Startup:
    """Vehicle positions (nearest cameras, the location rule; in a cluster the fixes taken in here
    go to the other nodes through ``outbox``), live events, and alarms/incidents."""
    s = ld.settings
    index: VehicleIndex = MemoryVehicleIndex()
    if s.shared_redis_url:
        import redis.asyncio

        index = RedisVehicleIndex(redis.asyncio.from_url(s.shared_redis_url))
    ld.events = _events(s, acl, ownership)
    ld.positions = PositionService(
        s.vehicles,
        ld.store,
        s.acl.home_district,
        acl.location.inside_district,
        index=index,
        on_fix=acl.location.update_vehicle_position,
        on_taken=outbox.taken if outbox is not None else None,
    )

    async def camera_offline(camera_id: str) -> bool:
        try:
            return bool((await ld.store.get(camera_id)).status.value == "offline")
        except LookupError:
            return True

    # Case notifications: written into the outbox with each step, delivered by the worker.
    notice_outbox, ld.notices, start_notices = build_notices(s.alarms.notify, ld.db, ld.box)
    ld.alarms = AlarmService(
        s.alarms,
        ld.db,
        ld.box,
        positions=ld.positions,
        org=AclOrganisation(acl.decider),
        grants=acl.changes,
        hub=ld.hub,
        events=ld.events,
        audit=ld.audit,
        camera_offline=camera_offline,
        outbox=notice_outbox,
        notices_written=ld.notices.wake,
        photos=PhotoStore(s.data_dir / "cases", s.alarms.attachment_max_bytes),
    )
    ld.positions.on_moved = ld.alarms.vehicle_moved  # follow mode
    ld.on_token_revoked.append(ld.events.end_for_token)

    async def reload() -> None:
        await ld.positions.load()

    ld.on_inventory_changed.append(reload)

    async def start() -> Stop:
        await ld.positions.load()
        stop_alarms = await ld.alarms.start()
        stop_notices = await start_notices()

        async def stop() -> None:
            await stop_notices()
            await stop_alarms()
            await ld.positions.close()

        return stop

    return start


def _recording(ld: Liandong, acl: AclService) -> Startup:
    """Evidence recording: a recorder reading the camera hub, the index, playback and signed exports;
    incidents' cameras are recorded from the alarm (with the hub's GOP as pre-roll) until they close."""
    from sqlalchemy import select

    from gateway.alarms.incidents import OPEN_STATES
    from gateway.alarms.models import Incident
    from gateway.cluster.node import node_identity
    from recording.index import RecordingIndex
    from recording.library import RecordingLibrary
    from recording.locks import Locks
    from recording.preroll import PreRoll
    from recording.recorder import Recorder
    from recording.retention import Retention
    from recording.signing import EvidenceKey

    s = ld.settings
    node = node_identity(s)[0]  # the index names the node that holds the files
    index = RecordingIndex(ld.db, s.recording.root(s.data_dir), node)

    def publish(type_: str, data: dict[str, Any], cameras: list[str]) -> None:
        for c in cameras:  # on /metrics too: a paused camera is 1 until it resumes
            ld.metrics.recording_paused.labels(c).set(1 if type_ == "recording.paused" else 0)
        ld.events.publish(type_, data, cameras=cameras)

    preroll = PreRoll(s.recording.pre_roll_s if s.recording.enabled else 0.0, ld.hub)
    ld.hub.on_live.append(preroll.camera_live)
    ld.recorder = Recorder(
        s.recording, ld.hub, index, publish, open_timeout_s=s.hub.open_timeout_s + 2, preroll=preroll
    )
    ld.recordings = RecordingLibrary(index, EvidenceKey(s.data_dir / "keys"), node, Locks(ld.db))
    retention = Retention(
        s.recording, index, ld.recorder, ld.recordings.locks, lambda group: acl.decider.index.members(f"group:{group}")
    )
    ld.alarms.on_cameras.append(ld.recorder.incident_cameras)
    ld.alarms.incidents.on_closed.append(lambda inc: ld.recorder.incident_closed(inc.id))

    async def start() -> Stop:
        await ld.recorder.start()
        # Incidents still open when the gateway stopped go on being recorded.
        async with ld.db.session() as session:
            for inc in await session.scalars(select(Incident).where(Incident.state.in_(OPEN_STATES))):
                ld.recorder.incident_cameras(inc.id, list(inc.cameras))
        await retention.start()

        async def stop() -> None:
            await retention.close()
            await ld.recorder.close()
            await preroll.close()

        return stop

    return start
