"""RTP for H.264 (RFC 6184) and H.265 (RFC 7798) access units, passed through as the camera sent
them, and the session description (SDP) that announces them."""

from __future__ import annotations

import base64
import secrets
import struct
import time

from streams import AccessUnit, split_nals

__all__ = ["RtpPacketizer", "parameter_sets", "session_description"]

PAYLOAD_TYPE = 96
_NTP_EPOCH = 2_208_988_800  # seconds from 1900 to 1970


def _hevc(codec: str) -> bool:
    return codec in ("hevc", "h265")


def _nal_type(codec: str, nal: bytes) -> int:
    return (nal[0] >> 1) & 0x3F if _hevc(codec) else nal[0] & 0x1F


def parameter_sets(codec: str, data: bytes) -> dict[str, bytes]:
    """The parameter sets in front of a keyframe: ``sps``, ``pps`` (and ``vps`` for H.265)."""
    names = {32: "vps", 33: "sps", 34: "pps"} if _hevc(codec) else {7: "sps", 8: "pps"}
    out: dict[str, bytes] = {}
    for nal in split_nals(data):
        name = names.get(_nal_type(codec, nal))
        if name and name not in out:
            out[name] = nal
    return out


def session_description(codec: str, params: dict[str, bytes], address: str, session_id: int) -> str:
    """The SDP of one video track (control ``trackID=0``) for ``codec`` with its parameter sets."""

    def b64(nal: bytes) -> str:
        return base64.b64encode(nal).decode("ascii")

    if _hevc(codec):
        rtpmap = "H265/90000"
        fmtp = ";".join(f"sprop-{k}={b64(params[k])}" for k in ("vps", "sps", "pps") if k in params)
    else:
        rtpmap = "H264/90000"
        sps = params.get("sps", b"")
        fmtp = "packetization-mode=1"
        if len(sps) >= 4:
            fmtp += f";profile-level-id={sps[1:4].hex().upper()}"
        if "sps" in params and "pps" in params:
            fmtp += f";sprop-parameter-sets={b64(params['sps'])},{b64(params['pps'])}"
    family = "IP6" if ":" in address else "IP4"
    lines = [
        "v=0",
        f"o=- {session_id} 1 IN {family} {address}",
        "s=Liandong",
        f"c=IN {family} {address}",
        "t=0 0",
        "a=control:*",
        "a=range:npt=0-",
        f"m=video 0 RTP/AVP {PAYLOAD_TYPE}",
        f"a=rtpmap:{PAYLOAD_TYPE} {rtpmap}",
        f"a=fmtp:{PAYLOAD_TYPE} {fmtp}",
        "a=control:trackID=0",
    ]
    return "\r\n".join(lines) + "\r\n"


class RtpPacketizer:
    """Cuts access units into RTP packets of at most ``mtu`` bytes (single NAL units, and
    fragmentation units for larger ones), with a random SSRC, sequence and timestamp start."""

    def __init__(self, codec: str, mtu: int) -> None:
        self.codec = codec
        self.max_payload = mtu - 12
        self.ssrc = secrets.randbits(32)
        self.seq = secrets.randbits(16)
        self._base = secrets.randbits(32)
        self._offset = 0  # keeps timestamps going on after the upstream restarted
        self._last_pts: int | None = None
        self._generation = 0
        self.packets = 0
        self.octets = 0
        self.last_rtp_time = self._base

    def rtp_time(self, pts: int) -> int:
        """The RTP timestamp of a 90 kHz ``pts``."""
        return (self._base + self._offset + pts) & 0xFFFFFFFF

    def restart(self, generation: int, pts: int) -> None:
        """The upstream restarted (timestamps begin again): continue one frame after the last one."""
        if generation != self._generation and self._last_pts is not None:
            self._offset += self._last_pts + 3600 - pts
        self._generation = generation

    def packetize(self, au: AccessUnit) -> list[bytes]:
        """The RTP packets of one access unit; the last one carries the marker bit."""
        ts = self.rtp_time(au.pts)
        self._last_pts = au.pts
        self.last_rtp_time = ts
        payloads: list[bytes] = []
        for nal in split_nals(au.data):
            t = _nal_type(self.codec, nal)
            if (t == 35 if _hevc(self.codec) else t == 9) or not nal:
                continue  # access unit delimiters mean nothing in RTP (the marker bit ends a picture)
            if len(nal) <= self.max_payload:
                payloads.append(nal)
            else:
                payloads.extend(self._fragments(nal, t))
        out = []
        for i, payload in enumerate(payloads):
            marker = 0x80 if i == len(payloads) - 1 else 0
            header = struct.pack("!BBHII", 0x80, marker | PAYLOAD_TYPE, self.seq, ts, self.ssrc)
            self.seq = (self.seq + 1) & 0xFFFF
            out.append(header + payload)
            self.packets += 1
            self.octets += len(payload)
        return out

    def _fragments(self, nal: bytes, t: int) -> list[bytes]:
        if _hevc(self.codec):
            head = bytes([(nal[0] & 0x81) | (49 << 1), nal[1]])
            body, room = nal[2:], self.max_payload - 3
        else:
            head = bytes([(nal[0] & 0xE0) | 28])
            body, room = nal[1:], self.max_payload - 2
        out = []
        for pos in range(0, len(body), room):
            fu = t | (0x80 if pos == 0 else 0) | (0x40 if pos + room >= len(body) else 0)
            out.append(head + bytes([fu]) + body[pos : pos + room])
        return out

    def sender_report(self) -> bytes:
        """An RTCP sender report: wall clock against the last RTP timestamp, packets and octets sent."""
        now = time.time() + _NTP_EPOCH
        ntp_hi, ntp_lo = int(now), int((now % 1) * (1 << 32))
        return struct.pack(
            "!BBHIIIIII",
            0x80,
            200,
            6,
            self.ssrc,
            ntp_hi,
            ntp_lo,
            self.last_rtp_time,
            self.packets & 0xFFFFFFFF,
            self.octets & 0xFFFFFFFF,
        )
