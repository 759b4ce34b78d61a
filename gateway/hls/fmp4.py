"""Fragmented MP4 (ISO BMFF) for LL-HLS: an init segment and moof+mdat fragments, H.264 only.

Written by hand rather than through a muxer library so a part can be cut at any picture the
moment it is complete (no muxer-side buffering), which is what keeps LL-HLS latency low.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from streams import CLOCK_RATE, split_nals

__all__ = ["H264Params", "Sample", "fragment", "init_segment", "to_sample_data"]

TIMESCALE = CLOCK_RATE  # 90 kHz, the hub's clock
_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
_KEY_FLAGS = 0x02000000  # depends on no other sample
_DELTA_FLAGS = 0x01010000  # depends on others, not a sync sample
_PARAMETER_NALS = {7, 8, 9}  # SPS, PPS, access unit delimiter: in the init segment, not in samples


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *payload)


@dataclass(frozen=True, slots=True)
class H264Params:
    """The parameter sets of an H.264 stream (from a keyframe) and the picture size."""

    sps: bytes
    pps: bytes
    width: int
    height: int

    @property
    def codec_string(self) -> str:
        """RFC 6381 ``avc1.PPCCLL`` for the playlist's CODECS attribute."""
        return "avc1.{:02x}{:02x}{:02x}".format(*self.sps[1:4])

    @classmethod
    def from_access_unit(cls, data: bytes, width: int, height: int) -> H264Params | None:
        """Parameter sets found in front of a keyframe, or None when it carries none."""
        sps = pps = None
        for nal in split_nals(data):
            t = nal[0] & 0x1F
            if t == 7 and sps is None and len(nal) >= 4:
                sps = nal
            elif t == 8 and pps is None:
                pps = nal
        if sps is None or pps is None:
            return None
        return cls(sps, pps, width, height)


@dataclass(frozen=True, slots=True)
class Sample:
    """One picture in a fragment: length-prefixed NAL units and its duration in 90 kHz ticks."""

    data: bytes
    duration: int
    keyframe: bool


def to_sample_data(annexb: bytes) -> bytes:
    """Annex B access unit -> 4-byte length-prefixed NAL units without SPS/PPS/AUD."""
    return b"".join(
        struct.pack(">I", len(nal)) + nal for nal in split_nals(annexb) if nal[0] & 0x1F not in _PARAMETER_NALS
    )


def init_segment(p: H264Params) -> bytes:
    """``ftyp`` + ``moov`` for one H.264 video track (track 1, 90 kHz)."""
    ftyp = _box(b"ftyp", b"iso5", struct.pack(">I", 512), b"iso5iso6mp41")
    mvhd = _full(
        b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, 1000, 0), struct.pack(">IH", 0x00010000, 0x0100), bytes(10),
        _MATRIX, bytes(24), struct.pack(">I", 2),
    )  # fmt: skip
    tkhd = _full(
        b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, 1, 0, 0), bytes(8), struct.pack(">hhhh", 0, 0, 0, 0), _MATRIX,
        struct.pack(">II", p.width << 16, p.height << 16),
    )  # fmt: skip
    mdhd = _full(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, TIMESCALE, 0, 0x55C4, 0))
    hdlr = _full(b"hdlr", 0, 0, struct.pack(">I", 0), b"vide", bytes(12), b"Liandong video\x00")
    avcc = _box(
        b"avcC",
        bytes([1, p.sps[1], p.sps[2], p.sps[3], 0xFF, 0xE1]),
        struct.pack(">H", len(p.sps)), p.sps, b"\x01", struct.pack(">H", len(p.pps)), p.pps,
    )  # fmt: skip
    avc1 = _box(
        b"avc1", bytes(6), struct.pack(">H", 1), bytes(16), struct.pack(">HH", p.width, p.height),
        struct.pack(">II", 0x00480000, 0x00480000), bytes(4), struct.pack(">H", 1), bytes(32),
        struct.pack(">Hh", 0x0018, -1), avcc,
    )  # fmt: skip
    stbl = _box(
        b"stbl",
        _full(b"stsd", 0, 0, struct.pack(">I", 1), avc1),
        _full(b"stts", 0, 0, struct.pack(">I", 0)),
        _full(b"stsc", 0, 0, struct.pack(">I", 0)),
        _full(b"stsz", 0, 0, struct.pack(">II", 0, 0)),
        _full(b"stco", 0, 0, struct.pack(">I", 0)),
    )
    dinf = _box(b"dinf", _full(b"dref", 0, 0, struct.pack(">I", 1), _full(b"url ", 0, 1)))
    minf = _box(b"minf", _full(b"vmhd", 0, 1, bytes(8)), dinf, stbl)
    trak = _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))
    mvex = _box(b"mvex", _full(b"trex", 0, 0, struct.pack(">IIIII", 1, 1, 0, 0, 0)))
    return ftyp + _box(b"moov", mvhd, trak, mvex)


def fragment(sequence: int, base_time: int, samples: Iterable[Sample]) -> bytes:
    """One ``moof`` + ``mdat`` holding ``samples``, starting at decode time ``base_time``."""
    items = list(samples)
    entries = b"".join(
        struct.pack(">III", s.duration, len(s.data), _KEY_FLAGS if s.keyframe else _DELTA_FLAGS) for s in items
    )
    trun_size = 12 + 8 + len(entries)
    tfhd = _full(b"tfhd", 0, 0x020000, struct.pack(">I", 1))  # default-base-is-moof
    tfdt = _full(b"tfdt", 1, 0, struct.pack(">Q", base_time))
    mfhd = _full(b"mfhd", 0, 0, struct.pack(">I", sequence))
    moof_size = 8 + len(mfhd) + 8 + len(tfhd) + len(tfdt) + trun_size
    trun = _full(b"trun", 0, 0x000701, struct.pack(">Ii", len(items), moof_size + 8), entries)
    moof = _box(b"moof", mfhd, _box(b"traf", tfhd, tfdt, trun))
    assert len(moof) == moof_size
    return moof + _box(b"mdat", *(s.data for s in items))
