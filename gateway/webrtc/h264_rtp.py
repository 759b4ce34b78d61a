"""H.264 access units as RTP payloads (RFC 6184, packetization-mode 1: single NAL, STAP-A, FU-A).

An access unit is packetized once per camera and the payloads are shared by every viewer; only the
12-byte RTP header (and its extensions) differs between viewers.
"""

from __future__ import annotations

from streams import split_nals

__all__ = ["MAX_PAYLOAD", "packetize_h264"]

# Payload bytes per packet. With the RTP header, two one-byte header extensions and the SRTP tag a
# packet stays near 1240 bytes: below any path MTU a browser meets (aiortc uses 1300; TURN adds ~40).
MAX_PAYLOAD = 1200

_STAP_A = 24
_FU_A = 28
_AUD = 9


def packetize_h264(annexb: bytes, max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """RTP payloads of one access unit (Annex B), in order; the last one carries the marker bit.

    Small NAL units in a row (SPS, PPS, SEI before an IDR) are aggregated into STAP-A packets; a NAL
    unit larger than ``max_payload`` is split into FU-A fragments; access unit delimiters are dropped
    (RTP marks picture boundaries with the marker bit and the timestamp).
    """
    nals = [n for n in split_nals(annexb) if n and (n[0] & 0x1F) != _AUD]
    out: list[bytes] = []
    group: list[bytes] = []
    group_size = 1  # the STAP-A header byte

    def flush() -> None:
        nonlocal group, group_size
        if len(group) == 1:
            out.append(group[0])
        elif group:
            f = max(n[0] & 0x80 for n in group)
            nri = max(n[0] & 0x60 for n in group)
            out.append(bytes([f | nri | _STAP_A]) + b"".join(len(n).to_bytes(2, "big") + n for n in group))
        group, group_size = [], 1

    for nal in nals:
        if len(nal) > max_payload:
            flush()
            out.extend(_fu_a(nal, max_payload))
            continue
        if group and group_size + 2 + len(nal) > max_payload:
            flush()
        group.append(nal)
        group_size += 2 + len(nal)
    flush()
    return out


def _fu_a(nal: bytes, max_payload: int) -> list[bytes]:
    """FU-A fragments of one NAL unit, of nearly equal size (no runt last fragment)."""
    indicator = (nal[0] & 0xE0) | _FU_A
    nal_type = nal[0] & 0x1F
    body = memoryview(nal)[1:]
    room = max_payload - 2
    count = -(-len(body) // room)
    size, larger = divmod(len(body), count)
    frags: list[bytes] = []
    pos = 0
    for i in range(count):
        n = size + (1 if i < larger else 0)
        header = nal_type | (0x80 if i == 0 else 0) | (0x40 if i == count - 1 else 0)
        frags.append(bytes((indicator, header)) + body[pos : pos + n])
        pos += n
    return frags
