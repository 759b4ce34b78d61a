"""WebRTC (and, as they land, HLS/snapshot) benchmark of the gateway, measured like the peers were.

Starts the fixture camera (720p25 ~2 Mbit/s H.264, 2 s GOP), a fresh data dir with one camera and
an admin, and ``liandong serve`` on a free loopback port; then runs the shared load client
(``../shared/bench/bench_target.py``) against it with the server's PID, and writes its JSON lines.

Usage: ``python -m bench.webrtc_bench [--steps idle,webrtc,ttff,latency] [--viewers 1,5,20,50]
[--out bench/results/webrtc.jsonl] [--shared ../shared/bench]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from fixtures.camera_server import FixtureCameraServer, free_port

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password-1"


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
    with tempfile.TemporaryDirectory() as tmp, FixtureCameraServer(mounts=("h264",)) as cams:
        env = {
            **os.environ,
            "LIANDONG_DATA_DIR": tmp,
            "LIANDONG_HUB__IDLE_CLOSE_S": str(args.idle_close),
            "LIANDONG_LOG__LEVEL": "WARNING",
        }
        inv = Path(tmp) / "inv.json"
        inv.write_text(json.dumps([{"id": "cam1", "name": "bench", "source_url": cams.url("h264")}]), encoding="utf-8")
        subprocess.run([py, "-m", "gateway.cli", "cameras", "import", str(inv)], env=env, check=True, cwd=ROOT)
        subprocess.run(
            [py, "-m", "gateway.cli", "users", "add", "bench", "--role", "admin", "--password-stdin"],
            input=PASSWORD + "\n",
            text=True,
            env=env,
            check=True,
            cwd=ROOT,
        )
        port = free_port()
        server = subprocess.Popen([py, "-m", "gateway.cli", "serve", "--port", str(port)], env=env, cwd=ROOT)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit("gateway did not start")
                time.sleep(0.2)
            tok = httpx.post(base + "/api/auth/token", data={"username": "bench", "password": PASSWORD}).json()
            cmd = [
                py,
                str(target),
                "--name",
                "liandong",
                "--pid",
                str(server.pid),
                "--whep-url",
                f"{base}/api/cameras/cam1/whep",
                "--hls-url",
                f"{base}/api/cameras/cam1/hls/index.m3u8",
                "--snapshot-url",
                f"{base}/api/cameras/cam1/snapshot.jpg?width=320",
                "--header",
                f"Authorization: Bearer {tok['access_token']}",
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
                "--out",
                str(args.out),
                "--aux-pid",
                f"camera={cams.pid}",
                "--note",
                args.note or "liandong main",
            ]
            subprocess.run(cmd, check=True)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


if __name__ == "__main__":
    main()
