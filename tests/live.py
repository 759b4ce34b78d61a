"""A real gateway for tests: uvicorn serving ``create_app`` on a free loopback port, in the test's loop."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from acl.models import Role
from fixtures.camera_server import free_port
from gateway.server import uvicorn_options
from gateway.settings import Settings, load_settings
from gateway.wiring import create_app

PASSWORD = "correct horse battery"


@dataclass
class LiveGateway:
    """A running gateway and an HTTP client for it."""

    base_url: str
    app: Any
    client: httpx.AsyncClient

    @property
    def ld(self) -> Any:
        """The app's container."""
        return self.app.state.ld

    async def add_user(self, name: str, role: Role = Role.operator) -> dict[str, str]:
        """Create a user and return a bearer header for it."""
        from acl.users import upsert_user

        async with self.ld.db.session() as s:
            await upsert_user(s, name, PASSWORD, role)
        r = await self.client.post("/api/auth/token", data={"username": name, "password": PASSWORD})
        r.raise_for_status()
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    async def add_camera(self, headers: dict[str, str], cam_id: str, url: str, **fields: Any) -> None:
        """Register a camera through the admin API."""
        body = {"id": cam_id, "name": fields.pop("name", cam_id), "source_url": url, **fields}
        r = await self.client.post("/api/cameras", json=body, headers=headers)
        assert r.status_code == 201, r.text


@contextlib.asynccontextmanager
async def live_gateway(settings: Settings) -> AsyncIterator[LiveGateway]:
    """Serve the app on ``server.host`` (127.0.0.1 by default):<free port> until the block ends."""
    app = create_app(settings)
    host = settings.server.host
    port = free_port(host)
    # As `liandong serve` runs it: the same keep-alive (longer than the test client's 5 s, so an idle
    # connection is never closed by the server just as the client reuses it), head deadline, no
    # proxy headers.
    config = uvicorn.Config(app, host=host, port=port, lifespan="on", **uvicorn_options(settings.server))
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(15):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        base = f"http://{host}:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            yield LiveGateway(base, app, client)
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 20)


async def eventually(cond: Callable[[], bool], timeout: float) -> bool:
    """Whether ``cond()`` holds within ``timeout`` seconds (checked every 0.1 s)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


@contextlib.asynccontextmanager
async def gateway_with(
    data_dir: Path, cameras: Mapping[str, str], *, rules: Sequence[Mapping[str, str]] = (), **sections: Any
) -> AsyncIterator[tuple[LiveGateway, dict[str, str]]]:
    """A live gateway (settings: the defaults with ``sections``) with a user "admin", ``cameras``
    (id: RTSP URL) registered and viewing ``rules`` added; yields it and the admin's bearer header."""
    async with live_gateway(load_settings(None, data_dir=data_dir, **sections)) as g:
        admin = await g.add_user("admin", Role.admin)
        for camera_id, url in cameras.items():
            await g.add_camera(admin, camera_id, url)
        for rule in rules:
            r = await g.client.post("/api/admin/rules", json=dict(rule), headers=admin)
            assert r.status_code == 201, r.text
        yield g, admin


@dataclass
class WhepViewer:
    """An aiortc WHEP client (what a browser does), receiving decoded frames."""

    pc: RTCPeerConnection
    track: MediaStreamTrack
    location: str
    answer: str = ""
    etag: str = ""

    async def frames(self, n: int, timeout: float = 10.0) -> list[Any]:
        """Receive ``n`` decoded frames."""
        out: list[Any] = []
        async with asyncio.timeout(timeout):
            while len(out) < n:
                out.append(await self.track.recv())
        return out

    async def close(self) -> None:
        """Close the peer connection (without telling the server)."""
        await self.pc.close()


def window_rule(subject: str, target: str, action: str, start: float, end: float | None = None) -> dict[str, str]:
    """A rule body whose validity window opens at ``start`` (and closes at ``end``), epoch seconds."""

    def iso(t: float) -> str:
        return dt.datetime.fromtimestamp(t, dt.UTC).isoformat()

    rule = {"subject": subject, "target": target, "action": action, "not_before": iso(start)}
    return rule | ({"not_after": iso(end)} if end is not None else {})


async def whep_offer() -> tuple[RTCPeerConnection, str]:
    """A recvonly video offer with every candidate gathered."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def start_viewer(
    gw: LiveGateway, camera_id: str, headers: dict[str, str], munge: Callable[[str], str] | None = None
) -> WhepViewer:
    """POST an offer (rewritten by ``munge``, as other WebRTC stacks would write it) and wait for the
    remote track; the viewer keeps the answer in ``answer``."""
    pc, sdp = await whep_offer()
    if munge is not None:
        sdp = munge(sdp)
    got: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

    @pc.on("track")
    def _on_track(track: MediaStreamTrack) -> None:
        if not got.done():
            got.set_result(track)

    r = await gw.client.post(
        f"/api/cameras/{camera_id}/whep",
        content=sdp,
        headers={**headers, "Content-Type": "application/sdp"},
    )
    if r.status_code != 201:
        await pc.close()
        raise AssertionError(f"WHEP {r.status_code}: {r.text}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
    track = await asyncio.wait_for(got, 10)
    return WhepViewer(pc, track, r.headers["location"], r.text, r.headers.get("etag", ""))
