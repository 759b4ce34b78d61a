"""Snapshot benchmark: live and cold latency, single flight, and a 1,000-camera wall refresh.

Starts the fixture cameras and the gateway in process (uvicorn on a free loopback port), registers
cameras (many entries point at the same fixture mounts, as the issue allows), and measures over HTTP:

- ``live_p50_ms``/``live_p95_ms``: a camera being watched (a WebRTC viewer keeps it in the hub);
- ``cold_p50_ms``/``cold_p95_ms``: cameras not in the hub, each request the first for its camera, at
  random moments, while the camera streams to another client (the hub, for a viewer): the pull joins
  mid-GOP and waits for the next keyframe (0-2 s). Back-to-back requests would all land at the same
  point of the GOP and measure one phase only;
- ``cold_idle_p50_ms``/``cold_idle_p95_ms``: the same for a camera nobody else reads (the fixture
  then starts the new session with a keyframe);
- ``single_flight_sessions``: RTSP sessions the fixture saw for 100 concurrent cold requests;
- ``wall_s``: a console reports all 1,000 cameras as on screen (``POST /api/snapshots/interest``,
  repeated every 15 s as the operator page does) and the background refresher brings every one
  of them a thumbnail taken after that moment; meanwhile ``wall_viewers`` WebRTC viewers (the shared
  load client, in its own process, playing for 5 s before the wall starts) watch the live camera:
  their fps, stalls, losses and longest gap, and the gateway's event-loop lag.

Prints one JSON line. Usage: ``python -m bench.snapshot_bench [--wall 1000] [--viewers 20] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from acl.models import Role
from camera_registry.inventory import import_cameras
from fixtures.camera_server import FixtureCameraServer
from gateway.settings import load_settings
from tests.live import live_gateway, start_viewer

VIEWERS_SETTLE_S = 5.0
SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "bench"


def pct(v: list[float], p: float) -> float:
    s = sorted(v)
    return s[min(len(s) - 1, int(len(s) * p / 100))]


async def _viewers(g: Any, headers: dict[str, str], n: int, window: float, tmp: Path) -> tuple[Any, Path, float]:
    """Start the shared WHEP load client on the live camera; returns once every viewer has a frame."""
    summary, ready = tmp / "viewers.json", tmp / "viewers.ready"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SHARED / "whep_client.py"),
        "--url",
        f"{g.base_url}/api/cameras/live/whep",
        "--header",
        f"Authorization: {headers['Authorization']}",
        "-n",
        str(n),
        "-t",
        str(window),
        "--ready-file",
        str(ready),
        "--out",
        str(summary),
        "--per-viewer",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    async with asyncio.timeout(60):
        while not ready.exists():  # another process writes the file
            if proc.returncode is not None:
                raise RuntimeError("the WHEP load client ended before its viewers played")
            await asyncio.sleep(0.1)
    return proc, summary, time.perf_counter()


async def run(wall: int, viewers: int, pool: int, cold_samples: int, wall_window: float) -> dict[str, Any]:
    out: dict[str, Any] = {"wall_cameras": wall, "wall_viewers": viewers, "cold_pool_size": pool}
    mounts = ("h264", "h264_360p")
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp_s, FixtureCameraServer(mounts=mounts) as cams:
        tmp = Path(tmp_s)
        settings = load_settings(
            None,
            data_dir=tmp,
            log={"level": "WARNING"},
            snapshot={"cache_ttl_s": 120, "cold_pool_size": pool, "refresh_interval_s": 120},
        )
        async with live_gateway(settings) as g:
            admin = await g.add_user("bench", Role.admin)
            rows = [{"id": "live", "name": "live", "source_url": cams.url("h264")}]
            rows += [{"id": f"c{i:03d}", "name": f"cold {i}", "source_url": cams.url("h264")} for i in range(100)]
            rows += [{"id": f"i{i:03d}", "name": f"idle {i}", "source_url": cams.url("h264_360p")} for i in range(100)]
            rows += [
                {"id": f"w{i:04d}", "name": f"wall {i}", "source_url": cams.url(mounts[i % 2])} for i in range(wall)
            ]
            await import_cameras(g.ld.store, rows)
            svc = g.ld.snapshots

            # Live camera: one viewer keeps it in the hub.
            v = await start_viewer(g, "live", admin)
            await v.frames(10, timeout=20)
            lt = []
            for _ in range(200):
                t = time.perf_counter()
                r = await g.client.get("/api/cameras/live/snapshot.jpg?width=320", headers=admin)
                lt.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200
                await asyncio.sleep(0.02)
            out["live_p50_ms"] = round(statistics.median(lt), 1)
            out["live_p95_ms"] = round(pct(lt, 95), 1)
            out["live_requests"] = len(lt)
            out["live_decodes"] = svc.decodes

            async def cold(prefix: str, n: int) -> list[float]:
                # One request per camera, at random moments (uniform over a GOP and a bit).
                got = []
                # A request lands right after the previous one's keyframe; pausing i/n of a GOP (shuffled)
                # spreads the requests evenly over the GOP, so the median is not luck of the draw.
                pauses = [0.1 + 2.0 * (k + 0.5) / n for k in range(n)]
                rng.shuffle(pauses)
                for i in range(n):
                    await asyncio.sleep(pauses[i])
                    t = time.perf_counter()
                    r = await g.client.get(f"/api/cameras/{prefix}{i:03d}/snapshot.jpg?width=320", headers=admin)
                    got.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200 and r.headers["x-snapshot-source"] == "cold", r.text
                return got

            # Cold, mid-GOP: the 720p mount is busy (the hub reads it for the viewer), so a new session
            # joins a running stream and waits for its next keyframe, as with a camera an NVR records.
            ct = await cold("c", cold_samples)
            out["cold_p50_ms"] = round(statistics.median(ct), 1)
            out["cold_p95_ms"] = round(pct(ct, 95), 1)
            out["cold_samples"] = len(ct)
            out["cold_ms"] = [round(x) for x in sorted(ct)]
            await v.close()
            # Cold, idle camera: nobody else reads the 360p mount; the fixture then starts a new session
            # with a keyframe.
            it = await cold("i", max(5, cold_samples // 3))
            out["cold_idle_p50_ms"] = round(statistics.median(it), 1)
            out["cold_idle_p95_ms"] = round(pct(it, 95), 1)

            # 100 concurrent requests for one cold camera.
            await asyncio.sleep(0.5)
            before = cams.total_connections()
            rs = await asyncio.gather(
                *(g.client.get("/api/cameras/c099/snapshot.jpg?width=160", headers=admin) for _ in range(100))
            )
            assert all(r.status_code == 200 for r in rs)
            await asyncio.sleep(0.5)  # the fixture reports sessions on its stdout
            out["single_flight_requests"] = 100
            out["single_flight_sessions"] = cams.total_connections() - before

            # The wall: a console shows every camera; the refresher brings each a new thumbnail.
            proc = summary = None
            # FastAPI builds a route's handler state on its first request (~0.25 s here): not part of the wall.
            r = await g.client.post("/api/snapshots/interest", json={"camera_ids": []}, headers=admin)
            assert r.status_code == 200
            ready_at = 0.0
            if viewers:
                proc, summary, ready_at = await _viewers(g, admin, viewers, wall_window, tmp)
                await asyncio.sleep(VIEWERS_SETTLE_S)  # the viewers are playing steadily when the wall starts
            ids = [f"w{i:04d}" for i in range(wall)]
            pulls_before = svc.cold.pulls
            lags: list[tuple[float, float]] = []

            async def loop_lag() -> None:
                # The gateway shares this event loop: a late wake-up here is a late packet for viewers.
                while True:
                    a = time.perf_counter()
                    await asyncio.sleep(0.01)
                    lags.append((a, time.perf_counter() - a - 0.01))

            monitor = asyncio.create_task(loop_lag())
            t0_wall = time.time()
            t = wall_t0 = time.perf_counter()
            last_report = -1e9
            async with asyncio.timeout(max(120.0, wall_window * 2)):
                while True:
                    if time.perf_counter() - last_report >= 15:  # as the operator page does
                        for k in range(0, wall, 2000):
                            r = await g.client.post(
                                "/api/snapshots/interest",
                                json={"camera_ids": ids[k : k + 2000], "width": 320},
                                headers=admin,
                            )
                            assert r.status_code == 200 and r.json()["accepted"] == len(ids[k : k + 2000])
                        last_report = time.perf_counter()
                    missing = sum(1 for c in ids if (svc.last_taken(c, 320) or 0) < t0_wall)
                    if not missing:
                        break
                    await asyncio.sleep(0.25)
            out["wall_s"] = round(time.perf_counter() - t, 1)
            monitor.cancel()
            worst = max(lags, key=lambda x: x[1])
            out["wall_loop_lag_ms"] = {
                "p50": round(statistics.median(x[1] for x in lags) * 1000, 1),
                "p99": round(pct([x[1] for x in lags], 99) * 1000, 1),
                "max": round(worst[1] * 1000, 1),
                "max_at_wall_s": round(worst[0] - wall_t0, 1),
            }
            out["wall_pulls"] = svc.cold.pulls - pulls_before
            out["wall_peak_sessions"] = svc.cold.peak_active
            if proc is not None and summary is not None:
                await proc.wait()
                res = json.loads(summary.read_text())
                out["wall_viewer_window_s"] = wall_window
                for key in ("ok", "failures", "fps_per_viewer", "stalls_total", "rtp_packets_lost_total"):
                    out[f"viewers_{key}"] = res.get(key)
                per = [p for p in res.get("per_viewer", []) if p.get("max_gap_ms")]
                if per:
                    worst = max(per, key=lambda p: p["max_gap_ms"])
                    out["viewers_max_gap_ms"] = round(worst["max_gap_ms"])
                    # When, in seconds after the refresh started (+-0.2 s; the client's clock starts at
                    # its own run, which ended when its last viewer had a first frame).
                    run0 = ready_at - max(p.get("first_frame_s", 0) for p in per)
                    out["viewers_max_gap_at_wall_s"] = round(run0 + worst["max_gap_at_s"] - wall_t0, 1)
    out["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--wall", type=int, default=1000)
    ap.add_argument("--viewers", type=int, default=20)
    ap.add_argument("--pool", type=int, default=48, help="snapshot.cold_pool_size")
    ap.add_argument("--cold-samples", type=int, default=30)
    ap.add_argument(
        "--window", type=float, default=75.0, help="s the viewers watch (5 s settling, then the wall refresh)"
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    res = asyncio.run(run(args.wall, args.viewers, args.pool, args.cold_samples, args.window))
    line = json.dumps(res)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(line + "\n", encoding="utf-8")
    print(line)


if __name__ == "__main__":
    main()
