"""The shared H.264 packetizer: what a receiver depacketizes is the access unit's NAL units, in order."""

from __future__ import annotations

from aiortc.codecs.h264 import h264_depayload

from gateway.webrtc.h264_rtp import MAX_PAYLOAD, packetize_h264
from streams import split_nals

AUD = b"\x09\xf0"
SPS = b"\x67\x42\xc0\x1f" + bytes(range(20))
PPS = b"\x68\xce\x3c\x80"
SEI = b"\x06\x05\x10" + b"\x11" * 16 + b"\x80"


def annexb(*nals: bytes) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + n for n in nals)


def idr(size: int) -> bytes:
    # No 00 00 0x sequences inside (they would be start codes): a payload of 0x5a bytes.
    return b"\x65\x88" + b"\x5a" * (size - 2)


def depacketized(payloads: list[bytes]) -> list[bytes]:
    """NAL units a receiver rebuilds (aiortc's depayloader: FU-A fragments joined, STAP-A split)."""
    return split_nals(b"".join(h264_depayload(p) for p in payloads))


def test_keyframe_round_trips_with_parameter_sets_aggregated() -> None:
    big = idr(5000)
    payloads = packetize_h264(annexb(AUD, SPS, PPS, SEI, big))
    assert depacketized(payloads) == [SPS, PPS, SEI, big]  # the delimiter is dropped
    assert payloads[0][0] & 0x1F == 24  # SPS, PPS and SEI in one STAP-A
    frags = payloads[1:]
    assert all(p[0] & 0x1F == 28 and p[1] & 0x1F == 5 for p in frags)  # FU-A of the IDR
    assert frags[0][1] & 0x80 and not frags[0][1] & 0x40  # start bit
    assert frags[-1][1] & 0x40 and not frags[-1][1] & 0x80  # end bit
    assert all(not p[1] & 0xC0 for p in frags[1:-1])
    assert max(len(p) for p in payloads) <= MAX_PAYLOAD
    # Fragments of nearly equal size: no runt at the end.
    assert max(len(p) for p in frags) - min(len(p) for p in frags) <= 1


def test_small_picture_is_one_single_nal_packet() -> None:
    p_slice = b"\x41\x9a" + b"\x33" * 300
    assert packetize_h264(annexb(AUD, p_slice)) == [p_slice]


def test_stap_a_never_exceeds_the_payload_size() -> None:
    slices = [b"\x41" + bytes([i + 1]) * 500 for i in range(6)]  # six 501-byte slices of one picture
    payloads = packetize_h264(annexb(*slices), max_payload=1200)
    assert all(len(p) <= 1200 for p in payloads)
    assert depacketized(payloads) == slices
    assert len(payloads) == 3  # two slices per STAP-A: 1 + 2 * (2 + 501) = 1007 bytes


def test_nal_exactly_at_the_limit_is_sent_whole() -> None:
    nal = idr(MAX_PAYLOAD)
    assert packetize_h264(annexb(nal)) == [nal]
    assert depacketized(packetize_h264(annexb(idr(MAX_PAYLOAD + 1)))) == [idr(MAX_PAYLOAD + 1)]
