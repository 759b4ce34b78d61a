"""Recordings in a cluster (two gateway nodes in this process sharing a real redis-server and one
database, the RTSP fixture), each node with its own recordings directory: playback and export asked of
the node that does not hold the files answer 307 to the one that does, with a stream token, and play
there (ffprobe follows it). In-process nodes: separate processes cost a minute of start-up under load
(tests/cluster_nodes.py) and the redirect needs none of what a process boundary adds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import uvicorn

from acl.models import Role
from fixtures.camera_server import FixtureCameraServer, free_port
from gateway.server import uvicorn_options
from gateway.settings import Settings, load_settings
from gateway.wiring import create_app
from tests.live import PASSWORD, LiveGateway
from tests.media import QUICK_HUB, cameras_fixture
from tests.redis_server import redis_server

pytestmark = [pytest.mark.media, pytest.mark.timeout(240)]
cams = cameras_fixture("h264_360p")
CAM = "cam-rec"


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


@dataclass
class Node:
    node_id: str
    url: str
    gw: LiveGateway


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[LiveGateway]:
    """The app on its ``server.port`` (what it advertises to the other node) until the block ends."""
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=settings.server.port, **uvicorn_options(settings.server))
    )
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(60):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        base = f"http://127.0.0.1:{settings.server.port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            yield LiveGateway(base, app, client)
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 20)


@pytest.fixture
async def cluster(tmp_path: Path, cams: FixtureCameraServer) -> AsyncIterator[list[Node]]:
    with redis_server(tmp_path) as url:
        async with contextlib.AsyncExitStack() as stack:
            nodes = []
            for n in ("n1", "n2"):
                port = free_port()
                settings = load_settings(
                    None,
                    data_dir=tmp_path / "data",  # one database ...
                    server={"port": port},
                    cluster={"redis_url": url, "node_id": n, "advertise_url": f"http://127.0.0.1:{port}"},
                    hub=QUICK_HUB,
                    # ... and no shared storage: each node writes where only it can read.
                    recording={"path": str(tmp_path / f"rec-{n}"), "segment_s": 2, "min_free_mb": 0},
                )
                gw = await stack.enter_async_context(serve(settings))
                nodes.append(Node(n, gw.base_url, gw))
            admin = await nodes[0].gw.add_user("admin", Role.admin)
            await nodes[0].gw.add_camera(admin, CAM, cams.url("h264_360p"))
            yield nodes


def _ffprobe(url: str, token: str) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-headers", f"Authorization: Bearer {token}\r\n", "-show_streams",
         "-show_format", "-of", "json", url],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-800:]
    return json.loads(out.stdout)  # type: ignore[no-any-return]


async def test_playback_and_export_go_to_the_node_holding_the_files(cluster: list[Node]) -> None:
    n1, n2 = cluster
    r = await n2.gw.client.post("/api/auth/token", data={"username": "admin", "password": PASSWORD})
    admin = {"Authorization": f"Bearer {r.json()['access_token']}"}  # a login of the shared database
    async with httpx.AsyncClient(timeout=30) as h:
        # n1 records (and so pulls) the camera; its files are in n1's directory only.
        r = await h.post(f"{n1.url}/api/cameras/{CAM}/recordings/manual", json={"seconds": 600}, headers=admin)
        assert r.status_code == 202, r.text
        q = {"start": iso(time.time() - 600)}
        deadline = time.monotonic() + 90
        while True:  # the index is shared: either node lists what n1 wrote
            r = await h.get(f"{n2.url}/api/cameras/{CAM}/recordings", params=q, headers=admin)
            assert r.status_code == 200, r.text
            segs = r.json()["segments"]
            if len(segs) >= 2:
                break
            assert time.monotonic() < deadline, f"{len(segs)} segments"
            await asyncio.sleep(0.3)
        assert {s["node"] for s in segs} == {"n1"}
        rng = {"start": segs[0]["start"], "end": segs[1]["end"]}

        # The playlist, a segment and the export, asked of n2: 307 to n1 with a stream token.
        for path in ("recordings/index.m3u8", f"recordings/segments/{segs[0]['id']}.mp4", "recordings/export.json"):
            r = await h.get(f"{n2.url}/api/cameras/{CAM}/{path}", params=rng, headers=admin)
            assert r.status_code == 307, (path, r.status_code, r.text)
            loc = urlsplit(r.headers["location"])
            assert f"{loc.scheme}://{loc.netloc}" == n1.url and loc.path == f"/api/cameras/{CAM}/{path}"
            token = parse_qs(loc.query)["token"][0]
            # The repeated request carries no login at all (a browser drops it across origins): the token does.
            r2 = await h.get(r.headers["location"])
            assert r2.status_code == 200, (path, r2.text)
            if path.endswith(".m3u8"):
                assert f"token={token}" in r2.text  # the segments are asked for with it too
            if path.endswith(".json"):
                assert r2.json()["node"] == "n1" and len(r2.json()["segments"]) == 2
        # The token opens this camera's recordings and nothing else.
        r = await h.get(f"{n1.url}/api/cameras/other/recordings/index.m3u8", params={**rng, "token": token})
        assert r.status_code == 401, r.text
        # n1 serves its own files without a detour.
        r = await h.get(f"{n1.url}/api/cameras/{CAM}/recordings/index.m3u8", params=rng, headers=admin)
        assert r.status_code == 200, r.text
        # A player pointed at n2 follows the 307 and plays from n1.
        url = f"{n2.url}/api/cameras/{CAM}/recordings/index.m3u8?{urlencode(rng)}"
        probe = await asyncio.to_thread(_ffprobe, url, admin["Authorization"].split()[1])
        assert probe["streams"][0]["codec_name"] == "h264"
        r = await h.delete(f"{n1.url}/api/cameras/{CAM}/recordings/manual", headers=admin)
        assert r.status_code == 204
