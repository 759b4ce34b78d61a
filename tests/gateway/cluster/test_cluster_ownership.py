"""Camera ownership across three real gateway processes, a real redis-server and the RTSP fixture:
one upstream pull per camera, redirects to the owner, a killed owner's cameras re-owned, and a
node cut off from Redis stops pulling before anyone else may start."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fixtures.camera_server import FixtureCameraServer
from tests.cluster_nodes import Cluster, open_viewer
from tests.redis_proxy import RedisProxy
from tests.redis_server import redis_server

pytestmark = [pytest.mark.media, pytest.mark.timeout(240)]
CAMS = ("cam1", "cam2")


@pytest.fixture
def cams() -> Iterator[FixtureCameraServer]:
    with FixtureCameraServer(mounts=("h264",)) as server:
        yield server


@pytest.fixture
def cluster(tmp_path: Path, cams: FixtureCameraServer) -> Iterator[Cluster]:
    with redis_server(tmp_path) as url, Cluster(tmp_path, url) as c:
        c.prepare({cid: cams.url("h264") + f"?cam={cid}" for cid in CAMS})
        c.start_all()
        yield c


async def _status(c: Cluster, node_index: int, *cameras: str) -> dict:
    return await asyncio.to_thread(c.status, c.nodes[node_index], list(cameras))


async def test_one_pull_per_camera_viewers_redirected_to_the_owner(cluster: Cluster, cams: FixtureCameraServer) -> None:
    c = cluster
    n1, n2, n3 = c.nodes
    admin = await asyncio.to_thread(c.token, "admin")
    first = await open_viewer(n1.url, "cam1", admin)  # first come: n1 takes cam1
    assert first.served_by == n1.url and not first.redirected
    await first.frames(5)
    others = [await open_viewer(n.url, "cam1", admin) for n in (n2, n3)]
    for v in others:
        assert v.redirected and v.served_by == n1.url  # 307 to the owner, offer and all
        await v.frames(5)
    third = await open_viewer(n3.url, "cam2", admin)  # another camera: n3 takes it
    assert third.served_by == n3.url
    await third.frames(5)
    await asyncio.to_thread(cams.sync)
    assert cams.clients("h264") == 2  # one upstream session per camera, across three nodes
    st = await _status(c, 1, *CAMS)
    assert st["owners"] == {"cam1": "n1", "cam2": "n3"}
    # A thumbnail asked of a non-owner comes from the owner's live keyframe, not a second pull.
    opened = cams.total_connections()
    async with httpx.AsyncClient(follow_redirects=True, timeout=10) as h:
        r = await h.get(f"{n2.url}/api/cameras/cam1/snapshot.jpg", params={"width": 320}, headers=admin)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", r.text
    assert r.history and str(r.url).startswith(n1.url)
    await asyncio.to_thread(cams.sync)
    assert cams.total_connections() == opened
    # An HLS player that asks a non-owner follows the 307 to the owner and plays there with its key.
    async with httpx.AsyncClient(follow_redirects=True, timeout=15) as h:
        r = await h.get(f"{n2.url}/api/cameras/cam1/hls/index.m3u8", headers=admin)
        assert r.status_code == 200 and r.history and str(r.url).startswith(n1.url), r.text
        media = str(r.url).split("index.m3u8")[0] + next(ln for ln in r.text.splitlines() if ln and ln[0] != "#")
        p = await h.get(media)  # the session key alone, as a native player would
        assert p.status_code == 200 and "#EXT-X-PART:" in p.text, p.text
    await asyncio.to_thread(cams.sync)
    assert cams.total_connections() == opened
    metrics = httpx.get(n2.url + "/metrics", headers=admin, timeout=5).text
    assert 'liandong_cluster_redirects_total{route="/api/cameras/{camera_id}/whep"} 1.0' in metrics
    assert 'liandong_cluster_redirects_total{route="/api/cameras/{camera_id}/snapshot.jpg"} 1.0' in metrics
    assert 'liandong_cluster_redirects_total{route="/api/cameras/{camera_id}/hls/index.m3u8"} 1.0' in metrics
    assert "liandong_cluster_leases 0.0" in metrics and "liandong_cluster_redis_up 1.0" in metrics
    assert "liandong_cluster_leases 1.0" in httpx.get(n1.url + "/metrics", headers=admin, timeout=5).text
    assert set(st["nodes"]) == {"n1", "n2", "n3"}

    # The session directory: every node lists all sessions; ending one works from any node.
    listed = httpx.get(n2.url + "/api/sessions", headers=admin, timeout=5).json()
    assert sorted((s["camera_id"], s["node"], s["protocol"]) for s in listed) == [
        ("cam1", "n1", "hls"),
        ("cam1", "n1", "webrtc"),
        ("cam1", "n1", "webrtc"),
        ("cam1", "n1", "webrtc"),
        ("cam2", "n3", "webrtc"),
    ]
    victim = next(s for s in listed if s["camera_id"] == "cam2")
    r = httpx.delete(f"{n2.url}/api/sessions/{victim['id']}", headers=admin, timeout=5)
    assert r.status_code == 200 and r.json() == {"ok": True}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        listed = httpx.get(n1.url + "/api/sessions", headers=admin, timeout=5).json()
        if all(s["id"] != victim["id"] for s in listed):
            break
        await asyncio.sleep(0.1)
    assert all(s["id"] != victim["id"] for s in listed)
    # ... and its transport really closed: n3 drops cam2 after the idle delay, giving the lease back.
    assert await asyncio.to_thread(cams.wait_clients, "h264", 1, 10)
    deadline = time.monotonic() + 5
    while (await _status(c, 0, "cam2"))["owners"]["cam2"] is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert (await _status(c, 0, "cam2"))["owners"]["cam2"] is None

    # A WHEP DELETE that the load balancer hands to another node still ends the session.
    assert first.served_by == n1.url
    r = httpx.delete(first.session_url.replace(n1.url, n3.url), headers=admin, timeout=5)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 5
    while any(
        s["id"] == first.session_url.rsplit("/", 1)[1]
        for s in httpx.get(n2.url + "/api/sessions", headers=admin, timeout=5).json()
    ):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    # The admin ends every session of a camera from a node that holds none of them.
    r = httpx.delete(n2.url + "/api/sessions", params={"camera_id": "cam1"}, headers=admin, timeout=5)
    assert r.status_code == 200 and r.json() == {"ended": 3}, r.text
    deadline = time.monotonic() + 5
    while httpx.get(n3.url + "/api/sessions", headers=admin, timeout=5).json():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    for v in (first, *others, third):
        await v.close()


async def test_killed_owner_cameras_are_reowned_and_viewers_play_again(
    cluster: Cluster, cams: FixtureCameraServer
) -> None:
    c = cluster
    n1, n2, _ = c.nodes
    admin = await asyncio.to_thread(c.token, "admin")
    v = await open_viewer(n1.url, "cam1", admin)
    await v.frames(3)
    assert (await _status(c, 1, "cam1"))["owners"]["cam1"] == "n1"
    killed = time.monotonic()
    c.kill(n1)  # SIGKILL by PID
    await v.close()
    # The console retries through the load balancer, here: n2.
    again = None
    for _ in range(100):
        try:
            again = await open_viewer(n2.url, "cam1", admin, timeout=5)
            break
        except (RuntimeError, httpx.HTTPError):
            await asyncio.sleep(0.2)
    assert again is not None, c.log_tail(n2)
    await again.frames(1, timeout=5)
    playing_after = time.monotonic() - killed
    assert again.served_by == n2.url
    print(f"killed owner: playing again after {playing_after:.2f} s")
    assert playing_after <= 5.0, f"playing again after {playing_after:.2f} s"
    await asyncio.to_thread(cams.sync)
    assert await asyncio.to_thread(cams.wait_clients, "h264", 1, 5)
    st = await _status(c, 2, "cam1")
    assert st["owners"]["cam1"] == "n2" and set(st["nodes"]) == {"n2", "n3"}
    await again.close()


async def test_node_cut_off_from_redis_stops_pulling_before_another_takes_over(
    tmp_path: Path, cams: FixtureCameraServer
) -> None:
    with redis_server(tmp_path) as url, RedisProxy(url) as proxy:
        # n1 reaches Redis only through the proxy: cutting it is a network partition for n1 alone.
        cut_off = {"n1": {"LIANDONG_CLUSTER__REDIS_URL": proxy.url}}
        with Cluster(tmp_path, url, n=2, per_node=cut_off) as c:
            await _partition(c, proxy, cams)


async def _partition(c: Cluster, proxy: RedisProxy, cams: FixtureCameraServer) -> None:
    c.prepare({"cam1": cams.url("h264") + "?cam=cam1"})
    c.start_all()
    n1, n2 = c.nodes
    admin = await asyncio.to_thread(c.token, "admin")
    v = await open_viewer(n1.url, "cam1", admin)
    await v.frames(3)
    assert (await _status(c, 1, "cam1"))["owners"]["cam1"] == "n1"

    proxy.cut()
    cut_at = time.monotonic()
    stopped_after = None
    taken_after = None
    max_clients = 0
    viewer2 = None
    while time.monotonic() - cut_at < 8:
        await asyncio.to_thread(cams.sync)
        n = cams.clients("h264")
        max_clients = max(max_clients, n)
        if stopped_after is None and n == 0:
            stopped_after = time.monotonic() - cut_at
        if viewer2 is None and stopped_after is not None:
            try:  # a viewer on the other side of the partition
                viewer2 = await open_viewer(n2.url, "cam1", admin, timeout=5)
                await viewer2.frames(1, timeout=5)
                taken_after = time.monotonic() - cut_at
            except (RuntimeError, httpx.HTTPError):
                viewer2 = None
        if taken_after is not None:
            break
        await asyncio.sleep(0.05)
    print(f"partition: stopped pulling after {stopped_after} s, taken over after {taken_after} s")
    assert stopped_after is not None, "the cut-off node kept pulling"
    assert stopped_after < 2.5, f"stopped pulling {stopped_after:.2f} s after the cut (lease 2.5 s)"
    assert taken_after is not None and taken_after <= 5.0
    assert max_clients <= 1  # never two pulls of the camera at once
    assert viewer2 is not None and viewer2.served_by == n2.url
    # n1's viewer was kept waiting (n1 cannot tell a partition from a Redis outage) ...
    listed = httpx.get(n2.url + "/api/sessions", headers=admin, timeout=5).json()
    assert sorted(s["node"] for s in listed) == ["n2"]  # n1's heartbeat lapsed: its sessions are not listed
    proxy.heal()
    # ... until the partition healed: n2 owns the camera now, so n1 ends its session (the console
    # reconnects and is redirected).
    deadline = time.monotonic() + 5
    while True:
        listed = httpx.get(n2.url + "/api/sessions", headers=admin, timeout=5).json()
        if sorted(s["node"] for s in listed) == ["n2"] and (await _status(c, 1))["nodes"].keys() == {"n1", "n2"}:
            break
        assert time.monotonic() < deadline, listed
        await asyncio.sleep(0.1)
    v3 = await open_viewer(n1.url, "cam1", admin)
    assert v3.redirected and v3.served_by == n2.url
    await v3.frames(1)
    assert cams.clients("h264") == 1
    for x in (v, viewer2, v3):
        await x.close()
