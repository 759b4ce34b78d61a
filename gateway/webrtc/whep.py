"""WHEP sessions: an aiortc peer connection per viewer, fed from the stream hub.

With ``webrtc.egress = "shared"`` (the default) aiortc negotiates and keeps RTCP, but the RTP comes
from the camera's fan-out (:mod:`gateway.webrtc.fanout`): packetized once per camera, per viewer only
a header, SRTP and a send. ``"per_viewer"`` is the old path (aiortc packetizes for each viewer).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc import sdp as aiortc_sdp
from aiortc.rtcrtpsender import RTCRtpSender

from acl.identity import Subject
from gateway.metrics import Metrics
from gateway.sessions import SessionRegistry
from gateway.settings import WebRTCSettings
from gateway.webrtc.fanout import CameraFanout, Fanouts
from gateway.webrtc.ice import host_addresses_for, ice_configuration, interface_addresses, restrict_host_addresses
from gateway.webrtc.rtp_viewer import RtpViewer
from gateway.webrtc.sdp import SdpError, answer_as_dtls_server, check_offer
from gateway.webrtc.track import FanoutTrack, PassthroughTrack
from gateway.webrtc.trickle import TrickleFragment
from streams import StreamFeeds, UnsupportedCodec, Variant, needs_transcode

__all__ = ["IceRestartUnsupported", "UnsupportedCodec", "WhepAnswer", "WhepService"]

log = logging.getLogger(__name__)


class IceRestartUnsupported(Exception):
    """A PATCH asked for an ICE restart (new ICE credentials); aiortc cannot restart ICE."""


@dataclass(frozen=True, slots=True)
class _RemoteIce:
    """What a trickled fragment is checked against: the offer's ICE credentials and media sections."""

    ufrag: str
    pwd: str
    mids: list[str]


@dataclass(frozen=True, slots=True)
class WhepAnswer:
    """A created WHEP session."""

    session_id: str
    sdp: str


class WhepService:
    """Creates and ends WebRTC viewer sessions."""

    def __init__(
        self,
        feeds: StreamFeeds,
        sessions: SessionRegistry,
        settings: WebRTCSettings,
        metrics: Metrics,
        bind_host: str = "127.0.0.1",
    ) -> None:
        self.feeds = feeds
        self.sessions = sessions
        self.settings = settings
        self.metrics = metrics
        self._pcs: dict[str, RTCPeerConnection] = {}
        self._tracks: dict[str, PassthroughTrack] = {}
        self._viewers: dict[str, RtpViewer] = {}
        self.fanouts = Fanouts()
        self.shared = settings.egress == "shared"
        self._remote_ice: dict[str, _RemoteIce] = {}
        self._deadlines: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.host_addresses = host_addresses_for(settings.host_addresses, bind_host)
        restrict_host_addresses(self.host_addresses)
        offered = self.host_addresses or interface_addresses()
        why = "webrtc.host_addresses" if settings.host_addresses is not None else f"listening on {bind_host}"
        if self.host_addresses:
            log.info("WebRTC host candidates: %s (%s)", ", ".join(offered), why)
        else:
            log.info(
                "WebRTC host candidates: every interface address, now %s (%s; set webrtc.host_addresses to choose)",
                ", ".join(offered) or "none",
                why,
            )

    async def create(
        self,
        camera_id: str,
        offer: bytes,
        subject: Subject,
        address: str | None,
        *,
        known_codec: str | None = None,
        incident_id: str | None = None,
        variant: Variant = Variant.auto,
    ) -> WhepAnswer:
        """Answer a viewer's offer. Raises SdpError, SessionLimit, UnsupportedCodec, StreamUnavailable, LookupError."""
        sdp = check_offer(offer, self.settings.max_sdp_bytes)
        # Before a camera or transcode is opened for it.
        transcode = (camera_id, variant.value) if needs_transcode(known_codec, variant) else None
        self.sessions.check_room(subject.user_id, subject.username, transcode)
        started = time.monotonic()
        feed = await self.feeds.attach(
            camera_id,
            "webrtc",
            known_codec=known_codec,
            variant=variant,
            timeout_s=self.settings.open_timeout_s,
            consume=not self.shared,  # shared: the camera's fan-out reads; this reader counts the viewer
        )
        reader = feed.reader
        pc: RTCPeerConnection | None = None
        fanout: CameraFanout | None = None
        viewer: RtpViewer | None = None
        try:
            track: PassthroughTrack | FanoutTrack = FanoutTrack() if self.shared else PassthroughTrack(reader)
            pc = RTCPeerConnection(ice_configuration(self.settings.ice_servers))
            transceiver = pc.addTransceiver(track, direction="sendonly")
            if self.shared:
                fanout = await self.fanouts.join(feed)
                viewer = RtpViewer(transceiver, reader, fanout.keyframe_requested)
                fanout.add(viewer)
            caps = RTCRtpSender.getCapabilities("video")
            # Before setRemoteDescription: set later, VP8 would be negotiated for H.264 bytes.
            transceiver.setCodecPreferences([c for c in caps.codecs if c.mimeType in ("video/H264", "video/rtx")])
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                created = await pc.createAnswer()
                # The gateway as DTLS server where the offer lets it choose: see answer_as_dtls_server.
                answer = RTCSessionDescription(sdp=answer_as_dtls_server(sdp, created.sdp), type="answer")
            except Exception as e:  # aiortc negotiates only what the viewer sent: its failures are the offer's
                log.info("camera %s: offer rejected by aiortc: %s: %s", camera_id, type(e).__name__, str(e)[:200])
                raise SdpError(f"SDP offer: cannot be negotiated ({type(e).__name__}: {str(e)[:120]})") from None
            await pc.setLocalDescription(answer)  # aiortc gathers every candidate here (no trickle)
            if "H264" not in pc.localDescription.sdp:
                raise UnsupportedCodec("h264 (the browser refused H.264)")
        except BaseException:
            if fanout is not None and viewer is not None:
                fanout.remove(viewer)
            feed.detach("setup failed")
            if pc is not None:
                await _close_quietly(pc, camera_id)
            raise

        session_pc = pc

        async def closer(reason: str) -> None:
            track.stop()
            if fanout is not None and viewer is not None:
                fanout.remove(viewer)
            self._viewers.pop(session.id, None)
            feed.detach(reason)
            self._pcs.pop(session.id, None)
            self._tracks.pop(session.id, None)
            self._remote_ice.pop(session.id, None)
            deadline = self._deadlines.pop(session.id, None)
            if deadline is not None:
                deadline.cancel()
            await _close_quietly(session_pc, camera_id)

        try:
            session = await self.sessions.open(
                user_id=subject.user_id,
                username=subject.username,
                camera_id=camera_id,
                protocol="webrtc",
                address=address,
                token_id=subject.token_id,
                closer=closer,
                incident_id=incident_id,
                subject=subject,
            )
        except BaseException:  # e.g. the audit write failed, or the client went away meanwhile
            track.stop()
            if fanout is not None and viewer is not None:
                fanout.remove(viewer)
            feed.detach("setup failed")
            await _close_quietly(pc, camera_id)
            raise
        self._pcs[session.id] = pc
        if isinstance(track, PassthroughTrack):
            self._tracks[session.id] = track
        if viewer is not None:
            self._viewers[session.id] = viewer
        self._remote_ice[session.id] = _remote_ice(sdp)
        session.stats["transcoded"] = feed.transcoded
        session.stats["variant"] = variant.value
        session.stats["setup_ms"] = round((time.monotonic() - started) * 1000, 1)

        @pc.on("connectionstatechange")
        async def _state() -> None:
            state = pc.connectionState
            session.stats["connection"] = state
            if state == "connected" and fanout is not None and viewer is not None:
                fanout.start(viewer)
            if state in ("failed", "closed"):
                await self.sessions.end(session.id, f"peer connection {state}")

        # The timer holds only the id: an ended session must not stay in memory until it fires.
        self._deadlines[session.id] = asyncio.get_running_loop().call_later(
            self.settings.session_timeout_s, self._deadline_due, session.id
        )
        return WhepAnswer(session.id, pc.localDescription.sdp)

    def _deadline_due(self, session_id: str) -> None:
        self._deadlines.pop(session_id, None)
        task = asyncio.ensure_future(self._connect_deadline(session_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_deadline(self, session_id: str) -> None:
        pc = self._pcs.get(session_id)
        if pc is not None and pc.connectionState not in ("connected",):
            await self.sessions.end(session_id, "ICE did not connect in time")

    def media_sections(self, session_id: str) -> list[str] | None:
        """The ``a=mid`` values of a local session's offer (None: no such session here)."""
        remote = self._remote_ice.get(session_id)
        return list(remote.mids) if remote is not None else None

    async def trickle(self, session_id: str, fragment: TrickleFragment) -> None:
        """Feed a player's trickled candidates to its peer connection.

        Raises LookupError (no such session here) and IceRestartUnsupported (new ICE credentials).
        """
        pc = self._pcs.get(session_id)
        remote = self._remote_ice.get(session_id)
        if pc is None or remote is None:
            raise LookupError(session_id)
        if (fragment.ufrag is not None and fragment.ufrag != remote.ufrag) or (
            fragment.pwd is not None and fragment.pwd != remote.pwd
        ):
            raise IceRestartUnsupported(session_id)
        for candidate in fragment.candidates:
            await pc.addIceCandidate(candidate)
        if fragment.end_of_candidates:
            await pc.addIceCandidate(None)

    def stats(self, session_id: str) -> dict[str, int]:
        """Access units (and, on the shared path, packets and retransmissions) sent to a session so far."""
        viewer = self._viewers.get(session_id)
        if viewer is not None:
            return {
                "frames_sent": viewer.sent,
                "packets_sent": viewer.packets,
                "retransmitted": viewer.retransmitted,
                "keyframe_requests": viewer.keyframe_requests,
            }
        track = self._tracks.get(session_id)
        return {"frames_sent": track.sent if track else 0}


def _remote_ice(offer: str) -> _RemoteIce:
    """The ICE credentials and media section ids of an offer that check_offer accepted."""
    parsed = aiortc_sdp.SessionDescription.parse(offer)
    first = next(m for m in parsed.media if m.ice is not None)
    assert first.ice is not None  # check_offer refused offers without ICE credentials
    mids = [str(m.rtp.muxId) if m.rtp.muxId else str(i) for i, m in enumerate(parsed.media)]
    return _RemoteIce(first.ice.usernameFragment or "", first.ice.password or "", mids)


async def _close_quietly(pc: RTCPeerConnection, camera_id: str) -> None:
    """Close a peer connection; aiortc can fail to close one that a bad offer left half set up."""
    try:
        await pc.close()
    except Exception as e:  # the session ends either way; the original error is what matters
        log.info("camera %s: closing a peer connection failed: %s: %s", camera_id, type(e).__name__, e)
