"""One LL-HLS muxer per camera: reads the hub, cuts fMP4 parts and segments, renders playlists.

Parts are numbered globally (``part<N>.m4s``) so the preload hint always names exactly the next
part; segments are numbered by media sequence (``seg<MSN>.m4s``) and are their parts concatenated.
Everything is held in memory for the last ``segment_count`` segments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from gateway.hls.fmp4 import TIMESCALE, H264Params, Sample, fragment, init_segment, to_sample_data
from streams import AccessUnit, Reader, ReaderClosed, StreamHub

__all__ = ["HlsMuxer", "MuxerSettings", "Part", "Segment", "StreamSource"]

log = logging.getLogger(__name__)
_DEFAULT_DURATION = TIMESCALE // 25
_MAX_DURATION = 5 * TIMESCALE


class StreamSource(Protocol):
    """What the muxer reads: a :class:`streams.feeds.Feed` (the camera's stream or its transcode)."""

    reader: Reader
    source: StreamHub  # the hub the reader belongs to

    def detach(self, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class MuxerSettings:
    """How parts and segments are cut."""

    part_s: float = 0.2
    segment_min_s: float = 1.0
    segment_count: int = 6
    target_duration_s: int = 2


@dataclass(slots=True)
class Part:
    """A fragment of a segment (one moof+mdat)."""

    number: int  # global part number
    data: bytes
    duration: float
    independent: bool


@dataclass(slots=True)
class Segment:
    """A run of parts that starts with a keyframe."""

    msn: int
    init_id: int
    started_wall: float
    parts: list[Part] = field(default_factory=list)
    complete: bool = False
    data: bytes = b""

    @property
    def duration(self) -> float:
        return sum(p.duration for p in self.parts)


class HlsMuxer:
    """Muxes one camera's access units into LL-HLS parts, segments and playlists."""

    def __init__(
        self,
        camera_id: str,
        source: StreamSource,
        settings: MuxerSettings,
        *,
        size: tuple[int, int] = (0, 0),
        transcoded: bool = False,
    ) -> None:
        self.camera_id = camera_id
        self.settings = settings
        self.transcoded = transcoded
        self._source = source
        self._size = size
        self._reader: Reader = source.reader
        self._task: asyncio.Task[None] | None = None
        self.inits: dict[int, tuple[H264Params, bytes]] = {}
        self._init_id = 0
        self.segments: deque[Segment] = deque()
        self._current: Segment | None = None
        self._pending: list[Sample] = []
        self._pending_s = 0.0
        self._prev: AccessUnit | None = None
        self._decode_time = 0  # of the next sample, 90 kHz, continuous across upstream restarts
        self._part_start_time = 0
        self._next_msn = 0
        self._next_part = 0
        self._fragment_seq = 1
        self._generation = 0
        self._max_segment_s = 0.0
        self._changed = asyncio.Condition()
        self.version = 0  # bumped on every new part
        self.last_request = time.monotonic()
        self.closed: str | None = None

    @property
    def reader(self) -> Reader:
        return self._reader

    @property
    def feed_source(self) -> StreamHub:
        """The hub this muxer reads from."""
        return self._source.source

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start muxing what the source's reader delivers."""
        self._task = asyncio.create_task(self._run(), name=f"hls-{self.camera_id}")

    async def stop(self, reason: str) -> None:
        """Detach from the source; blocked requests return."""
        if self.closed is not None:
            return
        self.closed = reason
        self._source.detach(reason)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task  # _run catches everything else itself
        async with self._changed:
            self._changed.notify_all()

    async def _run(self) -> None:
        try:
            while True:
                au = await self._reader.get()
                if self._reader.generation != self._generation:
                    self._generation = self._reader.generation
                    self._flush_pending_sample(None)
                    self._close_segment()
                changed = self._feed(au)
                if changed:
                    self.version += 1
                    async with self._changed:
                        self._changed.notify_all()
        except ReaderClosed as e:
            self.closed = self.closed or str(e)
            async with self._changed:
                self._changed.notify_all()
        except Exception:
            log.exception("camera %s: HLS muxer failed", self.camera_id)
            self.closed = self.closed or "muxer failed"
            async with self._changed:
                self._changed.notify_all()

    # -- muxing ------------------------------------------------------------------------------
    def _feed(self, au: AccessUnit) -> bool:
        """Take one access unit; True when a part was completed."""
        changed = self._flush_pending_sample(au)
        if au.keyframe:
            params = H264Params.from_access_unit(au.data, *self._size)
            if params is not None and (not self.inits or self.inits[self._init_id][0] != params):
                self._init_id += 1
                self.inits[self._init_id] = (params, init_segment(params))
                for old in [k for k in self.inits if k < self._init_id - 1]:
                    if not any(s.init_id == old for s in self.segments):
                        del self.inits[old]
        if not self.inits:
            return changed  # nothing decodable yet
        self._prev = au
        return changed

    def _flush_pending_sample(self, nxt: AccessUnit | None) -> bool:
        """The previous picture's duration is known now that ``nxt`` arrived: add it to the part."""
        prev, self._prev = self._prev, None
        if prev is None:
            return False
        dur = nxt.pts - prev.pts if nxt is not None else _DEFAULT_DURATION
        if dur <= 0 or dur > _MAX_DURATION:
            dur = _DEFAULT_DURATION
        changed = False
        if prev.keyframe and (self._current is None or self._current_s() >= self.settings.segment_min_s):
            changed |= self._close_segment()
        if self._current is None:
            if not prev.keyframe:
                return changed
            self._current = Segment(self._next_msn, self._init_id, prev.wallclock)
            self._next_msn += 1
        if not self._pending:
            self._part_start_time = self._decode_time
        self._pending.append(Sample(to_sample_data(prev.data), dur, prev.keyframe))
        self._pending_s += dur / TIMESCALE
        self._decode_time += dur
        if self._pending_s >= self.settings.part_s - 0.001:
            changed |= self._close_part()
        return changed

    def _current_s(self) -> float:
        assert self._current is not None
        return self._current.duration + self._pending_s

    def _close_part(self) -> bool:
        if not self._pending or self._current is None:
            return False
        data = fragment(self._fragment_seq, self._part_start_time, self._pending)
        self._fragment_seq += 1
        part = Part(self._next_part, data, self._pending_s, self._pending[0].keyframe)
        self._next_part += 1
        self._current.parts.append(part)
        self._pending = []
        self._pending_s = 0.0
        if self._current.msn not in (s.msn for s in self.segments):
            self.segments.append(self._current)
        return True

    def _close_segment(self) -> bool:
        changed = self._close_part()
        seg, self._current = self._current, None
        if seg is None or not seg.parts:
            return changed
        seg.complete = True
        seg.data = b"".join(p.data for p in seg.parts)
        self._max_segment_s = max(self._max_segment_s, seg.duration)
        while len([s for s in self.segments if s.complete]) > self.settings.segment_count:
            self.segments.popleft()
        keep = self._part_window()
        for s in self.segments:
            if s.complete and s.msn < keep:
                for p in s.parts:
                    p.data = b""  # the segment holds the bytes; old parts are no longer listed
        return True

    def _part_window(self) -> int:
        """Segments from this media sequence number on list their parts (the last ~3 target durations)."""
        complete = [s for s in self.segments if s.complete]
        return complete[-2].msn if len(complete) >= 2 else (complete[0].msn if complete else 0)

    # -- reading -----------------------------------------------------------------------------
    @property
    def target_duration(self) -> int:
        return max(self.settings.target_duration_s, math.ceil(self._max_segment_s))

    @property
    def params(self) -> H264Params | None:
        return self.inits[self._init_id][0] if self.inits else None

    def init(self, init_id: int) -> bytes | None:
        got = self.inits.get(init_id)
        return got[1] if got else None

    def segment(self, msn: int) -> Segment | None:
        for s in self.segments:
            if s.msn == msn:
                return s
        return None

    def part(self, number: int) -> Part | None:
        for s in reversed(self.segments):
            if s.parts and s.parts[0].number <= number:
                for p in s.parts:
                    if p.number == number:
                        return p if p.data else None
                return None
        return None

    @property
    def next_part(self) -> int:
        return self._next_part

    def has(self, msn: int, part: int | None) -> bool:
        """Whether the playlist already contains segment ``msn`` (its part ``part``)."""
        last = self.segments[-1] if self.segments else None
        if last is None:
            return False
        if last.msn > msn:
            return True
        if last.msn < msn:
            return False
        return last.complete if part is None else len(last.parts) > part

    async def wait(self, ready: Callable[[], bool], timeout_s: float) -> bool:
        """Block until ``ready()`` (checked whenever a part is added), the muxer closes, or timeout."""
        deadline = time.monotonic() + timeout_s
        async with self._changed:
            while not ready():
                if self.closed is not None:
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                try:
                    await asyncio.wait_for(self._changed.wait(), left)
                except TimeoutError:
                    return ready()
        return True

    def media_playlist(self, query: str) -> str:
        """The LL-HLS media playlist; ``query`` (e.g. ``?s=...``) is appended to every URI."""
        part_target = self.settings.part_s
        segs = list(self.segments)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:9",
            f"#EXT-X-TARGETDURATION:{self.target_duration}",
            f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={3 * part_target:.3f}",
            f"#EXT-X-PART-INF:PART-TARGET={part_target:.3f}",
            f"#EXT-X-MEDIA-SEQUENCE:{segs[0].msn if segs else 0}",
        ]
        window = self._part_window()
        init_id = None
        for s in segs:
            if s.init_id != init_id:
                if init_id is not None:
                    lines.append("#EXT-X-DISCONTINUITY")
                init_id = s.init_id
                lines.append(f'#EXT-X-MAP:URI="init{init_id}.mp4{query}"')
            when = datetime.fromtimestamp(s.started_wall, UTC).isoformat(timespec="milliseconds")
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{when.replace('+00:00', 'Z')}")
            if s.msn >= window or not s.complete:
                for p in s.parts:
                    indep = ",INDEPENDENT=YES" if p.independent else ""
                    lines.append(f'#EXT-X-PART:DURATION={p.duration:.5f},URI="part{p.number}.m4s{query}"{indep}')
            if s.complete:
                lines.append(f"#EXTINF:{s.duration:.5f},")
                lines.append(f"seg{s.msn}.m4s{query}")
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part{self._next_part}.m4s{query}"')
        return "\n".join(lines) + "\n"
