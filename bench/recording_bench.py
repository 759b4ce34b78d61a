"""Recording benchmark (JSON): N cameras pulled, then N cameras pulled and recorded, in one process.

- ``cpu``: the process's CPU (% of one core) over ``--seconds`` with every camera pulled by a draining
  reader, then with the recorder added: the recorder's cost per camera is the difference / N.
- ``gaps``: gaps in each camera's index over the recorded span (want 0).
- ``export``: remux of the longest recorded range of one camera into one MP4 (seconds; ffprobe codec).
- ``playback``: the HLS VOD playlist of that range, and the time to the first decoded frame of its first
  segment read as a player would (init + first fragment by byte range), for a range starting mid-way.

Every camera is a separate RTSP session to the fixture's ``h264_360p`` mount (shared encoder).
``python -m bench.recording_bench --cameras 50 --seconds 30 --out bench/results/recording.json``
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import platform
import statistics
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import av

from camera_registry.opener import CheckedOpener
from fixtures.camera_server import FixtureCameraServer
from recording.export import remux_range
from recording.fmp4 import init_length
from recording.index import RecordingIndex
from recording.recorder import Demand, Recorder
from recording.settings import RecordingSettings
from storage.db import Database
from streams import RtspUpstream, StreamHub
from streams.reader import ReaderClosed
from streams.settings import HubSettings


async def drain(hub: StreamHub, cam: str, stop: asyncio.Event) -> None:
    reader = await hub.attach(cam, "bench")
    try:
        while not stop.is_set():
            await reader.get()
    except ReaderClosed:
        pass
    finally:
        hub.detach(reader)


async def measure_cpu(seconds: float) -> float:
    c0, t0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    return (time.process_time() - c0) / (time.monotonic() - t0) * 100


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="recbench-"))
    cams = [f"cam-{i:02d}" for i in range(args.cameras)]
    out: dict[str, Any] = {"cameras": args.cameras, "seconds": args.seconds, "machine": platform.node()}
    with FixtureCameraServer(mounts=("h264_360p",)) as srv:

        async def resolve(_cam: str) -> str:
            return srv.url("h264_360p")

        db = Database(f"sqlite:///{tmp / 'db.sqlite'}")
        await asyncio.to_thread(db.migrate)
        hub = StreamHub(
            HubSettings(reader_queue_packets=600),
            resolve,
            upstream_factory=partial(RtspUpstream, opener=CheckedOpener()),
        )
        index = RecordingIndex(db, tmp / "rec", "bench")
        rec = Recorder(RecordingSettings(segment_s=args.segment_s, min_free_mb=0), hub, index)
        await rec.start()
        stop = asyncio.Event()
        drains = [asyncio.create_task(drain(hub, c, stop)) for c in cams]
        await asyncio.sleep(8)  # every camera open and steady
        out["cpu_pull_pct"] = round(await measure_cpu(args.seconds), 1)
        for c in cams:
            rec.record(c, Demand("bench", "manual", time.time() + 3600))
        await asyncio.sleep(3)
        t_rec = time.time()
        out["cpu_pull_and_record_pct"] = round(await measure_cpu(args.seconds), 1)
        out["recorder_pct_per_camera"] = round((out["cpu_pull_and_record_pct"] - out["cpu_pull_pct"]) / args.cameras, 3)
        rec.release("bench")
        await asyncio.sleep(2)
        stop.set()
        await rec.close()
        for d in drains:
            d.cancel()
        await hub.close()
        gaps = 0
        for c in cams:
            rows = await index.segments(c, 0, 2e9)
            inside = [r for r in rows if r.end > t_rec]
            if inside:
                _spans, g = index.ranges(inside, max(inside[0].start, t_rec), inside[-1].end)
                gaps += len(g)
        out["gaps"] = gaps
        rows = await index.segments(cams[0], 0, 2e9)
        lo, hi = rows[0].start, rows[-1].end
        t0 = time.perf_counter()
        clip = tmp / "clip.mp4"
        await asyncio.to_thread(remux_range, index.root, rows, lo, hi, clip)
        out["export"] = {"range_s": round(hi - lo, 1), "seconds": round(time.perf_counter() - t0, 3)}
        probe = await asyncio.to_thread(
            subprocess.run,
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "json", str(clip)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        out["export"]["ffprobe"] = json.loads(probe.stdout)["streams"][0]
        firsts = []
        for r in rows[1:6]:
            t0 = time.perf_counter()
            path = index.root / r.path
            init = init_length(path)
            with path.open("rb") as f:
                data = f.read(init + 300_000)  # the init segment and the first fragment(s), as ranges would
            with av.open(io.BytesIO(data), "r") as part:
                next(iter(part.decode(part.streams.video[0])))
            firsts.append((time.perf_counter() - t0) * 1000)
        out["playback_first_frame_ms_p50"] = round(statistics.median(firsts), 1) if firsts else None
        await db.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cameras", type=int, default=50)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--segment-s", type=float, default=10.0)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    result = asyncio.run(run(args))
    text = json.dumps(result, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
