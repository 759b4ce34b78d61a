"""Playback and export over HTTP (JSON): a 10-minute export and a player's time to first frame.

Recording ten minutes in real time is not needed to measure what reads them: the bench encodes
``--minutes`` (+30 s) of the fixture camera's format (640x360 25 fps H.264, x264 ultrafast, 2 s GOP,
~600 kbit/s, as ``fixtures/rtsp_server.py``'s ``h264_360p``) with ffmpeg, feeds its access units through
the recorder's own :class:`recording.writer.SegmentWriter` (fMP4, 1 s fragments, ``--segment-s``
segments, timestamps an hour back) and indexes them with :class:`recording.index.RecordingIndex`, then
starts ``liandong serve`` on that data and measures over HTTP (loopback, admin bearer token):

- ``export``: ``GET /api/cameras/{id}/recordings/export.mp4`` of a ``--minutes`` range (a fresh range
  each run: exports are cached per range), request to the last byte; ffprobe of the clip (codec, size,
  duration against the range: within one GOP, no re-encoding).
- ``playback``: request -> first decoded picture of a range an hour back, as a player does it: the
  playlist, the init segment (its byte range), then the media bytes of the first entry, decoding
  the first picture at or after the range's start (a player fetches the whole entry before it plays:
  ``whole_entry``; a progressive reader needs only the first fragments: ``first_fragment``).
- ``seek``: the same for a new start in the middle of a segment (a new playlist with that start; the
  player decodes from the keyframe before it).

``python -m bench.recording_playback_bench --out bench/results/recording-playback.json``
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import random
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import httpx

from bench.gateway_proc import running_gateway
from fixtures.camera_server import FixtureCameraServer
from recording.index import RecordingIndex, segment_path
from recording.writer import SegmentWriter
from storage.db import Database
from streams.packets import AccessUnitAssembler

CAM = "cam-rec"
GOP_S = 2.0


def encode(path: Path, seconds: float) -> None:
    """The fixture camera's stream, ``seconds`` long, as MPEG-TS (Annex B with timestamps)."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=25:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline",
         "-b:v", "600k", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-f", "mpegts", str(path)],
        check=True,
    )  # fmt: skip


async def record_file(src: Path, root: Path, db: Database, start: float, segment_s: float) -> int:
    """Write ``src`` as the recorder would have recorded it from ``start`` on; the number of segments."""
    index = RecordingIndex(db, root, platform.node())
    asm = AccessUnitAssembler("h264")
    writer: SegmentWriter | None = None
    n = 0
    with av.open(str(src)) as f:
        stream = f.streams.video[0]
        t0: int | None = None
        for pkt in f.demux(stream):
            if pkt.pts is None or not bytes(pkt):
                continue
            t0 = pkt.pts if t0 is None else t0
            for au in asm.feed(bytes(pkt), pkt.pts - t0, stream.time_base):
                au.wallclock = start + au.pts / 90_000
                if writer is not None and au.keyframe and writer.duration_s >= segment_s:
                    await index.add(CAM, await asyncio.to_thread(writer.close), ["manual"], [])
                    n += 1
                    writer = None
                if writer is None:
                    if not au.keyframe:
                        continue
                    path = root / segment_path(CAM, au.wallclock)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    writer = SegmentWriter(CAM, path, "h264", 640, 360, au, 1.0)
                    continue
                writer.write(au)
    if writer is not None:
        await index.add(CAM, writer.close(), ["manual"], [])
        n += 1
    return n


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def first_picture(data: bytes, at_s: float) -> None:
    """Decode the first picture at or after ``at_s`` of the file, from the keyframe before it (as a
    player that has the bytes seeks: demux to the keyframe, decode from there)."""
    with av.open(io.BytesIO(data), "r") as c:
        s = c.streams.video[0]
        gop: list[av.Packet] = []
        for pkt in c.demux(s):
            if pkt.size == 0 or pkt.pts is None:
                continue
            if pkt.is_keyframe:
                gop = []
            gop.append(pkt)
            if float(pkt.pts * pkt.time_base) + 0.02 >= at_s:
                ctx = s.codec_context
                for p in gop:
                    try:
                        ctx.decode(p)
                    except av.InvalidDataError:
                        continue  # (a progressive read ends inside a sample: its last packet is cut short)
                return
    raise RuntimeError("no picture at the requested time")


def _whole_fragments(media: bytes) -> int:
    """Length of the complete fragments (moof + mdat) at the start of ``media`` (a player appends those)."""
    pos = end = 0
    while pos + 8 <= len(media):
        size = int.from_bytes(media[pos : pos + 4], "big")
        if size < 8 or pos + size > len(media):
            break
        pos += size
        if media[pos - size + 4 : pos - size + 8] == b"mdat":
            end = pos
    return end


def _part(client: httpx.Client, url: str, at: int, n: int) -> bytes:
    r = client.get(url, headers={"Range": f"bytes={at}-{at + n - 1}"})
    if r.status_code != 206 or len(r.content) != n:
        raise RuntimeError(f"{url} bytes {at}+{n}: {r.status_code}, {len(r.content)} bytes")
    return r.content


def play(client: httpx.Client, start: float, end: float, whole: bool) -> float:
    """Milliseconds from the playlist request to the first decoded picture at ``start``."""
    t0 = time.perf_counter()
    r = client.get(f"/api/cameras/{CAM}/recordings/index.m3u8", params={"start": iso(start), "end": iso(end)})
    r.raise_for_status()
    text = r.text
    offset = float(re.search(r"TIME-OFFSET=([\d.]+)", text).group(1))  # type: ignore[union-attr]
    init_n = int(re.search(r'BYTERANGE="(\d+)@0"', text).group(1))  # type: ignore[union-attr]
    size, at = (int(x) for x in re.search(r"#EXT-X-BYTERANGE:(\d+)@(\d+)", text).groups())  # type: ignore[union-attr]
    uri = next(line for line in text.splitlines() if line and not line.startswith("#"))
    base = f"/api/cameras/{CAM}/recordings/"
    init = _part(client, base + uri, 0, init_n)
    # The bytes up to the picture at the offset: a whole entry, or (progressive) what reaches the
    # offset at the segment's bitrate plus a GOP.
    dur = float(re.search(r"#EXTINF:([\d.]+)", text).group(1))  # type: ignore[union-attr]
    want = size if whole else min(size, int(size * (offset + 2 * GOP_S) / max(dur, 1)) + 100_000)
    media = _part(client, base + uri, at, want)
    first_picture(init + media[: _whole_fragments(media)], offset)
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--segment-s", type=float, default=300.0, help="recording.segment_s (the default)")
    p.add_argument("--exports", type=int, default=5)
    p.add_argument("--plays", type=int, default=15)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    span = args.minutes * 60
    out: dict[str, Any] = {
        "machine": platform.node(), "cores": os.cpu_count(), "load_avg_start": os.getloadavg(),
        "minutes": args.minutes, "segment_s": args.segment_s, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="recplay-") as tmp_s:
        tmp = Path(tmp_s)
        src = tmp / "src.ts"
        t = time.perf_counter()
        encode(src, span + 30)
        out["encode_s"] = round(time.perf_counter() - t, 1)
        db_url = f"sqlite:///{tmp / 'liandong.db'}"
        db = Database(db_url)
        db.migrate()
        start = time.time() - 3600 - span - 30  # the recording ends an hour ago
        out["segments"] = asyncio.run(_record(src, tmp / "rec", db, start, args.segment_s))
        env = {"LIANDONG_DATABASE__URL": db_url, "LIANDONG_RECORDING__PATH": str(tmp / "rec")}
        with FixtureCameraServer(mounts=("h264_360p",)) as cams, running_gateway(cams, {CAM: "h264_360p"}, env) as gw:
            client = httpx.Client(base_url=gw.base, headers=gw.headers, timeout=120)
            exports, probes = [], []
            for i in range(args.exports):
                lo = start + 5 + i * 0.37  # a fresh range each time (no cached clip)
                clip = tmp / f"clip{i}.mp4"
                t = time.perf_counter()
                with client.stream("GET", f"/api/cameras/{CAM}/recordings/export.mp4",
                                   params={"start": iso(lo), "end": iso(lo + span)}) as r:  # fmt: skip
                    r.raise_for_status()
                    with clip.open("wb") as f:
                        for chunk in r.iter_bytes(1 << 20):
                            f.write(chunk)
                exports.append(time.perf_counter() - t)
                entries = "stream=codec_name,profile,width,height:format=duration"
                probe = json.loads(subprocess.run(
                    ["ffprobe", "-v", "error", "-show_entries", entries, "-of", "json", str(clip)],
                    capture_output=True, text=True, check=True).stdout)  # fmt: skip
                probes.append(probe)
                clip.unlink()
            out["export"] = {
                "range_s": span,
                "seconds": [round(x, 3) for x in exports],
                "p50_s": round(statistics.median(exports), 3),
                "clip_duration_s": [float(pr["format"]["duration"]) for pr in probes],
                "ffprobe": probes[0]["streams"][0],
            }
            rnd = random.Random(17)
            for name, whole, mid in (("whole_entry", True, False), ("first_fragment", False, False),
                                     ("seek_whole_entry", True, True)):  # fmt: skip
                times = []
                for _ in range(args.plays):
                    # Starts an hour back: at a segment's start (a playback opened at an alarm's moment,
                    # the recording's first minute) or, for a seek, in the middle of a segment.
                    lo = start + (rnd.uniform(0.3, 0.7) * args.segment_s if mid else rnd.uniform(1, 20))
                    times.append(play(client, lo, lo + 120, whole))
                out[name] = {
                    "ms": [round(x, 1) for x in times],
                    "p50_ms": round(statistics.median(times), 1),
                    "p95_ms": round(sorted(times)[int(0.95 * (len(times) - 1))], 1),
                }
            client.close()
    out["load_avg_end"] = os.getloadavg()
    text = json.dumps(out, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


async def _record(src: Path, root: Path, db: Database, start: float, segment_s: float) -> int:
    try:
        return await record_file(src, root, db, start, segment_s)
    finally:
        await db.close()


if __name__ == "__main__":
    main()
