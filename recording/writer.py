"""One segment file: access units from the hub written as they are (no re-encoding) into a
fragmented MP4 by FFmpeg's muxer (through PyAV), each fragment flushed to the file when it closes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from streams.packets import CLOCK_RATE, AccessUnit, split_nals

__all__ = ["SegmentFile", "SegmentWriter", "parameter_sets", "sha256_file"]

_TB = Fraction(1, CLOCK_RATE)
_MUXER = "mp4"


def parameter_sets(codec: str, data: bytes) -> bytes:
    """The parameter sets (VPS/SPS/PPS) in front of a keyframe, Annex B: the track's extradata."""
    hevc = codec in ("hevc", "h265")
    wanted = (32, 33, 34) if hevc else (7, 8)
    nals = [n for n in split_nals(data) if ((n[0] >> 1) & 0x3F if hevc else n[0] & 0x1F) in wanted]
    return b"".join(b"\x00\x00\x00\x01" + n for n in nals)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class SegmentFile:
    """A closed segment: where, from when to when (epoch seconds), its size and codec."""

    path: Path
    start: float
    end: float
    bytes: int
    codec: str
    width: int
    height: int


class SegmentWriter:
    """Writes one segment, starting at a keyframe. ``start`` is the first picture's wall-clock time;
    later pictures are placed by their own timestamps (never the clock), so a segment's duration is
    what its samples say."""

    def __init__(
        self, camera_id: str, path: Path, codec: str, width: int, height: int, first: AccessUnit, fragment_s: float
    ) -> None:
        if not first.keyframe:
            raise ValueError("a segment starts at a keyframe")
        self.path = path
        self.codec = "hevc" if codec in ("hevc", "h265") else "h264"
        self.width, self.height = width, height
        self.start = first.wallclock
        self._t0 = first.pts
        self._last_pts = first.pts
        self._last_wall = first.wallclock
        self._step = CLOCK_RATE // 25
        self.units = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._out = av.open(
            str(path),
            "w",
            format=_MUXER,
            options={
                # Fragments begin at keyframes and close every fragment_s; each goes to the file at once.
                "movflags": "frag_keyframe+empty_moov+default_base_moof",
                "frag_duration": str(int(fragment_s * 1_000_000)),
                "flush_packets": "1",
                "fflags": "+bitexact",
            },
        )
        self._out.metadata["comment"] = camera_id  # lets a file found without its index row be re-indexed
        try:
            self._stream = self._out.add_stream(self.codec)
            assert isinstance(self._stream, av.VideoStream)
            self._stream.width, self._stream.height = width, height
            self._stream.time_base = _TB
            self._stream.codec_context.extradata = parameter_sets(self.codec, first.data)
        except BaseException:
            self._out.close()
            raise
        self.write(first)

    @property
    def duration_s(self) -> float:
        """Seconds covered so far (the last picture lasts one frame)."""
        return (self._last_pts - self._t0 + self._step) / CLOCK_RATE

    def write(self, au: AccessUnit) -> None:
        """Add one access unit (its pts must follow the previous one's)."""
        if self.units and au.pts <= self._last_pts:
            return  # not after the previous picture: a muxer would refuse it
        if self.units:
            self._step = max(1, min(au.pts - self._last_pts, CLOCK_RATE))
        pkt = av.Packet(au.data)
        pkt.stream = self._stream
        pkt.time_base = _TB
        pkt.pts = pkt.dts = au.pts - self._t0
        pkt.is_keyframe = au.keyframe
        self._out.mux(pkt)
        self._last_pts = au.pts
        self._last_wall = au.wallclock
        self.units += 1

    def close(self) -> SegmentFile:
        """Finish the file (the last fragment is written) and describe it."""
        self._out.close()
        # A segment ends when its last picture arrived (plus one frame) and lasts what its timestamps say.
        # The first pictures of a stream arrive late together (the demuxer probes them), so anchoring on
        # the first arrival would push the end past a camera's flap and hide the outage from the index.
        start = min(self.start, self._last_wall + self._step / CLOCK_RATE - self.duration_s)
        return SegmentFile(
            self.path,
            start,
            start + self.duration_s,
            self.path.stat().st_size,
            self.codec,
            self.width,
            self.height,
        )

    def abandon(self) -> None:
        """Close without caring whether the trailer could be written (disk full, shutdown)."""
        try:
            self._out.close()
        except (OSError, av.FFmpegError):
            pass
