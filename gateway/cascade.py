"""What the GB/T 28181 cascade shares, from the gateway: the policy's answer (:mod:`gateway.policy.cascade`),
the registry's cameras (names, civil codes, coordinates) and the stream core (one hub reader per
INVITE, registered as a viewer session so that revocations, the session list and admins end it
as they end any other)."""

from __future__ import annotations

import logging

from camera_registry.models import CameraStatus
from camera_registry.store import CameraStore, NotFound
from gateway.policy.cascade import CascadeGate, superior_subject
from gateway.sessions import SessionLimit, SessionRegistry
from gb28181.cascade import CascadeRefused, Closer, SharedCamera, channel_id_for
from gb28181.settings import Gb28181Settings, SuperiorSettings
from streams import AccessUnit, Reader, StreamHub, StreamUnavailable

__all__ = ["PROTOCOL", "GatewayShare", "HubStream"]

log = logging.getLogger(__name__)

PROTOCOL = "gb28181"  # sessions' protocol: a superior platform's live INVITE
CODECS = ("h264", "hevc")
OPEN_TIMEOUT_S = 10.0


class HubStream:
    """A hub reader behind a viewer session: the units a superior's INVITE receives."""

    def __init__(self, hub: StreamHub, reader: Reader, codec: str, sessions: SessionRegistry) -> None:
        self.hub = hub
        self.reader = reader
        self.codec = codec
        self.sessions = sessions
        self.session_id: str | None = None
        self._closed = False

    async def next_unit(self) -> AccessUnit:
        """The next unit (the first ones: the GOP cache, for a fast start)."""
        return await self.reader.get()

    @property
    def generation(self) -> int:
        """The upstream's restart count."""
        return self.reader.generation

    async def close(self, reason: str) -> None:
        """Detach from the hub and end the session (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.hub.detach(self.reader, reason)
        if self.session_id is not None:
            await self.sessions.end(self.session_id, reason)


class GatewayShare:
    """The gateway's :class:`gb28181.cascade.CascadeShare`."""

    def __init__(
        self,
        settings: Gb28181Settings,
        gate: CascadeGate,
        store: CameraStore,
        hub: StreamHub,
        sessions: SessionRegistry,
    ) -> None:
        self.settings = settings
        self.gate = gate
        self.store = store
        self.hub = hub
        self.sessions = sessions

    async def catalog(self, superior: SuperiorSettings) -> list[SharedCamera]:
        """The cameras the policy lets ``superior`` view live, as catalog items."""
        ids = self.gate.shared_camera_ids(superior)
        if not ids:
            return []
        cams, _ = await self.store.search(only_ids=set(ids), limit=1_000_000)
        default_civil = superior.civil_code or self.settings.platform_id[:6]
        out: list[SharedCamera] = []
        seen: set[str] = set()
        for c in cams:
            tags = list(c.tags or [])
            channel = channel_id_for(c.id, tags, self.settings.platform_id)
            if channel in seen:  # two cameras hashing to one id: the second needs a gb-id: tag
                log.warning("cascade: camera %s has the channel id %s of another; give it a gb-id: tag", c.id, channel)
                continue
            seen.add(channel)
            civil = next((t[6:] for t in tags if t.startswith("civil:") and t[6:].isdigit()), default_civil)
            out.append(SharedCamera(channel, c.id, c.name, civil, c.lon, c.lat, c.status is not CameraStatus.offline))
        return out

    async def open(self, superior: SuperiorSettings, camera_id: str, address: str, closer: Closer) -> HubStream:
        """A hub reader of ``camera_id`` for ``superior``, registered as its viewer session."""
        if not await self.gate.may_play(superior, camera_id, address):
            raise CascadeRefused(403, "Forbidden")
        subject = superior_subject(superior)
        try:
            self.sessions.check_room(subject.user_id, subject.username)
        except SessionLimit:
            raise CascadeRefused(486, "Busy Here") from None
        try:
            reader = await self.hub.attach(camera_id, PROTOCOL)
        except NotFound:
            raise CascadeRefused(404, "Not Found") from None
        except StreamUnavailable:
            raise CascadeRefused(503, "Service Unavailable") from None
        try:
            info = self.hub.info(camera_id) or await self.hub.wait_info(camera_id, OPEN_TIMEOUT_S)
        except (StreamUnavailable, TimeoutError):
            self.hub.detach(reader, "open failed")
            raise CascadeRefused(503, "Service Unavailable") from None
        if info.codec not in CODECS:
            self.hub.detach(reader, "codec not carried")
            raise CascadeRefused(488, "Not Acceptable Here")
        stream = HubStream(self.hub, reader, info.codec, self.sessions)
        try:
            session = await self.sessions.open(
                user_id=subject.user_id,
                username=subject.username,
                camera_id=camera_id,
                protocol=PROTOCOL,
                address=address,
                token_id=None,
                closer=closer,
                subject=subject,
            )
        except SessionLimit:
            self.hub.detach(reader, "session refused")
            raise CascadeRefused(486, "Busy Here") from None
        except BaseException:
            self.hub.detach(reader, "open failed")
            raise
        stream.session_id = session.id
        return stream
