"""Access-unit hygiene on synthetic H.264 made by a real encoder (libx264 through PyAV)."""

from __future__ import annotations

import itertools
from fractions import Fraction

import av
import numpy as np
import pytest

from streams.packets import AccessUnitAssembler, split_nals
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


def encode(n: int, x264_params: str, gop: int = 10, noise_every: int = 0) -> list[bytes]:
    """``n`` pictures of 320x240 H.264 from libx264 with ``x264_params`` (Annex B packets)."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 320, 240, "yuv420p"
    ctx.time_base = Fraction(1, 25)
    ctx.options = {
        "g": str(gop),
        "bf": "0",
        "preset": "ultrafast",
        "tune": "zerolatency",
        "x264-params": f"repeat-headers=1:sliced-threads=0:{x264_params}",
    }
    rng = np.random.default_rng(7)
    out: list[bytes] = []
    for i in range(n):
        if noise_every and i % noise_every == 0:
            img = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        else:
            img = np.full((240, 320, 3), (i * 5) % 255, dtype=np.uint8)
            img[:, (i * 7) % 320 :] = 200
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        out.extend(bytes(p) for p in ctx.encode(frame))
    out.extend(bytes(p) for p in ctx.encode(None))
    return out


def vcl_count(data: bytes) -> int:
    return sum(1 for n in split_nals(data) if n[0] & 0x1F in (1, 5))


def nal_by_nal(pictures: list[bytes]) -> list[tuple[bytes, int | None]]:
    """Each NAL in a packet of its own, as an RTP depacketizer delivers a multi-slice picture."""
    return [(b"\x00\x00\x00\x01" + nal, i * 3600) for i, data in enumerate(pictures) for nal in split_nals(data)]


def test_pictures_with_varying_slice_counts_stay_whole() -> None:
    # Slices cut by size (as cameras do to fit an MTU): keyframes have many, other pictures few.
    pictures = encode(30, "slice-max-size=400", noise_every=10)
    counts = [vcl_count(p) for p in pictures]
    assert counts[0] > 10 and counts[1] < counts[0]  # the case that must not be split
    asm = AccessUnitAssembler("h264")
    units = feed_all(asm, nal_by_nal(pictures))
    assert [u.slices for u in units] == counts
    assert [u.keyframe for u in units] == [i % 10 == 0 for i in range(30)]
    assert {b.pts - a.pts for a, b in itertools.pairwise(units)} == {3600}
    assert asm.discontinuities == 0 and asm.partial_pictures == 0
    assert len(decode_units(units)) == 30


def test_uniform_slices_flush_on_the_last_slice() -> None:
    # A fixed slice count (x264 sliced threads, the fixture's h264_slices): once seen on a keyframe
    # and enough pictures, a picture goes out with its last slice, not one frame later.
    pictures = encode(20, "slices=3")
    assert {vcl_count(p) for p in pictures} == {3}
    asm = AccessUnitAssembler("h264")
    on_last_slice = []
    for i, data in enumerate(pictures):
        nals = split_nals(data)
        for j, nal in enumerate(nals):
            got = list(asm.feed(b"\x00\x00\x00\x01" + nal, i * 3600, TB))
            if j == len(nals) - 1:
                on_last_slice.append(len(got) == 1 and got[0].pts == i * 3600)
    assert on_last_slice[:7] == [False] * 7  # not guessed before 8 pictures were seen
    assert all(on_last_slice[8:])


def test_more_slices_than_usual_stops_early_flushing() -> None:
    # Two slices per picture for a GOP, then a camera setting change to three: the first 3-slice
    # picture is cut after two slices (the guess), its tail is dropped, and guessing stops.
    two, three = encode(10, "slices=2"), encode(10, "slices=3")
    asm = AccessUnitAssembler("h264")
    units = feed_all(asm, nal_by_nal(two + three))
    assert asm.partial_pictures == 1
    assert len(units) == 20
    assert [u.slices for u in units] == [2] * 11 + [3] * 9
    assert not any(u.keyframe for u in units[11:])  # the dropped IDR tail did not pass for a keyframe


def test_stream_joined_mid_picture_drops_the_tail() -> None:
    pictures = encode(12, "slices=4")
    packets = nal_by_nal(pictures)
    first_slice = next(i for i, (d, _) in enumerate(packets) if d[4] & 0x1F in (1, 5))
    asm = AccessUnitAssembler("h264")
    units = feed_all(asm, packets[first_slice + 2 :])  # the first picture's first two slices are lost
    assert asm.partial_pictures == 1
    assert len(units) == 11 and {u.slices for u in units} == {4}
    # The IDR's tail was not taken for a keyframe: readers start at the next whole one.
    assert [u.keyframe for u in units].index(True) == 9
    assert len(decode_units(units[9:])) == 2
