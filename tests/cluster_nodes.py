"""Several real gateway processes (``python -m gateway.cli serve``) sharing a redis-server and one
SQLite database in WAL mode (one data dir on this machine), for cluster tests and the benchmark.

Every process is started, signalled and reaped by its PID; logs go to ``<tmp>/node-<id>.log``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from fixtures.camera_server import free_port

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "cluster-password-1"


@dataclass
class Node:
    """One gateway process."""

    node_id: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The node's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The process id (while it runs)."""
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the process runs."""
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    """A shared data dir, users and cameras, and N gateway nodes on loopback."""

    def __init__(
        self,
        tmp: Path,
        redis_url: str,
        n: int = 3,
        env: dict[str, str] | None = None,
        per_node: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.tmp = tmp
        self.per_node = per_node or {}
        self.data = tmp / "data"
        self.redis_url = redis_url
        self.base_env = {
            **os.environ,
            "LIANDONG_DATA_DIR": str(self.data),
            "LIANDONG_CLUSTER__REDIS_URL": redis_url,
            "LIANDONG_HUB__IDLE_CLOSE_S": "2",
            "LIANDONG_LOG__LEVEL": "INFO",
            **(env or {}),
        }
        self.nodes = [Node(f"n{i + 1}", free_port()) for i in range(n)]
        self.tokens: dict[str, str] = {}

    # -- setup ---------------------------------------------------------------------------------
    def _cli(self, *args: str, stdin: str | None = None) -> None:
        subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args],
            input=stdin,
            text=True,
            env=self.base_env,
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )

    def prepare(
        self,
        cameras: dict[str, str] | list[dict[str, Any]],
        users: dict[str, str] | None = None,
        vehicles: Path | None = None,
    ) -> None:
        """Migrate the shared database, import cameras (id -> RTSP URL, or full records) and
        vehicles, and add users (name -> role)."""
        self.data.mkdir(parents=True, exist_ok=True)
        self._cli("migrate")
        if isinstance(cameras, dict):
            cameras = [{"id": c, "name": c, "source_url": u} for c, u in cameras.items()]
        if cameras:
            inv = self.tmp / "inventory.json"
            inv.write_text(json.dumps(cameras, ensure_ascii=False), encoding="utf-8")
            self._cli("cameras", "import", str(inv), *(["--vehicles", str(vehicles)] if vehicles else []))
        for name, role in (users or {"admin": "admin"}).items():
            self._cli("users", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD + "\n")

    # -- processes -----------------------------------------------------------------------------
    def start(self, i: int, wait: bool = True) -> Node:
        """Start node ``i`` (again)."""
        node = self.nodes[i]
        node.env = {
            **self.base_env,
            "LIANDONG_CLUSTER__NODE_ID": node.node_id,
            "LIANDONG_CLUSTER__ADVERTISE_URL": node.url,
            "LIANDONG_SERVER__PORT": str(node.port),
            **self.per_node.get(node.node_id, {}),
        }
        node.log = self.tmp / f"node-{node.node_id}.log"
        with node.log.open("ab") as out:
            node.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve"], env=node.env, cwd=ROOT, stdout=out, stderr=out
            )
        if wait:
            self.wait_up(node)
        return node

    def start_all(self) -> None:
        """Start every node and wait until each answers."""
        for i in range(len(self.nodes)):
            self.start(i, wait=False)
        for node in self.nodes:
            self.wait_up(node)

    def wait_up(self, node: Node, timeout: float = 120.0) -> None:
        """Wait for /healthz (RuntimeError with the log tail if the node died or is slow)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not node.alive():
                break
            try:
                if httpx.get(node.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"node {node.node_id} did not start:\n{self.log_tail(node)}")

    def log_tail(self, node: Node, n: int = 40) -> str:
        """The last lines of a node's log."""
        if node.log is None or not node.log.exists():
            return ""
        return "\n".join(node.log.read_text(errors="replace").splitlines()[-n:])

    def kill(self, node: Node, sig: int = signal.SIGKILL) -> None:
        """Signal the node's process by PID (SIGKILL reaps it)."""
        assert node.proc is not None
        node.proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            try:
                node.proc.wait(20)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait(5)

    def stop_all(self) -> None:
        """SIGCONT (in case a test paused one), then SIGTERM every running node; SIGKILL stragglers."""
        for node in self.nodes:
            if node.alive():
                assert node.proc is not None
                node.proc.send_signal(signal.SIGCONT)
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(20)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait(5)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.stop_all()

    # -- API helpers ---------------------------------------------------------------------------
    def token(self, user: str, node: Node | None = None) -> dict[str, str]:
        """A bearer header for ``user`` (logins are in the shared database: valid on every node)."""
        if user not in self.tokens:
            node = node or next(n for n in self.nodes if n.alive())
            r = httpx.post(node.url + "/api/auth/token", data={"username": user, "password": PASSWORD}, timeout=10)
            r.raise_for_status()
            self.tokens[user] = r.json()["access_token"]
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def status(self, node: Node, cameras: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
        """``GET /api/cluster`` of a node."""
        r = httpx.get(
            node.url + "/api/cluster", params={"camera": list(cameras)}, headers=self.token("admin"), timeout=5
        )
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]

    def node_by_id(self, node_id: str) -> Node:
        """The node with this id."""
        return next(n for n in self.nodes if n.node_id == node_id)


@dataclass
class Viewer:
    """A WebRTC viewer (aiortc, as a browser would be) of one camera through some node."""

    pc: Any
    track: Any
    served_by: str  # base URL of the node that answered (after a redirect)
    session_url: str
    post_s: float  # offer POST (including any redirect) until the answer
    redirected: bool

    async def frames(self, n: int, timeout: float = 10.0) -> int:
        """Receive ``n`` decoded frames (TimeoutError otherwise)."""
        import asyncio

        async with asyncio.timeout(timeout):
            for _ in range(n):
                await self.track.recv()
        return n

    async def close(self) -> None:
        """Close the peer connection (the server notices by ICE/DTLS)."""
        await self.pc.close()


async def open_viewer(base_url: str, camera_id: str, headers: dict[str, str], timeout: float = 15.0) -> Viewer:
    """POST a WHEP offer to ``base_url``, following a 307 to the node that pulls the camera."""
    import asyncio

    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    @pc.on("track")
    def _on_track(track: Any) -> None:
        if not got.done():
            got.set_result(track)

    try:
        await pc.setLocalDescription(await pc.createOffer())
        started = time.perf_counter()
        async with httpx.AsyncClient(follow_redirects=True, timeout=timeout) as client:
            r = await client.post(
                f"{base_url}/api/cameras/{camera_id}/whep",
                content=pc.localDescription.sdp,
                headers={**headers, "Content-Type": "application/sdp"},
            )
        post_s = time.perf_counter() - started
        if r.status_code != 201:
            raise RuntimeError(f"WHEP {r.status_code}: {r.text[:200]}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
        track = await asyncio.wait_for(got, timeout)
    except BaseException:
        await pc.close()
        raise
    served = f"{r.url.scheme}://{r.url.host}:{r.url.port}"
    return Viewer(pc, track, served, served + r.headers["location"], post_s, bool(r.history))
