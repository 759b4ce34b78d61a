"""RTSP out benchmark: DESCRIBE -> first decoded frame at an FFmpeg (PyAV) client, and the gateway's
CPU for N RTSP viewers of one 720p25 camera next to N WebRTC viewers in the same run.

Starts the fixture camera (720p25 ~2 Mbit/s H.264, 2 s GOP), ``liandong serve`` with ``rtsp_out``
on, and measures:

- ``ttff``: with the camera pulled (one RTSP viewer keeps it warm), ``--trials`` FFmpeg clients each
  open ``rtsp://.../cameras/cam1`` over TCP and decode a frame; time from the open (DESCRIBE) to the
  first decoded frame, p50/p95.
- ``rtsp_viewers``: N RTSP clients (TCP interleaved, in this process; the gateway is its own
  process) read for ``--duration`` s; the gateway's CPU (% of one core) over the steady window, and
  stalls (a gap of more than ``--stall-ms`` between pictures, by RTP marker bit).
- ``webrtc_viewers``: the same N as WebRTC viewers through the shared load client
  (``../shared/bench/whep_client.py``), the gateway's CPU over the same kind of window.

Usage: ``python -m bench.rtsp_bench [--viewers 50] [--duration 15] [--trials 15]
[--out bench/results/rtsp.json] [--shared ../shared/bench]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import av
import httpx

from bench.gateway_proc import ROOT, cpu_seconds, running_gateway
from fixtures.camera_server import FixtureCameraServer, free_port
from fixtures.rtsp_client import RtspTestClient


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def first_frame_ms(url: str) -> float:
    """Open ``url`` with FFmpeg (PyAV) over TCP and decode one frame; ms from the open."""
    t0 = time.perf_counter()
    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=15) as c:
        for _ in c.decode(video=0):
            return (time.perf_counter() - t0) * 1000
    raise RuntimeError("no frame")


async def _viewer(
    url: str, user: str | None, pw: str | None, stop: asyncio.Event, gaps: list[float], frames: list[int]
) -> None:
    parts = urlsplit(url)
    c = await RtspTestClient.connect(parts.hostname or "127.0.0.1", parts.port or 554, user, pw)
    try:
        await c.play_tcp(url)
        last: float | None = None
        worst = 0.0
        n = 0
        while not stop.is_set():
            channel, payload = await c.rtp()
            if channel == 0 and payload[1] & 0x80:  # the last packet of a picture
                now = time.perf_counter()
                if last is not None:
                    worst = max(worst, now - last)
                    gaps.append(now - last)
                last = now
                n += 1
        frames.append(n)
    finally:
        await c.close()


def rtsp_viewers(
    url: str, user: str | None, pw: str | None, n: int, duration: float, pid: int, stall_s: float
) -> dict[str, Any]:
    """N RTSP viewers of ``url`` for ``duration`` s; the CPU of the server ``pid`` over the steady part."""
    result: dict[str, Any] = {}

    async def run() -> None:
        stop = asyncio.Event()
        gaps: list[float] = []
        frames: list[int] = []
        tasks = [asyncio.create_task(_viewer(url, user, pw, stop, gaps, frames)) for _ in range(n)]
        await asyncio.sleep(3.0)  # every viewer connected and past its GOP burst
        gaps.clear()
        c0, t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(duration)
        c1, t1 = cpu_seconds(pid), time.monotonic()
        stop.set()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        result.update(
            viewers=n,
            cpu_percent_of_one_core=round(100 * (c1 - c0) / (t1 - t0), 1),
            failures=sum(1 for d in done if isinstance(d, BaseException)),
            stalls_total=sum(1 for g in gaps if g > stall_s),
            max_gap_ms=round(max(gaps, default=0) * 1000, 1),
            fps_per_viewer=round(statistics.mean(frames) / (duration + 3.0), 1) if frames else None,
        )

    asyncio.run(run())
    return result


def webrtc_viewers(shared: Path, base: str, token: str, n: int, duration: float, pid: int) -> dict[str, Any]:
    """N WebRTC viewers (the shared load client) for ``duration`` s; the gateway's CPU over its middle."""
    client = shared / "whep_client.py"
    cmd = [sys.executable, str(client), "--url", f"{base}/api/cameras/cam1/whep", "-n", str(n)]
    cmd += ["-t", str(duration + 6), "--header", f"Authorization: Bearer {token}", "--ice-host", "127.0.0.1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(5.0)  # connected, past the start
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(duration)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    out, err = proc.communicate(timeout=duration + 120)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    res = json.loads(lines[-1]) if lines else {"error": err[-800:]}
    return {
        "viewers": n,
        "cpu_percent_of_one_core": round(100 * (c1 - c0) / (t1 - t0), 1),
        "ok": res.get("ok"),
        "failures": res.get("failures"),
        "stalls_total": res.get("stalls_total"),
        **({"error": res["error"]} if "error" in res else {}),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--viewers", type=int, default=50)
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--trials", type=int, default=15)
    ap.add_argument("--stall-ms", type=float, default=500.0)
    ap.add_argument("--steps", default="ttff,rtsp,webrtc,gst")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "rtsp.json")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "bench")
    args = ap.parse_args()
    steps = set(args.steps.split(","))
    port = free_port()
    env = {
        "LIANDONG_RTSP_OUT__ENABLED": "true",
        "LIANDONG_RTSP_OUT__PORT": str(port),
        "LIANDONG_SESSIONS__MAX_PER_USER": str(2 * args.viewers + 10),  # one bench user holds every viewer
    }
    out: dict[str, Any] = {"machine": "2 cores, shared", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with FixtureCameraServer(mounts=("h264",)) as cams, running_gateway(cams, {"cam1": "h264"}, env) as gw:
        cred = httpx.post(f"{gw.base}/api/auth/rtsp-credential", headers=gw.headers).json()
        user, pw = cred["username"], cred["password"]
        url = f"rtsp://{quote(user)}:{quote(pw)}@127.0.0.1:{port}/cameras/cam1"
        if "ttff" in steps:
            stop = threading.Event()

            def keep() -> None:  # one viewer keeps the camera pulled (warm)
                with av.open(url, options={"rtsp_transport": "tcp"}, timeout=15) as c:
                    for _ in c.demux(video=0):
                        if stop.is_set():
                            return

            keeper = threading.Thread(target=keep, daemon=True)
            keeper.start()
            time.sleep(3.0)
            samples = [first_frame_ms(url) for _ in range(args.trials)]
            stop.set()
            keeper.join(10)
            out["ttff_warm"] = {
                "trials": len(samples),
                "p50_ms": round(_pct(samples, 0.5), 1),
                "p95_ms": round(_pct(samples, 0.95), 1),
                "client": f"PyAV {av.__version__} (FFmpeg), TCP",
            }
            print(json.dumps(out["ttff_warm"]), flush=True)
        cam_url = f"rtsp://127.0.0.1:{port}/cameras/cam1"
        if "rtsp" in steps:
            for n in (1, args.viewers):
                out[f"rtsp_viewers_{n}"] = rtsp_viewers(
                    cam_url, user, pw, n, args.duration, gw.pid, args.stall_ms / 1000
                )
                print(json.dumps(out[f"rtsp_viewers_{n}"]), flush=True)
        if "gst" in steps and cams.pid is not None:
            # The library alternative: GStreamer's RTSP server (the fixture camera is one, sharing one
            # encoder among its clients). Its cost per viewer is its CPU at N clients less at 1.
            for n in (1, args.viewers):
                out[f"gst_rtsp_server_{n}"] = rtsp_viewers(
                    cams.url("h264"), None, None, n, args.duration, cams.pid, args.stall_ms / 1000
                )
                print(json.dumps(out[f"gst_rtsp_server_{n}"]), flush=True)
        if "webrtc" in steps:
            time.sleep(2.0)
            out["webrtc_viewers"] = webrtc_viewers(args.shared, gw.base, gw.token, args.viewers, args.duration, gw.pid)
            print(json.dumps(out["webrtc_viewers"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
