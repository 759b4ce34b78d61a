"""Turn demuxed packets of real cameras into clean access units.

Real cameras (and our fixture's multi-slice mount) send things decoders and packetizers trip on:
the first IDR without a pts, one frame split over several packets (slices sharing a pts),
SPS/PPS only in the SDP, and timestamps that jump or wrap. :class:`AccessUnitAssembler` fixes
all of these and yields :class:`AccessUnit` objects: one whole picture each, Annex B, with a
monotonic 90 kHz timestamp, and SPS/PPS (VPS for H.265) in front of every keyframe.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

__all__ = ["CLOCK_RATE", "AccessUnit", "AccessUnitAssembler", "split_nals"]

log = logging.getLogger(__name__)

CLOCK_RATE = 90_000
_START = re.compile(b"\x00\x00\x01")
_MAX_JUMP = 10 * CLOCK_RATE  # a pts step larger than this (or negative) is a discontinuity
# Pictures with the same slice count (a keyframe among them) before a picture is flushed as soon as
# its last slice arrives instead of when the next picture starts (one frame less latency).
_UNIFORM_PICTURES = 8


def split_nals(data: bytes) -> list[bytes]:
    """NAL units of an Annex B buffer (or of a 4-byte length-prefixed AVCC buffer)."""
    if not data:
        return []
    if data.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")):
        starts = [m.end() for m in _START.finditer(data)]
        out = []
        for i, s in enumerate(starts):
            end = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
            nal = data[s:end].rstrip(b"\x00") if i + 1 < len(starts) else data[s:end]
            if nal:
                out.append(nal)
        return out
    out, pos = [], 0
    while pos + 4 <= len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        if n == 0 or pos + 4 + n > len(data):
            break
        out.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out


def _annexb(nals: list[bytes]) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + n for n in nals)


def _first_ue(data: bytes, bit: int) -> int | None:
    """Read one unsigned Exp-Golomb value starting at ``bit``; None when truncated."""
    zeros = 0
    total = len(data) * 8
    while bit < total and not (data[bit >> 3] >> (7 - (bit & 7))) & 1:
        zeros += 1
        bit += 1
    if bit + zeros >= total:
        return None
    value = 0
    for _ in range(zeros + 1):
        value = (value << 1) | ((data[bit >> 3] >> (7 - (bit & 7))) & 1)
        bit += 1
    return value - 1


class _Codec:
    """NAL-type knowledge for one codec."""

    def __init__(self, name: str) -> None:
        self.hevc = name in ("hevc", "h265")

    def nal_type(self, nal: bytes) -> int:
        return (nal[0] >> 1) & 0x3F if self.hevc else nal[0] & 0x1F

    def is_vcl(self, t: int) -> bool:
        return t < 32 if self.hevc else 1 <= t <= 5

    def is_key(self, t: int) -> bool:
        return 16 <= t <= 21 if self.hevc else t == 5

    def param_types(self) -> tuple[int, ...]:
        return (32, 33, 34) if self.hevc else (7, 8)

    def is_aud(self, t: int) -> bool:
        return t == (35 if self.hevc else 9)

    def starts_picture(self, nal: bytes) -> bool:
        """True when a VCL NAL is the first slice of a picture."""
        if self.hevc:
            return len(nal) > 2 and bool(nal[2] & 0x80)  # first_slice_segment_in_pic_flag
        return _first_ue(nal, 8) == 0  # first_mb_in_slice == 0


@dataclass(slots=True)
class AccessUnit:
    """One whole coded picture."""

    data: bytes
    pts: int  # 90 kHz, monotonic
    keyframe: bool
    wallclock: float  # time.time() when its first byte arrived
    seq: int = 0
    slices: int = 1


@dataclass
class AccessUnitAssembler:
    """Feed demuxed packets with :meth:`feed`; it yields whole, clean access units."""

    codec: str
    extradata: bytes = b""
    _c: _Codec = field(init=False)
    _params: dict[int, bytes] = field(init=False, default_factory=dict)
    _pending: list[bytes] = field(init=False, default_factory=list)
    _pending_pts: int | None = field(init=False, default=None)
    _pending_wall: float = field(init=False, default=0.0)
    _pending_slices: int = field(init=False, default=0)
    _pending_partial: bool = field(init=False, default=False)
    _uniform_slices: int | None = field(init=False, default=None)  # 0: counts differ, never flush early
    _uniform_pictures: int = field(init=False, default=0)
    _uniform_keyframes: int = field(init=False, default=0)
    _last_flush_early: bool = field(init=False, default=False)
    _in_pts: int | None = field(init=False, default=None)
    _out_pts: int = field(init=False, default=0)
    _deltas: deque[int] = field(init=False, default_factory=lambda: deque(maxlen=16))
    _seq: int = field(init=False, default=0)
    discontinuities: int = field(init=False, default=0)
    partial_pictures: int = field(init=False, default=0)  # dropped: their first slice never came

    def __post_init__(self) -> None:
        self._c = _Codec(self.codec)
        self._remember_params(split_nals(self.extradata) if self.extradata else [])
        if self.extradata and self.extradata[:1] == b"\x01":
            self._remember_params(_avcc_params(self.extradata, self._c.hevc))

    def _remember_params(self, nals: list[bytes]) -> None:
        for nal in nals:
            if nal and self._c.nal_type(nal) in self._c.param_types():
                self._params[self._c.nal_type(nal)] = nal

    @property
    def frame_duration(self) -> int:
        """Median pts step of recent frames (90 kHz), 3600 (25 fps) until known."""
        if not self._deltas:
            return CLOCK_RATE // 25
        return sorted(self._deltas)[len(self._deltas) // 2]

    def feed(self, data: bytes, pts: int | None, time_base: Fraction | None) -> Iterator[AccessUnit]:
        """Add one demuxed packet; yield every access unit it completes."""
        nals = split_nals(data)
        if not nals:
            return
        pts90 = None if pts is None or time_base is None else int(pts * time_base * CLOCK_RATE)
        vcl = [n for n in nals if self._c.is_vcl(self._c.nal_type(n))]
        new_picture = bool(vcl) and self._c.starts_picture(vcl[0])
        # A new picture starts: flush what is pending, but only if it holds a slice (parameter sets
        # and SEI that arrived on their own belong to the picture that follows them).
        if self._pending_slices and (
            new_picture
            or any(self._c.is_aud(self._c.nal_type(n)) for n in nals[:1])
            or (pts90 is not None and self._pending_pts is not None and pts90 != self._pending_pts)
        ):
            unit = self._flush()
            if unit is not None:
                yield unit
        if not self._pending:
            self._pending_wall = time.time()
        if not self._pending_slices and vcl:
            # The first slice of what becomes the next unit: it must start a picture, or the unit is
            # the tail of one (the stream began mid-picture, or an early flush guessed wrong).
            self._pending_partial = not new_picture
            if self._pending_partial and self._last_flush_early:
                self._uniform_slices = 0  # a picture had more slices than the others: stop guessing
                log.warning("%s stream: slice count per picture varies; flushing pictures at boundaries", self.codec)
        if not self._pending_slices and pts90 is not None:
            self._pending_pts = pts90
        self._pending.extend(nals)
        self._pending_slices += len(vcl)
        if self._early_flush_at() and self._pending_slices >= self._early_flush_at():
            unit = self._flush(early=True)
            if unit is not None:
                yield unit

    def _early_flush_at(self) -> int:
        """Slices per picture when every picture so far had that many (a keyframe too), else 0.

        Cameras that cut slices by size (e.g. to fit a network MTU) send more slices for keyframes
        than for other pictures; for them a picture ends only when the next one starts.
        """
        if self._uniform_slices and self._uniform_keyframes and self._uniform_pictures >= _UNIFORM_PICTURES:
            return self._uniform_slices
        return 0

    def flush(self) -> Iterator[AccessUnit]:
        """Yield the access unit still pending (at end of stream)."""
        if self._pending:
            unit = self._flush()
            if unit is not None:
                yield unit

    def _flush(self, early: bool = False) -> AccessUnit | None:
        """The pending unit, cleaned; None when it is the tail of a picture whose start was lost."""
        nals, pts90, slices = self._pending, self._pending_pts, self._pending_slices
        self._pending, self._pending_pts, self._pending_slices = [], None, 0
        self._last_flush_early = early
        if slices and self._pending_partial:
            # Undecodable on its own, and an IDR tail would pass for a keyframe: drop it.
            self._pending_partial = False
            self.partial_pictures += 1
            return None
        c = self._c
        clean: list[bytes] = []
        seen_vcl = False
        key = False
        for nal in nals:
            t = c.nal_type(nal)
            if c.is_vcl(t):
                seen_vcl = True
                key = key or c.is_key(t)
                clean.append(nal)
            elif t in c.param_types():
                self._params[t] = nal
                if not seen_vcl:
                    clean.append(nal)
            elif not seen_vcl and not c.is_aud(t):
                clean.append(nal)  # SEI and friends before the first slice
        if key:
            present = {c.nal_type(n) for n in clean}
            missing = [self._params[t] for t in c.param_types() if t not in present and t in self._params]
            if missing:
                clean = missing + clean
            else:
                # Put the parameter sets first, in order, even when the camera sent them elsewhere.
                params = [n for n in clean if c.nal_type(n) in c.param_types()]
                clean = params + [n for n in clean if c.nal_type(n) not in c.param_types()]
        if slices:
            self._count_slices(slices, key)
        self._seq += 1
        return AccessUnit(
            data=_annexb(clean),
            pts=self._timeline(pts90),
            keyframe=key,
            wallclock=self._pending_wall,
            seq=self._seq,
            slices=max(slices, 1),
        )

    def _count_slices(self, slices: int, key: bool) -> None:
        if self._uniform_slices is None:
            self._uniform_slices = slices
        elif self._uniform_slices != slices:
            self._uniform_slices = 0
        self._uniform_pictures += 1
        self._uniform_keyframes += key

    def _timeline(self, pts90: int | None) -> int:
        """Map camera timestamps onto a monotonic timeline that survives gaps, jumps and wraps."""
        if pts90 is None:
            out = self._out_pts + self.frame_duration if self._seq > 1 else 0
        elif self._in_pts is None:
            out = self._out_pts + (self.frame_duration if self._seq > 1 else 0)
        else:
            delta = pts90 - self._in_pts
            if 0 < delta <= _MAX_JUMP:
                self._deltas.append(delta)
                out = self._out_pts + delta
            else:
                self.discontinuities += 1
                out = self._out_pts + self.frame_duration
        if pts90 is not None:
            self._in_pts = pts90
        self._out_pts = out
        return out


def _avcc_params(extradata: bytes, hevc: bool) -> list[bytes]:
    """SPS/PPS from an avcC record (H.264 only; hvcC parameter sets are taken from in-band NALs)."""
    if hevc or len(extradata) < 7:
        return []
    out: list[bytes] = []
    pos = 5
    try:
        n_sps = extradata[pos] & 0x1F
        pos += 1
        for _ in range(n_sps):
            ln = int.from_bytes(extradata[pos : pos + 2], "big")
            out.append(extradata[pos + 2 : pos + 2 + ln])
            pos += 2 + ln
        n_pps = extradata[pos]
        pos += 1
        for _ in range(n_pps):
            ln = int.from_bytes(extradata[pos : pos + 2], "big")
            out.append(extradata[pos + 2 : pos + 2 + ln])
            pos += 2 + ln
    except IndexError:
        return out
    return [n for n in out if n]
