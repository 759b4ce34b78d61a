"""WHEP with a non-browser player: offer -> first decoded frame with GStreamer's webrtcbin.

Inside a network namespace made for the run (``fixtures/netns.py``; needs root): the fixture camera
``/h264`` (1280x720, 25 fps, ~2 Mbit/s, 2 s GOP), ``liandong serve --host 198.18.0.1`` (no
``webrtc.host_addresses``: it offers its interface addresses) with ``hub.idle_close_s = 600`` so the
camera stays pulled after a warm-up session, and ``fixtures/whep_player.py`` (webrtcbin,
``latency=0``: no jitter buffer) run once per trial, alternating trickle ICE (POST at once, PATCH
candidates) and candidates-in-offer (wait for gathering, one POST). Each trial is a new player
process and session, ended with DELETE.

Figures per mode: POST -> first decoded frame (what the gateway and ICE/DTLS cost), create-offer ->
first decoded frame (adds the player's own offer and, without trickle, its gathering), POST -> answer;
medians, p95 and the trickle/offer ratio of the medians. Also the machine and what else ran.

Usage: ``python -m bench.gst_whep_bench [--trials 15] [--out bench/results/gst_whep.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.gateway_proc import ROOT, running_gateway
from fixtures.camera_server import SYSTEM_PYTHON, FixtureCameraServer
from fixtures.netns import GATEWAY_ADDRESS, NetNamespace, netns_unavailable

PLAYER = ROOT / "fixtures" / "whep_player.py"
MODES = ("trickle", "candidates-in-offer")
FIGURES = ("first_frame_ms", "first_frame_from_offer_ms", "post_ms")


def _machine() -> dict[str, Any]:
    model = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln),
        platform.processor(),
    )
    return {"cpus": os.cpu_count(), "cpu": model, "kernel": platform.release(), "python": platform.python_version()}


def _busiest() -> list[str]:
    """The processes using the most CPU right now (what else ran)."""
    out = subprocess.run(
        ["ps", "-eo", "pcpu,comm", "--sort=-pcpu", "--no-headers"], capture_output=True, text=True, check=False
    ).stdout
    return [" ".join(ln.split()) for ln in out.splitlines()[:6]]


def _player(base: str, token: str, trickle: bool, frames: int) -> dict[str, Any]:
    cmd = [SYSTEM_PYTHON, str(PLAYER), "--url", base, "--camera", "cam1", "--token", token]
    cmd += ["--frames", str(frames), "--latency", "0", "--delete", "--timeout", "20"]
    if trickle:
        cmd.append("--trickle")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if p.returncode != 0:
        return {"error": p.stderr[-500:]}
    result: dict[str, Any] = json.loads(p.stdout)
    return result


def _pulled(base: str, token: str) -> bool:
    text = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}).text
    return 'liandong_upstream_state{camera="cam1",state="live"} 1.0' in text


def _run(trials: int, frames: int) -> dict[str, Any]:
    """Everything that must happen inside the namespace."""
    runs: list[dict[str, Any]] = []
    with (
        FixtureCameraServer(mounts=("h264",)) as cams,
        running_gateway(cams, {"cam1": "h264"}, {"LIANDONG_HUB__IDLE_CLOSE_S": "600"}, host=GATEWAY_ADDRESS) as gw,
    ):
        warm = _player(gw.base, gw.token, False, frames)
        if warm.get("error") or not _pulled(gw.base, gw.token):
            sys.exit(f"warm-up session failed: {warm}")
        for i in range(trials):
            order = MODES if i % 2 == 0 else MODES[::-1]
            for mode in order:
                pulled = _pulled(gw.base, gw.token)
                r = _player(gw.base, gw.token, mode == "trickle", frames)
                runs.append({"trial": i, "mode": mode, "camera_pulled": pulled, **r})
                time.sleep(0.3)
    return {"warm_up": warm, "runs": runs}


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in MODES:
        ok = [r for r in runs if r["mode"] == mode and not r.get("error") and r.get("delete") == 200]
        row: dict[str, Any] = {"n": len(ok), "failures": sum(1 for r in runs if r["mode"] == mode) - len(ok)}
        for fig in FIGURES:
            vals = sorted(float(r[fig]) for r in ok if fig in r)
            if vals:
                row[fig] = {
                    "p50": round(statistics.median(vals), 1),
                    "p95": round(vals[min(len(vals) - 1, round(0.95 * (len(vals) - 1)))], 1),
                    "min": vals[0],
                    "max": vals[-1],
                }
        steps = sorted({k for r in ok for k in r.get("steps_ms", {})})
        row["steps_from_offer_p50_ms"] = {
            k: round(statistics.median(r["steps_ms"][k] for r in ok if k in r.get("steps_ms", {})), 1) for k in steps
        }
        out[mode] = row
    ratios = {}
    for fig in FIGURES:
        a, b = out["trickle"].get(fig), out["candidates-in-offer"].get(fig)
        if a and b and b["p50"]:
            ratios[fig] = round(a["p50"] / b["p50"], 2)
    out["ratio_trickle_to_offer_p50"] = ratios
    return out


def main() -> None:
    """Run the benchmark; write JSON and print the summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=15, help="sessions per mode")
    ap.add_argument("--frames", type=int, default=5, help="decoded frames a session waits for")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gst_whep.json")
    ap.add_argument("--note", default="", help="free text stored with the result (what else ran, ...)")
    args = ap.parse_args()
    why = netns_unavailable()
    if why:
        sys.exit(why)
    started = time.time()
    load_before, busy_before = os.getloadavg(), _busiest()
    with NetNamespace() as ns:
        data = ns.call(_run, args.trials, args.frames, timeout=3600)
    result = {
        "bench": "gst_whep",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": _machine(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "busiest_before": busy_before,
        "busiest_after": _busiest(),
        "note": args.note,
        "player": {
            "stack": "GStreamer webrtcbin + libnice",
            "latency_ms": 0,
            "decoder": data["warm_up"].get("decoder"),
        },
        "summary": _summary(data["runs"]),
        **data,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(json.dumps(result["summary"], indent=1))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
