"""RTP (RFC 3550) packets and RFC 4571 framing (RTP over TCP, a 16-bit length before each packet)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Rfc4571Reader", "RtpError", "RtpPacket", "frame_4571"]


class RtpError(ValueError):
    """Not an RTP packet."""


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet (header fields that matter here, and the payload)."""

    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse a packet; raises :class:`RtpError` on anything that is not RTP version 2."""
        if len(data) < 12 or data[0] >> 6 != 2:
            raise RtpError("not RTP v2")
        cc = data[0] & 0x0F
        at = 12 + 4 * cc
        if data[0] & 0x10:  # header extension
            if len(data) < at + 4:
                raise RtpError("truncated extension")
            at += 4 + 4 * int.from_bytes(data[at + 2 : at + 4], "big")
        end = len(data)
        if data[0] & 0x20:  # padding
            pad = data[-1]
            if pad == 0 or pad > end - at:
                raise RtpError("bad padding")
            end -= pad
        if at > end:
            raise RtpError("truncated header")
        seq, ts, ssrc = struct.unpack_from("!HII", data, 2)
        return cls(data[1] & 0x7F, seq, ts, ssrc, bool(data[1] & 0x80), data[at:end])

    def encode(self) -> bytes:
        """The packet on the wire (no CSRC, no extension, no padding)."""
        head = struct.pack(
            "!BBHII", 0x80, (0x80 if self.marker else 0) | (self.payload_type & 0x7F), self.seq & 0xFFFF,
            self.timestamp & 0xFFFFFFFF, self.ssrc & 0xFFFFFFFF,
        )  # fmt: skip
        return head + self.payload


def frame_4571(packet: bytes) -> bytes:
    """One packet with its RFC 4571 length prefix."""
    if len(packet) > 0xFFFF:
        raise ValueError("RTP packet longer than 65535 bytes")
    return len(packet).to_bytes(2, "big") + packet


class Rfc4571Reader:
    """Packets out of an RFC 4571 byte stream (bounded by the 16-bit length)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Add bytes; yield each complete packet."""
        self._buf += data
        pos = 0
        while len(self._buf) - pos >= 2:
            n = int.from_bytes(self._buf[pos : pos + 2], "big")
            if len(self._buf) - pos - 2 < n:
                break
            yield bytes(self._buf[pos + 2 : pos + 2 + n])
            pos += 2 + n
        del self._buf[:pos]
