"""Snapshot benchmark: live and cold latency, single flight, and a 1,000-camera wall refresh.

Starts the fixture cameras and the gateway in process (uvicorn on a free loopback port), registers
cameras (many entries point at the same fixture mounts, as the issue allows), and measures over HTTP:

- ``live_p50_ms``/``live_p95_ms``: a camera being watched (a WebRTC viewer keeps it in the hub);
- ``cold_p50_ms``/``cold_p95_ms``: cameras nobody watches (each request is the first for its camera);
- ``single_flight_sessions``: RTSP sessions the fixture saw for 100 concurrent cold requests;
- ``wall_s``: all 1,000 cameras fetched by a console-like client (64 requests at a time) with
  ``wall_viewers`` WebRTC viewers playing meanwhile, and their fps and stalls.

Prints one JSON line. Usage: ``python -m bench.snapshot_bench [--wall 1000] [--viewers 20] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
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

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "bench"


def pct(v: list[float], p: float) -> float:
    s = sorted(v)
    return s[min(len(s) - 1, int(len(s) * p / 100))]


async def run(wall: int, viewers: int, pool: int, wall_window: float) -> dict[str, Any]:
    out: dict[str, Any] = {"wall_cameras": wall, "wall_viewers": viewers, "cold_pool_size": pool}
    mounts = ("h264", "h264_360p")
    with tempfile.TemporaryDirectory() as tmp, FixtureCameraServer(mounts=mounts) as cams:
        settings = load_settings(
            None, data_dir=Path(tmp), log={"level": "WARNING"}, snapshot={"cache_ttl_s": 60, "cold_pool_size": pool}
        )
        async with live_gateway(settings) as g:
            admin = await g.add_user("bench", Role.admin)
            rows = [{"id": "live", "name": "live", "source_url": cams.url("h264")}]
            rows += [
                {"id": f"w{i:04d}", "name": f"wall {i}", "source_url": cams.url(mounts[i % 2])} for i in range(wall)
            ]
            await import_cameras(g.ld.store, rows)
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
            out["live_decodes"] = g.ld.snapshots.decodes
            await v.close()
            # Cold cameras, one request each, sequential.
            ct = []
            for i in range(10):
                t = time.perf_counter()
                r = await g.client.get(f"/api/cameras/w{i:04d}/snapshot.jpg?width=320", headers=admin)
                ct.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, r.text
            out["cold_p50_ms"] = round(statistics.median(ct), 1)
            out["cold_p95_ms"] = round(pct(ct, 95), 1)
            # 100 concurrent requests for one cold camera.
            before = cams.total_connections()
            rs = await asyncio.gather(
                *(g.client.get("/api/cameras/w0999/snapshot.jpg?width=160", headers=admin) for _ in range(100))
            )
            assert all(r.status_code == 200 for r in rs)
            out["single_flight_requests"] = 100
            out["single_flight_sessions"] = cams.total_connections() - before
            # The wall, while viewers watch (the shared load client in its own process, as for the peers).
            viewer_proc = None
            summary = Path(tmp) / "viewers.json"
            ready = Path(tmp) / "viewers.ready"
            if viewers:
                token = admin["Authorization"]
                viewer_proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    str(SHARED / "whep_client.py"),
                    "--url",
                    f"{g.base_url}/api/cameras/live/whep",
                    "--header",
                    f"Authorization: {token}",
                    "-n",
                    str(viewers),
                    "-t",
                    str(wall_window),
                    "--ready-file",
                    str(ready),
                    "--out",
                    str(summary),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                async with asyncio.timeout(60):
                    while not ready.exists():  # noqa: ASYNC110 - another process writes the file
                        await asyncio.sleep(0.2)
            sem = asyncio.Semaphore(64)  # a console asks for what is on screen at once
            failures = 0

            async def one(cid: str) -> None:
                nonlocal failures
                async with sem:
                    r = await g.client.get(f"/api/cameras/{cid}/snapshot.jpg?width=320", headers=admin)
                    failures += r.status_code != 200

            t = time.perf_counter()
            await asyncio.gather(*(one(f"w{i:04d}") for i in range(wall)))
            took = time.perf_counter() - t
            out["wall_s"] = round(took, 1)
            out["wall_failures"] = failures
            if viewer_proc is not None:
                await viewer_proc.wait()
                v = json.loads(summary.read_text())
                out["wall_viewer_window_s"] = wall_window
                for key in (
                    "ok",
                    "failures",
                    "fps_per_viewer",
                    "fps_per_viewer_min",
                    "stalls_total",
                    "rtp_packets_lost_total",
                ):
                    out[f"viewers_{key}"] = v.get(key)
            out["cold_pulls"] = g.ld.snapshots.cold.pulls
    out["machine"] = f"{platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--wall", type=int, default=1000)
    ap.add_argument("--viewers", type=int, default=20)
    ap.add_argument("--pool", type=int, default=32, help="snapshot.cold_pool_size")
    ap.add_argument("--window", type=float, default=60.0, help="s the viewers watch while the wall refreshes")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    res = asyncio.run(run(args.wall, args.viewers, args.pool, args.window))
    line = json.dumps(res)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(line + "\n", encoding="utf-8")
    print(line)


if __name__ == "__main__":
    main()
