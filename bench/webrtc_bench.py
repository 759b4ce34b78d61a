"""WebRTC (and, as they land, HLS/snapshot) benchmark of the gateway, measured like the peers were.

Starts the fixture camera (720p25 ~2 Mbit/s H.264, 2 s GOP), a fresh data dir with one camera and
an admin, and ``liandong serve`` on a free loopback port; then runs the shared load client
(``../shared/bench/bench_target.py``) against it with the server's PID, and writes its JSON lines.

Usage: ``python -m bench.webrtc_bench [--steps idle,webrtc,ttff,latency] [--viewers 1,5,20,50]
[--out bench/results/webrtc.jsonl] [--shared ../shared/bench]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from bench.gateway_proc import ROOT, running_gateway
from fixtures.camera_server import FixtureCameraServer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", default="idle,webrtc,ttff,latency")
    ap.add_argument("--viewers", default="1,5,20,50")
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "webrtc.jsonl")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "bench")
    ap.add_argument("--idle-close", type=float, default=3.0, help="hub idle close, s (cold TTFF needs it short)")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    target = args.shared / "bench_target.py"
    if not target.exists():
        sys.exit(f"shared load client not found: {target}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    with (
        FixtureCameraServer(mounts=("h264",)) as cams,
        running_gateway(
            cams,
            {"cam1": "h264"},
            {
                "LIANDONG_HUB__IDLE_CLOSE_S": str(args.idle_close),
                "LIANDONG_HLS__IDLE_STOP_S": str(args.idle_close),
                "LIANDONG_HLS__SESSION_IDLE_S": "2",
            },
        ) as gw,
    ):
        base = gw.base
        cmd = [
            py,
            str(target),
            "--name",
            "liandong",
            "--pid",
            str(gw.pid),
            "--whep-url",
            f"{base}/api/cameras/cam1/whep",
            "--hls-url",
            f"{base}/api/cameras/cam1/hls/index.m3u8",
            "--snapshot-url",
            f"{base}/api/cameras/cam1/snapshot.jpg?width=320",
            "--header",
            f"Authorization: Bearer {gw.token}",
            "--reference-rtsp",
            cams.url("h264"),
            "--steps",
            args.steps,
            "--viewers",
            args.viewers,
            "--duration",
            str(args.duration),
            "--trials",
            str(args.trials),
            "--hls-trials",
            str(args.trials),
            "--out",
            str(args.out),
            "--aux-pid",
            f"camera={cams.pid}",
            "--note",
            args.note or "liandong main",
        ]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
