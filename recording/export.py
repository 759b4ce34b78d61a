"""Export: a time range remuxed (never re-encoded) from the camera's segments into one MP4, from the
last keyframe at or before the start to the end, and the manifest that proves where it came from."""

from __future__ import annotations

import datetime as dt
import hashlib
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from recording.models import RecordingSegment
from recording.writer import sha256_file

__all__ = ["ExportEmpty", "export_key", "manifest", "remux_range"]

_TB = Fraction(1, 90_000)


class ExportEmpty(Exception):
    """Nothing is recorded in the range."""


def export_key(camera_id: str, start: float, end: float, rows: list[RecordingSegment]) -> str:
    """A name for the clip of exactly these segments and this range (the same request makes the same clip)."""
    h = hashlib.sha256(f"{camera_id}|{start:.3f}|{end:.3f}".encode())
    for r in rows:
        h.update(r.sha256.encode())
    return h.hexdigest()[:32]


def remux_range(root: Path, rows: list[RecordingSegment], start: float, end: float, out: Path) -> tuple[float, float]:
    """Write [start, end) of ``rows`` to ``out`` (MP4, moov first); returns the clip's actual (start, end):
    it begins at the keyframe at or before ``start`` (or the first recorded one after it)."""
    tmp = out.with_suffix(".part")
    first_t: float | None = None
    last_t = 0.0
    written = 0
    last_ts = -1
    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart", "fflags": "+bitexact"}) as dst:
        vout: Any = None
        for row in rows:
            with av.open(str(root / row.path)) as src:
                vin = src.streams.video[0]
                if vout is None:
                    vout = dst.add_stream_from_template(vin)
                    vout.time_base = _TB
                gop: list[tuple[float, Any]] = []
                for pkt in src.demux(vin):
                    if pkt.pts is None or pkt.size == 0 or pkt.time_base is None:
                        continue
                    t = row.start + float(pkt.pts * pkt.time_base)
                    if t >= end:
                        break
                    if first_t is None and t < start:
                        gop = [(t, pkt)] if pkt.is_keyframe else ([*gop, (t, pkt)] if gop else [])
                        continue
                    pending = gop if first_t is None else []
                    gop = []
                    if first_t is None and not pending and not pkt.is_keyframe:
                        continue  # the range starts mid-GOP after a gap: wait for a keyframe
                    for pt, p in [*pending, (t, pkt)]:
                        if first_t is None:
                            first_t = pt
                        ts = round((pt - first_t) * 90_000)
                        if written and ts <= last_ts:
                            continue
                        p.stream = vout
                        p.pts = p.dts = ts
                        p.time_base = _TB
                        dst.mux(p)
                        last_ts = ts
                        last_t = pt
                        written += 1
        if not written:
            dst.close()
            tmp.unlink(missing_ok=True)
            raise ExportEmpty("nothing is recorded in this range")
    tmp.replace(out)
    assert first_t is not None
    return first_t, last_t


def manifest(
    *,
    camera_id: str,
    rows: list[RecordingSegment],
    requested: tuple[float, float],
    clip: Path,
    clip_range: tuple[float, float],
    incident: str | None,
    user: str,
    node: str,
) -> dict[str, Any]:
    """The unsigned manifest of an exported clip."""

    def iso(t: float) -> str:
        return dt.datetime.fromtimestamp(t, dt.UTC).isoformat()

    return {
        "version": 1,
        "camera_id": camera_id,
        "incident_id": incident,
        "requested": {"start": iso(requested[0]), "end": iso(requested[1])},
        "clip": {
            "file": clip.name,
            "sha256": sha256_file(clip),
            "bytes": clip.stat().st_size,
            "start": iso(clip_range[0]),
            "end": iso(clip_range[1]),
        },
        "segments": [
            {
                "id": r.id,
                "path": r.path,
                "start": iso(r.start),
                "end": iso(r.end),
                "bytes": r.bytes,
                "codec": r.codec,
                "sha256": r.sha256,
                "prev_sha256": r.prev_sha256,
                "node": r.node,
            }
            for r in rows
        ],
        "exported_by": user,
        "exported_at": iso(dt.datetime.now(dt.UTC).timestamp()),
        "node": node,
    }
