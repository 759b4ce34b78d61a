"""What playback and export ask of the recordings: ranges and gaps, an HLS VOD playlist over the
segment files (byte ranges, exact start), a segment file, and a signed export."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recording.export import ExportEmpty, export_key, manifest, remux_range
from recording.fmp4 import init_length
from recording.index import RecordingIndex
from recording.locks import Locks
from recording.models import RecordingSegment
from recording.signing import EvidenceKey

__all__ = ["Clip", "ExportEmpty", "RecordingLibrary", "SpreadOverNodes"]


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds")


class SpreadOverNodes(Exception):
    """A range whose files lie on several nodes (and not on storage they share): no one node can serve it."""

    def __init__(self, nodes: list[str]) -> None:
        super().__init__(
            f"this range is recorded on several nodes ({', '.join(nodes)}) without shared storage: "
            "ask for the part each holds"
        )
        self.nodes = nodes


@dataclass(frozen=True, slots=True)
class Clip:
    """An exported clip on disk and its signed manifest."""

    path: Path
    manifest: dict[str, Any]


class RecordingLibrary:
    """Reads the recordings of this node's directory (one export at a time per node: exports remux on a thread)."""

    def __init__(self, index: RecordingIndex, key: EvidenceKey, node: str, locks: Locks, max_exports: int = 2) -> None:
        self.index = index
        self.locks = locks
        self.root = index.root
        self.key = key
        self.node = node
        self._exports = asyncio.Semaphore(max_exports)

    async def listing(self, camera_id: str, start: float, end: float, incident: str | None = None) -> dict[str, Any]:
        """Recorded ranges and gaps of [start, end), and the segments behind them."""
        rows = await self.index.segments(camera_id, start, end, incident=incident)
        spans, gaps = self.index.ranges(rows, start, end)
        return {
            "camera_id": camera_id,
            "start": _iso(start),
            "end": _iso(end),
            "ranges": [{"start": _iso(s.start), "end": _iso(s.end)} for s in spans],
            "gaps": [{"start": _iso(g.start), "end": _iso(g.end)} for g in gaps],
            "segments": [
                {
                    "id": r.id,
                    "start": _iso(r.start),
                    "end": _iso(r.end),
                    "bytes": r.bytes,
                    "codec": r.codec,
                    "width": r.width,
                    "height": r.height,
                    "node": r.node,
                    "sha256": r.sha256,
                    "incidents": r.incidents,
                }
                for r in rows
            ],
        }

    async def playlist(
        self, camera_id: str, start: float, end: float, segment_uri: str, incident: str | None = None
    ) -> str | None:
        """An HLS VOD playlist of the segments covering [start, end) (fMP4 byte ranges, one discontinuity per
        file), starting precisely at ``start``; ``segment_uri`` is formatted with ``id``. None: nothing recorded."""
        rows = await self.index.segments(camera_id, start, end, incident=incident)
        if not rows:
            return None
        sizes = await asyncio.to_thread(lambda: [(init_length(self.root / r.path), r.bytes) for r in rows])
        target = max(math.ceil(r.end - r.start) for r in rows)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:7",
            "#EXT-X-PLAYLIST-TYPE:VOD",
            f"#EXT-X-TARGETDURATION:{target}",
            "#EXT-X-INDEPENDENT-SEGMENTS",
            f"#EXT-X-START:TIME-OFFSET={max(0.0, start - rows[0].start):.3f},PRECISE=YES",
        ]
        for i, (r, (init, size)) in enumerate(zip(rows, sizes, strict=True)):
            if init <= 0 or size <= init:
                continue
            uri = segment_uri.format(id=r.id)
            if i:
                lines.append("#EXT-X-DISCONTINUITY")  # each file's timeline starts at zero
            lines += [
                f"#EXT-X-PROGRAM-DATE-TIME:{_iso(r.start)}",
                f'#EXT-X-MAP:URI="{uri}",BYTERANGE="{init}@0"',
                f"#EXTINF:{r.end - r.start:.3f},",
                f"#EXT-X-BYTERANGE:{size - init}@{init}",
                uri,
            ]
        lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    async def held_by(self, camera_id: str, start: float, end: float, incident: str | None = None) -> str | None:
        """The node to send a playback or export of [start, end) to: None when this node can serve it (its
        files are here: ours, or a shared ``recording.path``), else the one other node that wrote them all
        (:class:`SpreadOverNodes` when they are on several)."""
        rows = await self.index.segments(camera_id, start, end, incident=incident)
        here = await asyncio.to_thread(lambda: [(self.root / r.path).is_file() for r in rows])
        away = {r.node for r, ok in zip(rows, here, strict=True) if not ok and r.node != self.node}
        if not away:
            return None  # everything here (a file of ours that is missing is served as missing, not sent away)
        if len(away) == 1 and not any(here):
            return away.pop()
        raise SpreadOverNodes(sorted(away | ({self.node} if any(here) else set())))

    def is_here(self, row: RecordingSegment) -> bool:
        """Whether the segment's file can be read on this node."""
        return (self.root / row.path).is_file()

    async def segment(self, camera_id: str, segment_id: int, incident: str | None = None) -> RecordingSegment | None:
        """A segment of this camera (of this incident, if given) whose file is here."""
        row = await self.index.get(segment_id)
        if row is None or row.camera_id != camera_id or row.deleted_at is not None:
            return None
        if incident is not None and incident not in (row.incidents or []):
            return None
        return row

    async def export(self, camera_id: str, start: float, end: float, *, user: str, incident: str | None = None) -> Clip:
        """The clip of [start, end) (made once per range and set of segments) and its signed manifest;
        :class:`ExportEmpty` when nothing is recorded there."""
        rows = await self.index.segments(camera_id, start, end, incident=incident)
        if not rows:
            raise ExportEmpty("nothing is recorded in this range")
        out = self.root / ".exports" / f"{export_key(camera_id, start, end, rows)}.mp4"
        async with self._exports:
            out.parent.mkdir(parents=True, exist_ok=True)
            clip_range = await asyncio.to_thread(_make_clip, self.root, rows, start, end, out)
            doc = await asyncio.to_thread(
                manifest,
                camera_id=camera_id,
                rows=rows,
                requested=(start, end),
                clip=out,
                clip_range=clip_range,
                incident=incident,
                user=user,
                node=self.node,
            )
        return Clip(out, await asyncio.to_thread(self.key.sign, doc))


def _make_clip(root: Path, rows: list[RecordingSegment], start: float, end: float, out: Path) -> tuple[float, float]:
    """The clip (made once; its range kept beside it so a second request for it needs no remux)."""
    side = out.with_suffix(".range.json")
    if out.exists() and side.exists():
        lo, hi = json.loads(side.read_text())
        return float(lo), float(hi)
    got = remux_range(root, rows, start, end, out)
    side.write_text(json.dumps(list(got)))
    return got
