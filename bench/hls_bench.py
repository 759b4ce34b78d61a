"""HLS and transcoder benchmark (JSON lines): live latency in hls.js, many players, transcode cost.

Steps (``--steps``, comma list):
- ``latency``: Chromium (Debian's, headless) plays the camera with hls.js from /vendor/hls.mjs, in
  low-latency mode and with hls.js defaults; latency = now - the playing picture's
  PROGRAM-DATE-TIME (when its first byte reached the gateway), sampled every 0.5 s after 5 s.
- ``load``: ``bench.hls_load`` players of one already-pulled camera, in their own process; the
  gateway's CPU (% of one core) over the run, stalls. ``--load-modes segments,parts``.
- ``transcode``: one H.265 720p25 camera transcoded to H.264: ffmpeg's CPU, the gateway's CPU,
  then again with ``--viewers`` more HLS players (they must add passthrough cost only).
The time to first playable second is measured by the shared client: ``python -m bench.webrtc_bench --steps hls``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.gateway_proc import ROOT, BenchGateway, children, cpu_seconds, running_gateway
from fixtures.camera_server import FixtureCameraServer

LATENCY_JS = """async ([url, lowLatency, seconds]) => {
  const Hls = (await import('/vendor/hls.mjs')).default;
  const video = document.createElement('video');
  video.muted = true;
  document.body.append(video);
  const hls = new Hls({lowLatencyMode: lowLatency, enableWorker: false});
  const t0 = performance.now();
  let first = null;
  video.addEventListener('playing', () => { if (first === null) first = performance.now() - t0; }, {once: true});
  hls.loadSource(url);
  hls.attachMedia(video);
  video.play().catch(() => {});
  const samples = [];
  const stalls = [];
  let lastT = -1, lastChange = performance.now();
  for (let i = 0; i < seconds * 2; i++) {
    await new Promise(r => setTimeout(r, 500));
    if (video.currentTime !== lastT) { lastT = video.currentTime; lastChange = performance.now(); }
    else if (first !== null) stalls.push(performance.now() - lastChange);
    if (i >= 10 && hls.playingDate) samples.push(Date.now() - hls.playingDate.getTime());
  }
  const q = video.getVideoPlaybackQuality();
  hls.destroy();
  return {samples, first_play_ms: first, frames: q.totalVideoFrames, dropped: q.droppedVideoFrames,
          stalled_checks: stalls.length};
}"""


def emit(out: Path, rec: dict[str, Any]) -> None:
    rec = {"target": "liandong", "ts": round(time.time(), 1), **rec}
    print(json.dumps(rec), flush=True)
    with out.open("a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")


def dist(xs: list[float]) -> dict[str, float] | None:
    if not xs:
        return None
    s = sorted(xs)
    return {
        "n": len(s),
        "p50": round(statistics.median(s), 1),
        "p95": round(s[min(len(s) - 1, int(0.95 * len(s)))], 1),
        "max": round(s[-1], 1),
    }


def stream_token(gw: BenchGateway, camera: str) -> str:
    r = httpx.post(f"{gw.base}/api/auth/stream-token/{camera}", headers=gw.headers)
    r.raise_for_status()
    return str(r.json()["token"])


def warm(gw: BenchGateway, camera: str) -> None:
    """Pull the camera and start its muxer (an HLS request; the player then goes away)."""
    r = httpx.get(f"{gw.base}/api/cameras/{camera}/hls/index.m3u8", headers=gw.headers, timeout=30)
    r.raise_for_status()


async def latency(gw: BenchGateway, camera: str, seconds: float) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS

    out: dict[str, Any] = {}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page()
            await page.goto(gw.base + "/healthz")
            for name, low in (("ll", True), ("default", False)):
                url = f"/api/cameras/{camera}/hls/index.m3u8?token={stream_token(gw, camera)}"
                r = await page.evaluate(LATENCY_JS, [url, low, seconds])
                out[name] = {
                    "latency_ms": dist([float(x) for x in r["samples"]]),
                    "first_play_ms": round(r["first_play_ms"], 1) if r["first_play_ms"] is not None else None,
                    "frames": r["frames"],
                    "dropped": r["dropped"],
                    "stalled_checks": r["stalled_checks"],
                }
        finally:
            await browser.close()
    return out


def load(gw: BenchGateway, camera: str, clients: int, duration: float, mode: str, bearer: bool) -> dict[str, Any]:
    warm(gw, camera)
    time.sleep(3)
    cmd = [
        sys.executable, "-m", "bench.hls_load", "--url", f"{gw.base}/api/cameras/{camera}/hls/index.m3u8",
        "--token", gw.token, "--clients", str(clients), "--duration", str(duration), "--mode", mode,
        *(["--bearer"] if bearer else ["--stream-token", stream_token(gw, camera)]),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    ramp = 5.0
    time.sleep(ramp + 1)
    c0, t0 = cpu_seconds(gw.pid), time.monotonic()
    lc0 = cpu_seconds(proc.pid)
    time.sleep(max(1.0, duration - ramp - 3))
    c1, t1 = cpu_seconds(gw.pid), time.monotonic()
    lc1 = cpu_seconds(proc.pid)
    stdout, _ = proc.communicate(timeout=duration + 60)
    res: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    res["gateway_cpu_pct_of_core"] = round(100 * (c1 - c0) / (t1 - t0), 1)
    res["load_client_cpu_pct_of_core"] = round(100 * (lc1 - lc0) / (t1 - t0), 1)
    res["measured_s"] = round(t1 - t0, 1)
    res["auth"] = "bearer on every request" if bearer else "stream token, then the session key"
    return res


def _cpu_pct(pids: list[int], seconds: float) -> list[float]:
    before = [cpu_seconds(p) for p in pids]
    t0 = time.monotonic()
    time.sleep(seconds)
    dt = time.monotonic() - t0
    return [round(100 * (cpu_seconds(p) - b) / dt, 1) for p, b in zip(pids, before, strict=True)]


def transcode(gw: BenchGateway, camera: str, viewers: int, seconds: float) -> dict[str, Any]:
    warm(gw, camera)
    deadline = time.monotonic() + 20
    ff: list[int] = []
    while time.monotonic() < deadline and not ff:
        ff = [pid for pid, cmd in children(gw.pid) if cmd.startswith("ffmpeg")]
        time.sleep(0.2)
    if not ff:
        return {"error": "no ffmpeg child found"}
    # One player keeps the transcode busy; measure, then add viewers and measure again.
    one = subprocess.Popen(
        [sys.executable, "-m", "bench.hls_load", "--url", f"{gw.base}/api/cameras/{camera}/hls/index.m3u8",
         "--stream-token", stream_token(gw, camera), "--clients", "1", "--duration", str(3 * seconds + 30),
         "--ramp-s", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(5)
    ffmpeg_1, gw_1 = _cpu_pct([ff[0], gw.pid], seconds)
    more = subprocess.Popen(
        [sys.executable, "-m", "bench.hls_load", "--url", f"{gw.base}/api/cameras/{camera}/hls/index.m3u8",
         "--stream-token", stream_token(gw, camera), "--clients", str(viewers), "--duration", str(seconds + 15),
         "--ramp-s", "2"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(5)
    ffmpeg_n, gw_n = _cpu_pct([ff[0], gw.pid], seconds)
    out_more = json.loads(more.communicate(timeout=seconds + 90)[0].strip().splitlines()[-1])
    one.kill()
    one.wait()
    return {
        "ffmpeg_pid_same": ff[0] in [pid for pid, cmd in children(gw.pid) if cmd.startswith("ffmpeg")],
        "ffmpeg_processes": len([1 for _, cmd in children(gw.pid) if cmd.startswith("ffmpeg")]),
        "one_viewer": {"ffmpeg_cpu_pct": ffmpeg_1, "gateway_cpu_pct": gw_1},
        f"plus_{viewers}_viewers": {"ffmpeg_cpu_pct": ffmpeg_n, "gateway_cpu_pct": gw_n, "players": out_more},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", default="latency,load,transcode")
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--duration", type=float, default=40.0)
    ap.add_argument("--load-modes", default="segments,parts")
    ap.add_argument("--with-bearer", action="store_true", help="also run the load with a bearer header per request")
    ap.add_argument("--latency-s", type=float, default=25.0)
    ap.add_argument("--viewers", type=int, default=20)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "hls.jsonl")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    steps = set(args.steps.split(","))
    with (
        FixtureCameraServer(mounts=("h264", "h265")) as cams,
        running_gateway(cams, {"cam1": "h264", "cam265": "h265"}, {"LIANDONG_HLS__IDLE_STOP_S": "60"}) as gw,
    ):
        emit(args.out, {"kind": "meta", "machine": f"{platform.machine()}, {len(_cores())} cores", "note": args.note})
        if "latency" in steps:
            warm(gw, "cam1")
            time.sleep(3)
            emit(args.out, {"kind": "hls_latency", **asyncio.run(latency(gw, "cam1", args.latency_s))})
        if "load" in steps:
            for mode in args.load_modes.split(","):
                for bearer in (False, True) if args.with_bearer else (False,):
                    res = load(gw, "cam1", args.clients, args.duration, mode, bearer)
                    emit(args.out, {"kind": f"hls_load_{mode}", **res})
        if "transcode" in steps:
            emit(args.out, {"kind": "transcode", **transcode(gw, "cam265", args.viewers, 15.0)})


def _cores() -> list[str]:
    return [ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("processor")]


if __name__ == "__main__":
    main()
