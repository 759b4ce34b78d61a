"""The recording index in the database: segments added with their place in the camera's hash chain,
ranges and gaps for a time span, and reconciliation of the files on disk after a crash."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import av
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from recording.fmp4 import truncate_torn
from recording.models import RecordingSegment
from recording.writer import SegmentFile, sha256_file
from storage.db import Database

__all__ = ["GAP_TOLERANCE_S", "RecordingIndex", "Span", "segment_path"]

log = logging.getLogger(__name__)
GAP_TOLERANCE_S = 0.25  # segments closer than this are one range (a cut at a keyframe leaves none: the next
# segment starts where the last ended; after a flap or a drop it starts at its first picture's arrival)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def segment_path(camera_id: str, start: float) -> Path:
    """Where a camera's segment starting at ``start`` goes, relative to the recordings directory."""
    day = time.strftime("%Y-%m-%d", time.gmtime(start))
    return Path(_SAFE.sub("_", camera_id)) / day / f"{int(start * 1000)}.mp4"


@dataclass(frozen=True, slots=True)
class Span:
    """A time span (epoch seconds)."""

    start: float
    end: float


class RecordingIndex:
    """Segments of every camera: written by the recorder, read by playback, export and verify."""

    def __init__(self, db: Database, root: Path, node: str) -> None:
        self.db = db
        self.root = root
        self.node = node
        # One writer at a time: a chain link reads the camera's last row, then writes (on SQLite a read
        # transaction that turns into a write fails at once, whatever the busy timeout, if another
        # wrote meanwhile; 50 cameras cut segments at the same moments).
        self._writing = asyncio.Lock()

    async def add(self, camera_id: str, seg: SegmentFile, reasons: list[str], incidents: list[str]) -> RecordingSegment:
        """Index a closed segment: its sha256, and the camera's previous segment's as its link."""
        digest = await asyncio.to_thread(sha256_file, seg.path)
        for attempt in range(6):
            try:
                async with self._writing:
                    return await self._insert(camera_id, seg, digest, reasons, incidents)
            except OperationalError:  # locked by another process (a CLI, another node on SQLite)
                if attempt == 5:
                    raise
                await asyncio.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")

    async def _insert(
        self, camera_id: str, seg: SegmentFile, digest: str, reasons: list[str], incidents: list[str]
    ) -> RecordingSegment:
        async with self.db.session() as s:
            last = await s.scalar(
                select(RecordingSegment)
                .where(RecordingSegment.camera_id == camera_id)
                .order_by(RecordingSegment.id.desc())
                .limit(1)
            )
            row = RecordingSegment(
                camera_id=camera_id,
                start=seg.start,
                end=seg.end,
                path=str(seg.path.relative_to(self.root)),
                bytes=seg.bytes,
                codec=seg.codec,
                width=seg.width,
                height=seg.height,
                node=self.node,
                sha256=digest,
                prev_sha256=last.sha256 if last is not None else "",
                reasons=sorted(set(reasons)),
                incidents=sorted(set(incidents)),
            )
            s.add(row)
            await s.flush()  # the id; the session commits on leaving
        return row

    async def segments(
        self, camera_id: str, start: float, end: float, *, incident: str | None = None
    ) -> list[RecordingSegment]:
        """Segments of the camera overlapping [start, end), oldest first (only the incident's, if given)."""
        async with self.db.session() as s:
            rows = (
                await s.scalars(
                    select(RecordingSegment)
                    .where(
                        RecordingSegment.camera_id == camera_id,
                        RecordingSegment.start < end,
                        RecordingSegment.end > start,
                        RecordingSegment.deleted_at.is_(None),
                    )
                    .order_by(RecordingSegment.start)
                )
            ).all()
        return [r for r in rows if incident is None or incident in (r.incidents or [])]

    async def get(self, segment_id: int) -> RecordingSegment | None:
        """One segment row."""
        async with self.db.session() as s:
            return await s.get(RecordingSegment, segment_id)

    async def chain(self, camera_id: str, since: float) -> list[RecordingSegment]:
        """The camera's segments in chain order from the last one before ``since`` on."""
        async with self.db.session() as s:
            rows = (
                await s.scalars(
                    select(RecordingSegment)
                    .where(RecordingSegment.camera_id == camera_id)
                    .order_by(RecordingSegment.id)
                )
            ).all()
        first = next((i for i, r in enumerate(rows) if r.end > since), len(rows))
        return list(rows[max(first - 1, 0) :])

    @staticmethod
    def ranges(rows: list[RecordingSegment], start: float, end: float) -> tuple[list[Span], list[Span]]:
        """What is recorded of [start, end) as merged ranges, and the gaps between them and the ends."""
        spans: list[Span] = []
        for r in sorted(rows, key=lambda r: r.start):
            lo, hi = max(r.start, start), min(r.end, end)
            if hi <= lo:
                continue
            if spans and lo - spans[-1].end <= GAP_TOLERANCE_S:
                spans[-1] = Span(spans[-1].start, max(spans[-1].end, hi))
            else:
                spans.append(Span(lo, hi))
        gaps: list[Span] = []
        cursor = start
        for sp in spans:
            if sp.start - cursor > GAP_TOLERANCE_S:
                gaps.append(Span(cursor, sp.start))
            cursor = sp.end
        if end - cursor > GAP_TOLERANCE_S:
            gaps.append(Span(cursor, end))
        return spans, gaps

    async def reconcile(self) -> int:
        """Index segment files the gateway wrote but never indexed (it died while writing them): a torn
        last fragment is cut off first; files without a whole fragment are removed. Returns files indexed."""
        async with self.db.session() as s:
            known = set((await s.scalars(select(RecordingSegment.path))).all())
        found = 0
        for path in sorted(self.root.glob("*/*/*.mp4"), key=lambda p: p.name):
            rel = str(path.relative_to(self.root))
            if rel in known:
                continue
            seg = await asyncio.to_thread(_recover, path)
            if seg is None:
                log.warning("recording %s held no whole fragment: removed", rel)
                path.unlink(missing_ok=True)
                continue
            camera_id = await asyncio.to_thread(_camera_of, path)
            await self.add(camera_id, seg, ["recovered"], [])
            found += 1
            log.warning("recording %s: recovered after an unclean stop (%.1f s)", rel, seg.end - seg.start)
        return found


def _camera_of(path: Path) -> str:
    """The camera a segment file belongs to (written into its metadata by the recorder)."""
    with av.open(str(path)) as c:
        return str(c.metadata.get("comment", path.parent.parent.name))


def _recover(path: Path) -> SegmentFile | None:
    cut = truncate_torn(path)
    if cut:
        log.warning("recording %s: cut %d bytes of a torn fragment", path, cut)
    try:
        with av.open(str(path)) as c:
            v = c.streams.video[0]
            tb = v.time_base
            last = None
            for pkt in c.demux(v):
                if pkt.pts is not None:
                    last = pkt.pts if last is None else max(last, pkt.pts)
            if last is None or tb is None:
                return None
            frame = 1 / float(v.average_rate) if v.average_rate else 0.04
            start = int(path.stem.split("-")[0]) / 1000
            return SegmentFile(
                path,
                start,
                start + float(last * tb) + frame,
                path.stat().st_size,
                v.codec_context.name,
                v.codec_context.width,
                v.codec_context.height,
            )
    except (av.FFmpegError, OSError, ValueError):
        return None
