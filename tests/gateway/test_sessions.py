"""The session registry through the API, with real WHEP viewers: listing, ending, and the hooks that end streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiortc.mediastreams import MediaStreamError

from acl.models import Role
from fixtures.camera_server import FixtureCameraServer
from tests.live import PASSWORD, LiveGateway, WhepViewer, gateway_with, start_viewer, whep_offer
from tests.media import QUICK_HUB, cameras_fixture

pytestmark = pytest.mark.media


cams = cameras_fixture("h264_360p")


@pytest.fixture
async def gw(tmp_path: Path, cams: FixtureCameraServer) -> AsyncIterator[tuple[LiveGateway, dict[str, str]]]:
    cameras = {cam: cams.url("h264_360p", credentials="viewer:s3cret-pw") for cam in ("cam-a", "cam-b")}
    # Operators may watch cam-a (deny by default otherwise).
    rule = {"subject": "role:operator", "target": "cam:cam-a", "action": "view_live"}
    hub = {**QUICK_HUB, "idle_close_s": 30.0}
    async with gateway_with(tmp_path / "data", cameras, rules=[rule], hub=hub) as pair:
        yield pair


async def ended(v: WhepViewer, timeout: float = 5.0) -> bool:
    """True once the server has closed the viewer's stream."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await v.track.recv()
    except MediaStreamError:
        return True
    except TimeoutError:
        return False


async def test_list_and_end_sessions(gw: tuple[LiveGateway, dict[str, str]]) -> None:
    g, admin = gw
    op = await g.add_user("op", Role.operator)
    v_admin = await start_viewer(g, "cam-a", admin)
    v_op = await start_viewer(g, "cam-a", op)
    try:
        await asyncio.gather(v_admin.frames(2, timeout=15), v_op.frames(2, timeout=15))
        everyone = (await g.client.get("/api/sessions", headers=admin)).json()
        assert {s["username"] for s in everyone} == {"admin", "op"}
        mine = (await g.client.get("/api/sessions", headers=op)).json()
        assert len(mine) == 1
        s = mine[0]
        assert (s["username"], s["camera_id"], s["protocol"], s["address"]) == ("op", "cam-a", "webrtc", "127.0.0.1")
        assert s["id"] == v_op.location.rsplit("/", 1)[1] and s["started"] and s["frames_sent"] >= 2
        admin_sid = next(x["id"] for x in everyone if x["username"] == "admin")
        admin_uid = next(x["user_id"] for x in everyone if x["username"] == "admin")
        # An operator sees and ends only their own sessions; other sessions do not even exist for them.
        assert (await g.client.get(f"/api/sessions?user_id={admin_uid}", headers=op)).status_code == 403
        assert (await g.client.delete(f"/api/sessions/{admin_sid}", headers=op)).status_code == 404
        assert (await g.client.delete(v_admin.location, headers=op)).status_code == 404
        assert (await g.client.delete(f"/api/sessions?user_id={admin_uid}", headers=op)).status_code == 403
        # Admins end by user (and must say whose).
        assert (await g.client.delete("/api/sessions", headers=admin)).status_code == 422
        r = await g.client.delete(f"/api/sessions?user_id={s['user_id']}", headers=admin)
        assert r.json() == {"ended": 1}
        assert await ended(v_op)
        assert not await ended(v_admin, timeout=0.5)  # the admin's stream plays on
        assert [x["username"] for x in (await g.client.get("/api/sessions", headers=admin)).json()] == ["admin"]
        # ... and by camera.
        r = await g.client.delete("/api/sessions?camera_id=cam-a", headers=admin)
        assert r.json() == {"ended": 1}
        assert await ended(v_admin)
        assert (await g.client.get("/api/sessions", headers=admin)).json() == []
        audit = g.ld.audit
        ends = await audit.query(kind="stream_end")
        assert {e.username for e in ends} == {"admin", "op"}
        assert all("ended by admin" in (e.detail or "") for e in ends)
        assert len(await audit.query(kind="stream_start")) == 2
    finally:
        await v_op.close()
        await v_admin.close()


async def test_logout_ends_the_logins_streams(gw: tuple[LiveGateway, dict[str, str]]) -> None:
    g, admin = gw
    op = await g.add_user("op2", Role.operator)
    other_login = await g.client.post("/api/auth/token", data={"username": "op2", "password": PASSWORD})
    op_other = {"Authorization": f"Bearer {other_login.json()['access_token']}"}
    v1 = await start_viewer(g, "cam-a", op)
    v2 = await start_viewer(g, "cam-a", op_other)
    try:
        await asyncio.gather(v1.frames(1, timeout=15), v2.frames(1, timeout=15))
        assert (await g.client.post("/api/auth/logout", headers=op)).status_code == 200
        assert await ended(v1)
        left = (await g.client.get("/api/sessions", headers=admin)).json()
        assert [s["id"] for s in left] == [v2.location.rsplit("/", 1)[1]]  # the other login still watches
    finally:
        await v1.close()
        await v2.close()


async def test_deleted_camera_ends_streams_and_upstream(
    gw: tuple[LiveGateway, dict[str, str]], cams: FixtureCameraServer
) -> None:
    g, admin = gw
    v = await start_viewer(g, "cam-b", admin)
    try:
        await v.frames(2, timeout=15)
        assert cams.clients("h264_360p") == 1
        assert (await g.client.delete("/api/cameras/cam-b", headers=admin)).status_code == 204
        assert await ended(v)
        assert (await g.client.get("/api/sessions", headers=admin)).json() == []
        # Closed now, not after hub.idle_close_s (30 s here).
        assert await asyncio.to_thread(cams.wait_clients, "h264_360p", 0, 6)
        assert g.ld.hub.describe("cam-b")["state"] == "idle"
    finally:
        await v.close()


async def test_browser_cookie_login_needs_the_csrf_header(gw: tuple[LiveGateway, dict[str, str]]) -> None:
    g, _ = gw
    await g.add_user("op3", Role.operator)
    r = await g.client.post("/api/auth/login", json={"username": "op3", "password": PASSWORD})
    assert r.status_code == 200
    csrf = r.json()["csrf_token"]
    pc, offer = await whep_offer()
    try:
        url = "/api/cameras/cam-a/whep"
        # The client holds the session cookie now; without the CSRF header a cross-site POST is refused.
        r = await g.client.post(url, content=offer, headers={"Content-Type": "application/sdp"})
        assert r.status_code == 403 and "X-CSRF-Token" in r.text
        r = await g.client.post(url, content=offer, headers={"Content-Type": "application/sdp", "X-CSRF-Token": csrf})
        assert r.status_code == 201, r.text
        assert r.headers["content-type"].startswith("application/sdp") and r.headers["location"].startswith(
            "/api/whep/"
        )
        r = await g.client.delete(r.headers["location"], headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200
    finally:
        await pc.close()
        g.client.cookies.clear()


async def test_per_user_session_cap_across_protocols_and_cameras(tmp_path: Path, cams: FixtureCameraServer) -> None:
    """``sessions.max_per_user`` open sessions per user, WebRTC and HLS counted together, admins too:
    one more gets 429 naming the limit, before the camera is opened; other users are not affected."""
    cameras = {cam: cams.url("h264_360p") for cam in ("cam-a", "cam-b")}
    rules = [{"subject": "role:operator", "target": f"cam:{c}", "action": "view_live"} for c in cameras]
    async with gateway_with(tmp_path / "data", cameras, rules=rules, hub=QUICK_HUB, sessions={"max_per_user": 2}) as (
        g,
        admin,
    ):
        op = await g.add_user("op", Role.operator)
        v1 = await start_viewer(g, "cam-a", op)
        v_admin = await start_viewer(g, "cam-a", admin)
        try:
            await v1.frames(1, timeout=15)
            r = await g.client.get("/api/cameras/cam-a/hls/index.m3u8", headers=op)
            assert r.status_code == 200, r.text
            hls_sid = r.headers["x-liandong-session"]
            # The third, by either protocol and on another camera: refused before cam-b is opened.
            _, sdp = await whep_offer()
            r = await g.client.post(
                "/api/cameras/cam-b/whep", content=sdp, headers={**op, "Content-Type": "application/sdp"}
            )
            assert r.status_code == 429, r.text
            assert "sessions.max_per_user" in r.json()["detail"] and "2 open" in r.json()["detail"]
            r = await g.client.get("/api/cameras/cam-b/hls/index.m3u8", headers=op)
            assert r.status_code == 429 and "sessions.max_per_user" in r.json()["detail"], r.text
            assert g.ld.hub.describe("cam-b")["state"] == "idle"
            # Another user is not affected; ending one of the operator's sessions makes room.
            r = await g.client.get("/api/cameras/cam-b/hls/index.m3u8", headers=admin)
            assert r.status_code == 200, r.text
            assert (await g.client.delete(f"/api/sessions/{hls_sid}", headers=op)).status_code in (200, 204)
            r = await g.client.get("/api/cameras/cam-b/hls/index.m3u8", headers=op)
            assert r.status_code == 200, r.text
            # Admins are capped the same.
            r = await g.client.get("/api/cameras/cam-a/hls/index.m3u8", headers=admin)
            assert r.status_code == 429 and "'admin' already has 2 open" in r.json()["detail"], r.text
            assert len([s for s in g.ld.sessions.list() if s.username == "op"]) == 2
        finally:
            await v1.close()
            await v_admin.close()


async def test_per_user_transcode_cap(tmp_path: Path, cams: FixtureCameraServer) -> None:
    """``sessions.max_transcodes_per_user`` distinct transcodes per user: one operator cannot take
    every ``transcoder.max_concurrent`` slot. Joining a transcode the user already reads is free;
    one more is refused (429 naming the limit) before it starts; another user still gets a slot."""
    cameras = {cam: cams.url("h264_360p") for cam in ("cam-a", "cam-b")}
    rules = [{"subject": "role:operator", "target": f"cam:{c}", "action": "view_live"} for c in cameras]
    async with gateway_with(
        tmp_path / "data", cameras, rules=rules, hub=QUICK_HUB, transcoder={"max_concurrent": 2}
    ) as (g, admin):
        op = await g.add_user("op", Role.operator)
        low = "/api/cameras/{}/hls/index.m3u8?variant=low"
        r = await g.client.get(low.format("cam-a"), headers=op)
        assert r.status_code == 200, r.text
        r = await g.client.get(low.format("cam-a"), headers=op)  # the same transcode again: free
        assert r.status_code == 200, r.text
        r = await g.client.get("/api/cameras/cam-b/hls/index.m3u8", headers=op)  # no transcode: free
        assert r.status_code == 200, r.text
        r = await g.client.get(low.format("cam-b"), headers=op)
        assert r.status_code == 429, r.text
        assert "sessions.max_transcodes_per_user" in r.json()["detail"] and "already reads 1" in r.json()["detail"]
        _, sdp = await whep_offer()
        r = await g.client.post(
            "/api/cameras/cam-b/whep?variant=low", content=sdp, headers={**op, "Content-Type": "application/sdp"}
        )
        assert r.status_code == 429 and "sessions.max_transcodes_per_user" in r.json()["detail"], r.text
        assert len(g.ld.media.running()) == 1  # the refused ones started nothing
        # The second slot is still there for someone else.
        r = await g.client.get(low.format("cam-b"), headers=admin)
        assert r.status_code == 200, r.text
