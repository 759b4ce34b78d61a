"""The gateway's collaborators, built once from settings and handed to the app (no globals)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request

from acl.admin import PolicyAdmin
from acl.audit import AuditLog
from acl.authorizer import Authorizer
from acl.digest import DigestPasswords
from acl.identity import LoginThrottle, Passwords, StreamTokens, Subject, TokenService
from camera_registry.store import CameraStore
from gateway.auth import Authenticator
from gateway.metrics import Metrics
from gateway.refusals import RefusalAudit
from gateway.settings import Settings
from storage.db import Database
from storage.secretbox import SecretBox

if TYPE_CHECKING:
    from acl.location import LocationRule
    from acl.sessions import SessionTerminator
    from camera_registry.positions import PositionService
    from gateway.alarms.notices import NoticeWorker
    from gateway.alarms.service import AlarmService
    from gateway.cluster.node import ClusterNode
    from gateway.events import EventBus
    from gateway.hls.service import HlsService
    from gateway.ptz.service import PtzService
    from gateway.rtsp.server import RtspServer
    from gateway.sessions import SessionRegistry
    from gateway.webrtc.whep import WhepService
    from gb28181.cascade import Cascade
    from gb28181.node import Gb28181Node
    from recording.library import RecordingLibrary
    from recording.recorder import Recorder
    from snapshot.service import SnapshotService
    from streams import StreamFeeds, StreamHub

__all__ = ["Liandong", "Startup", "Stop", "services"]

log = logging.getLogger(__name__)


Hook = Callable[..., Awaitable[None]]
Stop = Callable[[], Awaitable[None]]
# A part's start: run in order at start-up; what it returns runs at shutdown, in the reverse order.
Startup = Callable[[], Awaitable[Stop | None]]


@dataclass
class Liandong:
    """Everything a request handler may need, reached as ``services(request)``."""

    settings: Settings
    db: Database
    box: SecretBox
    store: CameraStore
    authorizer: Authorizer
    acl: PolicyAdmin  # the viewing policy, for the security-admin routes
    audit: AuditLog
    metrics: Metrics
    passwords: Passwords
    tokens: TokenService
    throttle: LoginThrottle
    stream_tokens: StreamTokens
    auth: Authenticator
    refusals: RefusalAudit
    # The parts below are built by the composition root (gateway/wiring.py), in this order.
    hub: StreamHub = field(init=False)
    media: StreamFeeds = field(init=False)
    sessions: SessionRegistry = field(init=False)
    whep: WhepService = field(init=False)
    hls: HlsService = field(init=False)
    snapshots: SnapshotService = field(init=False)
    events: EventBus = field(init=False)
    positions: PositionService = field(init=False)
    alarms: AlarmService = field(init=False)
    recorder: Recorder = field(init=False)
    recordings: RecordingLibrary = field(init=False)
    notices: NoticeWorker = field(init=False)  # delivers case notifications (the outbox)
    ptz: PtzService = field(init=False)
    cluster: ClusterNode | None = None
    gb28181: Gb28181Node | None = None  # GB/T 28181 devices (gb28181.enabled)
    # RTSP out: Digest passwords derived from logins, and the server (None when rtsp_out is off).
    rtsp_passwords: DigestPasswords = field(init=False)
    rtsp: RtspServer | None = None
    cascade: Cascade | None = None  # the GB/T 28181 cascade to superior platforms (gb28181.superiors)
    # Callbacks other packages subscribe to (the ACL re-indexes, the hub ends sessions).
    on_inventory_changed: list[Hook] = field(default_factory=list)
    on_camera_removed: list[Hook] = field(default_factory=list)
    on_token_revoked: list[Hook] = field(default_factory=list)
    # What ends viewer sessions when a user's logins end (the session registry; the ACL's sweeps share it).
    session_terminators: list[SessionTerminator] = field(default_factory=list)
    # Start-ups in the order the composition root wrote them (the policy first); stops run reversed.
    startups: list[Startup] = field(default_factory=list)
    # Checks that keep the node from being ready (``/readyz`` answers 503 naming them): each returns
    # why, or None when all is well (e.g. the truck location rule cannot work without a polygon).
    readiness: list[Callable[[], str | None]] = field(default_factory=list)
    # The truck location rule: which vehicles' details the district may show now (vehicle panels).
    location: LocationRule = field(init=False)
    # At most this many camera probes started from the API at once (each a short RTSP session in a thread).
    probe_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(4))

    async def inventory_changed(self) -> None:
        """Cameras were added, changed or removed."""
        for hook in self.on_inventory_changed:
            await hook()

    async def camera_removed(self, camera_id: str) -> None:
        """A camera was deleted: its streams end."""
        for hook in self.on_camera_removed:
            await hook(camera_id)

    async def sessions_revoked_for_token(self, token_id: int) -> None:
        """A login ended: streams opened with it end too."""
        for hook in self.on_token_revoked:
            await hook(token_id)

    async def end_login(self, token_id: int, *, user_id: int | None = None) -> bool:
        """End one login (logout, revocation; only ``user_id``'s own when given) and everything
        derived from it: its cached validation, stream tokens (checked against it on use), viewer
        sessions and their HLS session keys, event streams, on every node. False if it was not live."""
        async with self.db.session() as s:
            ended = await self.tokens.revoke(s, token_id, user_id=user_id)
        if ended:
            await self.sessions_revoked_for_token(token_id)
        return ended

    async def user_logins_ended(self, user_id: int, token_ids: list[int], reason: str) -> None:
        """A user's logins were revoked in a committed change (password or role change,
        deactivation): end what derives from each through the same path as :meth:`end_login`, and
        every session the user holds however it was opened."""
        self.auth.forget_user(user_id)
        for token_id in token_ids:
            await self.sessions_revoked_for_token(token_id)
        for term in self.session_terminators:
            await term.end_sessions(user_id, None, reason)

    async def end_session(self, session_id: str, reason: str) -> bool:
        """End one viewer session on whichever node holds it."""
        if self.cluster is not None:
            return bool(await self.cluster.sessions.end(session_id, reason))
        return bool(await self.sessions.end(session_id, reason))

    async def find_session(self, session_id: str) -> dict[str, Any] | None:
        """An open viewer session on any node, with who may end it (``user_id``, ``credential_ref``)."""
        if self.cluster is not None:
            found: dict[str, Any] | None = await self.cluster.sessions.get(session_id)
            return found
        s = self.sessions.get(session_id)
        return s.owner() if s is not None else None

    async def audit_unauthenticated(self, request: Request) -> None:
        """Count a request refused for lack of valid credentials, and audit it in aggregate.

        Nothing is awaited: the refusal is counted in memory and written by a background task, one
        entry per client address per ``auth.refusal_window_s`` in full plus one with the exact count
        of the rest (:mod:`gateway.refusals`), so a scanner neither floods the audit nor delays the
        audit writes of authorized requests. The metric counts every one."""
        self.metrics.denials.labels("unauthenticated").inc()
        problem = _credential_problem(request)
        path = request.url.path
        self.refusals.note(
            "unauthenticated",
            request.client.host if request.client else None,
            f"{problem}: {request.method[:16]} {path}",
            camera_id=request.path_params.get("camera_id"),
            detail=problem,
            path=path,
            method=request.method,
        )

    async def audit_denied(self, request: Request, subject: Subject, action: str, camera_id: str | None) -> None:
        """Audit and count an authorization denial."""
        self.metrics.denials.labels(action.split(":", 1)[0]).inc()
        await self.audit.record(
            "denied",
            subject=subject,
            action=action,
            camera_id=camera_id,
            address=request.client.host if request.client else None,
            path=request.url.path,
        )


def _credential_problem(request: Request) -> str:
    """What the refused request presented (never the credential itself), as the authenticator
    found it; a request refused before any authentication presented nothing it looked at."""
    return str(getattr(request.state, "credential_problem", None) or "no credentials")


def services(request: Request) -> Liandong:
    """The services of the app serving ``request`` (typed: what routes and guards reach)."""
    ld: Liandong = request.app.state.ld
    return ld
