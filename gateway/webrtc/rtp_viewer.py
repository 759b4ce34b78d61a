"""One viewer of a camera's shared RTP payloads: its own header, SRTP and socket, nothing else.

aiortc still negotiates the viewer's peer connection (SDP, ICE, DTLS, RTCP reports), but its sender
reads nothing (:class:`~gateway.webrtc.track.FanoutTrack`): the camera's fan-out hands this object
payloads that were packetized once for every viewer. Per packet a viewer only writes the 12-byte
header and the header extensions it negotiated (mid, abs-send-time), protects it with the DTLS-SRTP
session aiortc set up (libsrtp through pylibsrtp) and hands it to the ICE pair's UDP socket.

RTCP aiortc receives for this sender comes here first: NACKed packets are retransmitted (over RTX
when the viewer negotiated it) from the units this viewer was sent, and a keyframe request (PLI/FIR)
resends the cached GOP (an RTSP camera cannot be asked for a keyframe). Receiver reports still go
to aiortc, which keeps the round-trip time and sends the sender reports this object keeps counted.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aioice.ice import Connection, StunProtocol
from aiortc import RTCRtpTransceiver, clock
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RTCP_PSFB_FIR, RTCP_PSFB_PLI, RTCP_RTPFB_NACK, AnyRtcpPacket, RtcpPsfbPacket, RtcpRtpfbPacket

from streams import Reader

__all__ = ["RtpViewer", "SharedUnit", "abs_send_time"]

log = logging.getLogger(__name__)

_MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
_ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
_HEADER = struct.Struct("!BBHII")
# Units a viewer remembers for NACKs (~2.5 s at 25 fps); the payloads are the fan-out's, not copies.
_SENT_LOG = 64
# Sender-report counters aiortc keeps in name-mangled attributes; kept up to date so RTCP SRs are true.
_SR_FIELDS = ("_RTCRtpSender__ntp_timestamp", "_RTCRtpSender__rtp_timestamp")
_SR_COUNTS = ("_RTCRtpSender__packet_count", "_RTCRtpSender__octet_count")


@dataclass(frozen=True, slots=True)
class SharedUnit:
    """One access unit as RTP payloads, made once per camera and shared by every viewer."""

    serial: int
    pts: int  # 90 kHz, the hub's monotonic clock for one upstream generation
    keyframe: bool
    payloads: list[bytes]


def abs_send_time() -> int:
    """The abs-send-time header extension value now (6.18 fixed-point seconds, 24 bits)."""
    return (clock.current_ntp_time() >> 14) & 0xFFFFFF


def _random16() -> int:
    # Like aiortc: in the lower half, so the first packets never wrap (a wrap right at the start
    # confuses SRTP's rollover counter in some receivers).
    return secrets.randbelow(1 << 15)


def _random32() -> int:
    return secrets.randbits(32)


class RtpViewer:
    """Writes one viewer's RTP stream from shared units (see the module docstring)."""

    def __init__(
        self,
        transceiver: RTCRtpTransceiver,
        reader: Reader,
        on_keyframe_request: Callable[[RtpViewer], None],
    ) -> None:
        self.transceiver = transceiver
        self.reader = reader  # counts this viewer at the hub (counts_only); no units come through it
        self._on_keyframe_request = on_keyframe_request
        self.sent = 0  # access units sent
        self.packets = 0
        self.octets = 0
        self.retransmitted = 0
        self.keyframe_requests = 0
        self.closed = False
        # Catch-up state, driven by the fan-out's pacer: the GOP list being replayed and where in it.
        self.backlog: list[SharedUnit] | None = None
        self.cursor = 0
        self.need_keyframe = True  # live, but nothing decodable sent yet: wait for a keyframe
        self._bound = False
        self._seq = _random16()
        self._rtx_seq = _random16()
        self._ts_origin = _random32()
        self._last_out = 0
        self._offset: int | None = None
        self._log: deque[tuple[int, int, int, SharedUnit]] = deque(maxlen=_SENT_LOG)
        self._slow: deque[bytes] = deque()
        self._slow_task: asyncio.Task[None] | None = None
        self._sender: RTCRtpSender = transceiver.sender
        self._pt = 0
        self._rtx_pt: int | None = None
        self._ssrc = 0
        self._rtx_ssrc = 0
        self._mid = b""
        self._mid_id = 0
        self._abs_id = 0
        self._protect: Callable[[bytes], bytes] | None = None
        self._ice: Connection | None = None
        self._intercept_rtcp()

    # -- negotiation ------------------------------------------------------------------------
    def bind(self) -> bool:
        """Take the negotiated codec, SSRCs, extensions and SRTP session; False if not connected yet."""
        if self._bound:
            return True
        dtls = self._sender.transport
        srtp = dtls._tx_srtp
        codecs = self.transceiver._codecs
        if srtp is None or dtls.state != "connected" or not codecs or codecs[0].payloadType is None:
            return False
        self._pt = codecs[0].payloadType
        self._rtx_pt = next(
            (
                c.payloadType
                for c in codecs
                if c.mimeType.lower() == "video/rtx" and str(c.parameters.get("apt")) == str(self._pt)
            ),
            None,
        )
        self._ssrc = self._sender._ssrc
        self._rtx_ssrc = self._sender._rtx_ssrc
        for ext in self.transceiver._headerExtensions:
            if ext.uri == _MID_URI:
                self._mid_id = ext.id
            elif ext.uri == _ABS_SEND_TIME_URI:
                self._abs_id = ext.id
        self._mid = (self.transceiver.mid or "").encode()
        self._protect = srtp.protect
        self._ice = dtls.transport._connection
        self._bound = True
        return True

    def _intercept_rtcp(self) -> None:
        aiortc_handler = self._sender._handle_rtcp_packet

        async def handle(packet: AnyRtcpPacket) -> None:
            if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
                for seq in packet.lost:
                    self.retransmit(seq)
            elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_FIR, RTCP_PSFB_PLI):
                self.keyframe_requests += 1
                self._on_keyframe_request(self)
            else:  # receiver reports: aiortc's round-trip time and stats
                await aiortc_handler(packet)

        # The RTP router calls this attribute for RTCP addressed to the sender's SSRC.
        self._sender._handle_rtcp_packet = handle  # type: ignore[method-assign]

    # -- timestamps -------------------------------------------------------------------------
    def stamp_live(self, unit: SharedUnit) -> int:
        """The viewer's 90 kHz time for a live unit: the camera's spacing, continuous across flaps."""
        if self._offset is None:
            # First unit, or the camera restarted its clock: continue one frame after the last sent.
            self._offset = self._last_out + 3600 - unit.pts if self.sent else -unit.pts
        out = unit.pts + self._offset
        if self.sent and out <= self._last_out:
            out = self._last_out + 1
            self._offset = out - unit.pts
        return out

    def stamp_backlog(self) -> int:
        """Cached units go out 1 ms apart, so the browser decodes the GOP at once and shows live video."""
        return self._last_out + 90 if self.sent else 0

    def continue_from(self, unit: SharedUnit) -> None:
        """Live units after ``unit`` (the last one sent from the cache) keep the camera's spacing."""
        self._offset = self._last_out - unit.pts

    def continue_from_keyframe(self, unit: SharedUnit) -> None:
        """A viewer replaying the cache jumps to a new keyframe: stamp it 1 ms after the last sent unit."""
        self._offset = self._last_out + 90 - unit.pts

    def restart_clock(self) -> None:
        """The camera's timestamps start again: the next live unit follows the last sent one."""
        self._offset = None

    # -- sending ----------------------------------------------------------------------------
    def send_unit(self, unit: SharedUnit, out: int, abs24: int) -> None:
        """Send one shared unit stamped ``out`` (90 kHz, before the random origin)."""
        protect = self._protect
        if protect is None or self.closed:
            return
        ts = (self._ts_origin + out) & 0xFFFFFFFF
        ext = self._extensions(abs24)
        b0 = 0x90 if ext else 0x80
        pt = self._pt
        ssrc = self._ssrc
        seq = self._seq
        first = seq
        last = len(unit.payloads) - 1
        pack = _HEADER.pack
        send = self._datagram_sender()
        if send is None:
            return
        octets = 0
        for i, payload in enumerate(unit.payloads):
            send(protect(pack(b0, (0x80 | pt) if i == last else pt, seq, ts, ssrc) + ext + payload))
            seq = (seq + 1) & 0xFFFF
            octets += len(payload)
        self._seq = seq
        self._log.append((first, len(unit.payloads), ts, unit))
        self._last_out = out
        self.sent += 1
        self.packets += len(unit.payloads)
        self.octets += octets
        if self.sent == 1:
            self.reader.note_first_unit()
        self._count_for_reports(ts)

    def retransmit(self, seq: int) -> None:
        """Resend a packet a viewer NACKed, if it is among the recently sent units."""
        protect = self._protect
        send = self._datagram_sender()
        if protect is None or send is None or self.closed:
            return
        for first, count, ts, unit in reversed(self._log):
            i = (seq - first) & 0xFFFF
            if i < count:
                payload = unit.payloads[i]
                marker = 0x80 if i == count - 1 else 0
                ext = self._extensions(abs_send_time())
                b0 = 0x90 if ext else 0x80
                if self._rtx_pt is not None:  # RFC 4588: the original sequence number, then the payload
                    header = _HEADER.pack(b0, marker | self._rtx_pt, self._rtx_seq, ts, self._rtx_ssrc)
                    payload = struct.pack("!H", seq) + payload
                    self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
                else:
                    header = _HEADER.pack(b0, marker | self._pt, seq, ts, self._ssrc)
                send(protect(header + ext + payload))
                self.retransmitted += 1
                return

    def _extensions(self, abs24: int) -> bytes:
        """The one-byte header extension block (RFC 8285) with the extensions this viewer negotiated."""
        body = b""
        if self._mid_id and self._mid:
            body += bytes([(self._mid_id << 4) | (len(self._mid) - 1)]) + self._mid
        if self._abs_id:
            body += bytes([(self._abs_id << 4) | 2]) + abs24.to_bytes(3, "big")
        if not body:
            return b""
        body += b"\x00" * (-len(body) % 4)
        return b"\xbe\xde" + (len(body) // 4).to_bytes(2, "big") + body

    def _datagram_sender(self) -> Callable[[bytes], None] | None:
        """A function that sends one datagram to the viewer's selected ICE pair (None: not connected)."""
        pair = self._ice._nominated.get(1) if self._ice is not None else None
        if pair is None:
            return None
        protocol = pair.protocol
        transport = getattr(protocol, "transport", None)
        if isinstance(protocol, StunProtocol) and transport is not None:
            sendto = transport.sendto
            addr = pair.remote_addr
            return lambda data: sendto(data, addr)
        # A relayed (TURN) pair wraps each datagram in a coroutine: keep the order through one queue.
        return lambda data: self._send_slow(data, protocol.send_data, pair.remote_addr)

    def _send_slow(
        self, data: bytes, send_data: Callable[[bytes, tuple[str, int]], Awaitable[None]], addr: tuple[str, int]
    ) -> None:
        self._slow.append(data)
        if self._slow_task is None or self._slow_task.done():

            async def drain() -> None:
                while self._slow and not self.closed:
                    try:
                        await send_data(self._slow.popleft(), addr)
                    except ConnectionError:
                        self._slow.clear()

            self._slow_task = asyncio.ensure_future(drain())

    def _count_for_reports(self, ts: int) -> None:
        """Keep aiortc's sender-report fields true (it sends the SRs; it no longer sends the RTP)."""
        s = self._sender
        if hasattr(s, _SR_COUNTS[0]):
            setattr(s, _SR_FIELDS[0], clock.current_ntp_time())
            setattr(s, _SR_FIELDS[1], ts)
            setattr(s, _SR_COUNTS[0], self.packets)
            setattr(s, _SR_COUNTS[1], self.octets)

    def close(self) -> None:
        """Send nothing more; drop the units this viewer remembered for NACKs."""
        self.closed = True
        self.backlog = None
        self._log.clear()
        self._slow.clear()
        if self._slow_task is not None:
            self._slow_task.cancel()
