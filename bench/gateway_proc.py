"""A gateway process for benchmarks: fresh data dir, fixture cameras imported, an admin, ``liandong serve``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from fixtures.camera_server import FixtureCameraServer, free_port

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password-1"


@dataclass
class BenchGateway:
    """A running gateway: its base URL, process and an admin bearer token."""

    base: str
    proc: subprocess.Popen[bytes]
    token: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[tuple[int, str]]:
    """Direct child processes (pid, command line)."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out.append((int(p.name), (p / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
    return out


@contextlib.contextmanager
def running_gateway(
    cams: FixtureCameraServer,
    cameras: dict[str, str],
    env_extra: dict[str, str] | None = None,
    host: str = "127.0.0.1",
    start_timeout_s: float = 90.0,
) -> Iterator[BenchGateway]:
    """``cameras``: camera id -> fixture mount; the gateway listens on ``host``. Stops the gateway
    (SIGTERM, then kill) at the end. A loaded shared machine can take ~20 s to start one."""
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LIANDONG_DATA_DIR": tmp, "LIANDONG_LOG__LEVEL": "WARNING", **(env_extra or {})}
        inv = Path(tmp) / "inv.json"
        rows = [{"id": cid, "name": cid, "source_url": cams.url(mount)} for cid, mount in cameras.items()]
        inv.write_text(json.dumps(rows), encoding="utf-8")
        subprocess.run([py, "-m", "gateway.cli", "cameras", "import", str(inv)], env=env, check=True, cwd=ROOT)
        subprocess.run(
            [py, "-m", "gateway.cli", "users", "add", "bench", "--role", "admin", "--password-stdin"],
            input=PASSWORD + "\n",
            text=True,
            env=env,
            check=True,
            cwd=ROOT,
        )
        port = free_port(host)
        cmd = [py, "-m", "gateway.cli", "serve", "--host", host, "--port", str(port)]
        if host not in ("127.0.0.1", "localhost", "::1"):
            cmd.append("--insecure")  # plain HTTP beyond loopback: a benchmark inside its own namespace
        server = subprocess.Popen(cmd, env=env, cwd=ROOT)
        try:
            base = f"http://{host}:{port}"
            deadline = time.monotonic() + start_timeout_s
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit("gateway did not start")
                time.sleep(0.2)
            tok = httpx.post(base + "/api/auth/token", data={"username": "bench", "password": PASSWORD}).json()
            yield BenchGateway(base, server, tok["access_token"])
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
