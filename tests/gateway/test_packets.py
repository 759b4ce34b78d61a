"""Access-unit hygiene on synthetic H.264 made by a real encoder (libx264 through PyAV)."""

from __future__ import annotations

import itertools
from fractions import Fraction

import av
import numpy as np
import pytest

from gateway.hub.packets import AccessUnitAssembler, split_nals
from tests.media import decode_units

TB = Fraction(1, 90_000)


@pytest.fixture(scope="module")
def encoded() -> tuple[bytes, list[tuple[bytes, bool]]]:
    """60 frames of 320x240 H.264 (GOP 25, one slice per frame) as Annex B packets, and extradata."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 320, 240, "yuv420p"
    ctx.time_base = Fraction(1, 25)
    ctx.options = {
        "g": "25",
        "bf": "0",
        "tune": "zerolatency",
        "preset": "ultrafast",
        "x264-params": "repeat-headers=1",
    }
    out: list[tuple[bytes, bool]] = []
    for i in range(60):
        img = np.full((240, 320, 3), (i * 4) % 255, dtype=np.uint8)
        img[:, (i * 5) % 320 :] = 200
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        for pkt in ctx.encode(frame):
            out.append((bytes(pkt), pkt.is_keyframe))
    for pkt in ctx.encode(None):
        out.append((bytes(pkt), pkt.is_keyframe))
    return bytes(ctx.extradata or b""), out


def feed_all(asm: AccessUnitAssembler, packets: list[tuple[bytes, int | None]]) -> list:  # type: ignore[type-arg]
    units = []
    for data, pts in packets:
        units.extend(asm.feed(data, pts, TB))
    units.extend(asm.flush())
    return units


def test_first_idr_without_pts_and_monotonic_timeline(encoded: tuple[bytes, list[tuple[bytes, bool]]]) -> None:
    _, pkts = encoded
    packets = [(d, None if i == 0 else i * 3600) for i, (d, _) in enumerate(pkts)]
    units = feed_all(AccessUnitAssembler("h264"), packets)
    assert len(units) == len(pkts)
    assert units[0].keyframe and units[0].pts == 0
    assert [u.pts for u in units[:4]] == [0, 3600, 7200, 10800]
    assert len(decode_units(units)) == len(units)


def test_jumps_and_wraparound_stay_monotonic(encoded: tuple[bytes, list[tuple[bytes, bool]]]) -> None:
    _, pkts = encoded
    pts_in = [i * 3600 for i in range(len(pkts))]
    pts_in[20:] = [p + 90_000 * 3600 for p in pts_in[20:]]  # a one-hour jump forward
    pts_in[40:] = [p - 2**33 for p in pts_in[40:]]  # 33-bit RTP/MPEG wrap
    asm = AccessUnitAssembler("h264")
    units = feed_all(asm, [(d, p) for (d, _), p in zip(pkts, pts_in, strict=True)])
    steps = {b.pts - a.pts for a, b in itertools.pairwise(units)}
    assert steps == {3600}
    assert asm.discontinuities == 2


def test_slices_merged_into_one_access_unit(encoded: tuple[bytes, list[tuple[bytes, bool]]]) -> None:
    _, pkts = encoded
    # Split each frame after its parameter sets: the slice NAL arrives in a packet of its own,
    # with the same pts, as a camera's RTP depacketizer can deliver it.
    packets: list[tuple[bytes, int | None]] = []
    for i, (data, _) in enumerate(pkts):
        nals = split_nals(data)
        head = [n for n in nals if n[0] & 0x1F not in (1, 5)]
        vcl = [n for n in nals if n[0] & 0x1F in (1, 5)]
        if head:
            packets.append((b"".join(b"\x00\x00\x00\x01" + n for n in head), i * 3600))
        packets.append((b"".join(b"\x00\x00\x00\x01" + n for n in vcl), i * 3600))
    units = feed_all(AccessUnitAssembler("h264"), packets)
    assert len(units) == len(pkts)
    assert sum(u.keyframe for u in units) == sum(k for _, k in pkts)
    assert len(decode_units(units)) == len(units)


def test_out_of_band_parameter_sets_prepended(encoded: tuple[bytes, list[tuple[bytes, bool]]]) -> None:
    _, pkts = encoded
    # libx264 without a global header has no extradata: build what an SDP's sprop-parameter-sets gives.
    extradata = b"".join(b"\x00\x00\x00\x01" + n for n in split_nals(pkts[0][0]) if n[0] & 0x1F in (7, 8))
    stripped = []
    for i, (data, _) in enumerate(pkts):
        nals = [n for n in split_nals(data) if n[0] & 0x1F not in (7, 8)]
        stripped.append((b"".join(b"\x00\x00\x00\x01" + n for n in nals), i * 3600))
    with pytest.raises(av.error.InvalidDataError):
        decode_units(feed_all(AccessUnitAssembler("h264"), stripped)[:1])
    units = feed_all(AccessUnitAssembler("h264", extradata), stripped)
    assert units[0].data.startswith(b"\x00\x00\x00\x01\x67")
    assert len(decode_units(units)) == len(units)


def test_split_nals_avcc_and_annexb() -> None:
    annexb = b"\x00\x00\x00\x01\x67\x42\x00\x00\x01\x68\xce\x00\x00\x00\x01\x65\x88"
    assert split_nals(annexb) == [b"\x67\x42", b"\x68\xce", b"\x65\x88"]
    avcc = b"\x00\x00\x00\x02\x67\x42\x00\x00\x00\x02\x65\x88"
    assert split_nals(avcc) == [b"\x67\x42", b"\x65\x88"]
    assert split_nals(b"") == []
