"""LL-HLS end to end: the real gateway, the real fixture cameras, ffprobe as a native player."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from acl.models import Role
from fixtures.camera_server import FixtureCameraServer
from gateway.settings import load_settings
from tests.live import LiveGateway, gateway_with, live_gateway
from tests.media import QUICK_HUB, cameras_fixture

pytestmark = pytest.mark.media
SECRET = "hls-cam-secret-31"


MOUNTS = ("h264", "h265", "h264_360p")
cams = cameras_fixture(*MOUNTS)


@pytest.fixture
async def gw(tmp_path: Path, cams: FixtureCameraServer) -> AsyncIterator[tuple[LiveGateway, dict[str, str]]]:
    cameras = {f"cam-{mount}": cams.url(mount, credentials=f"viewer:{SECRET}") for mount in MOUNTS}
    rule = {"subject": "role:operator", "target": "cam:cam-h264_360p", "action": "view_live"}
    hls = {"idle_stop_s": 2.0, "session_idle_s": 3.0}
    async with gateway_with(
        tmp_path / "data", cameras, rules=[rule], hub=QUICK_HUB, hls=hls, auth={"stream_token_ttl_s": 60}
    ) as pair:
        yield pair


def media_uri(multivariant: str) -> str:
    lines = [ln for ln in multivariant.splitlines() if ln and not ln.startswith("#")]
    assert len(lines) == 1, multivariant
    return lines[0]


async def open_stream(g: LiveGateway, cam: str, headers: dict[str, str], query: str = "") -> tuple[str, str]:
    """index.m3u8 -> (media playlist URL path with its key, the playlist text)."""
    base = f"/api/cameras/{cam}/hls/"
    r = await g.client.get(base + "index.m3u8" + query, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    uri = base + media_uri(r.text)
    p = await g.client.get(uri, headers=headers)
    assert p.status_code == 200, p.text
    return uri, p.text


async def ffprobe(url: str) -> dict[str, object]:
    proc = await asyncio.create_subprocess_exec(
        "ffprobe", "-v", "error", "-rw_timeout", "10000000", "-show_streams", "-count_packets",
        "-read_intervals", "%+3", "-of", "json", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-500:]
    return json.loads(out)  # type: ignore[no-any-return]


async def test_ll_hls_playlist_parts_and_blocking_reload(gw: tuple[LiveGateway, dict[str, str]]) -> None:
    g, admin = gw
    t0 = time.monotonic()
    r = await g.client.get("/api/cameras/cam-h264/hls/index.m3u8", headers=admin)
    assert r.status_code == 200, r.text
    assert re.search(r'CODECS="avc1\.[0-9a-f]{6}",RESOLUTION=1280x720', r.text), r.text
    uri = "/api/cameras/cam-h264/hls/" + media_uri(r.text)
    text = (await g.client.get(uri, headers=admin)).text
    assert text.startswith("#EXTM3U\n")
    assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600" in text
    assert "#EXT-X-PART-INF:PART-TARGET=0.200" in text
    assert re.search(r'#EXT-X-MAP:URI="init\d+\.mp4\?s=[\w-]+"', text)
    parts = re.findall(r'#EXT-X-PART:DURATION=([\d.]+),URI="part(\d+)\.m4s\?s=[\w-]+"(,INDEPENDENT=YES)?', text)
    assert parts and parts[0][2], text  # the first part starts at a keyframe
    assert all(float(d) <= 0.2 + 0.041 for d, _, _ in parts)  # within a frame of the part target
    hint = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part(\d+)\.m4s', text)
    assert hint and int(hint.group(1)) == int(parts[-1][1]) + 1

    # Blocking reload: ask for the part after the newest; the answer comes when it exists.
    msn = int(re.findall(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text)[0])
    msn += text.count("#EXTINF")
    nparts = len(text.split("#EXTINF")[-1].split("#EXT-X-PART:")) - 1
    started = time.monotonic()
    r = await g.client.get(uri + f"&_HLS_msn={msn}&_HLS_part={nparts}", headers=admin)
    waited = time.monotonic() - started
    assert r.status_code == 200
    assert r.text.count("#EXT-X-PART:") >= 1 and waited < 2.0
    assert (await g.client.get(uri + f"&_HLS_msn={msn + 50}", headers=admin)).status_code == 400
    assert (await g.client.get(uri + "&_HLS_part=1", headers=admin)).status_code == 400

    # The preload hint is answered as soon as the part is made; parts and segments are fMP4.
    hinted = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"', r.text)
    assert hinted is not None
    part = await g.client.get("/api/cameras/cam-h264/hls/" + hinted.group(1), headers=admin)
    assert part.status_code == 200 and part.content[4:8] == b"moof"
    init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', r.text)
    assert init is not None
    got = await g.client.get("/api/cameras/cam-h264/hls/" + init.group(1), headers=admin)
    assert got.content[4:8] == b"ftyp" and b"avcC" in got.content
    assert time.monotonic() - t0 < 15
    listed = (await g.client.get("/api/sessions", headers=admin)).json()
    assert [s["protocol"] for s in listed] == ["hls"]


async def test_ffprobe_plays_with_a_stream_token_and_tokens_are_checked(
    gw: tuple[LiveGateway, dict[str, str]],
) -> None:
    g, admin = gw
    op = await g.add_user("op", Role.operator)
    tok = (await g.client.post("/api/auth/stream-token/cam-h264_360p", headers=op)).json()["token"]
    info = await ffprobe(f"{g.base_url}/api/cameras/cam-h264_360p/hls/index.m3u8?token={tok}")
    streams = info["streams"]
    assert isinstance(streams, list)
    video = next(s for s in streams if s["codec_type"] == "video")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 640, 360)
    assert int(video["nb_read_packets"]) >= 50

    base = "/api/cameras/{}/hls/index.m3u8?token={}"
    # Wrong camera: a token for cam-h264_360p does not open cam-h264.
    assert (await g.client.get(base.format("cam-h264", tok))).status_code == 401
    # Tampered (another user id) or garbage.
    assert (await g.client.get(base.format("cam-h264_360p", tok[:-3] + "xyz"))).status_code == 401
    # Right token, user not allowed: the operator has no grant for cam-h264.
    me = (await g.client.get("/api/auth/me", headers=op)).json()["id"]
    login_id = next(t["id"] for t in (await g.client.get("/api/auth/tokens", headers=op)).json() if t["current"])
    tok2 = g.ld.stream_tokens.issue(me, "cam-h264", login_id)
    assert (await g.client.get(base.format("cam-h264", tok2))).status_code == 403
    # Expired.
    g.ld.stream_tokens.ttl_s = 1
    await asyncio.sleep(2.1)
    assert (await g.client.get(base.format("cam-h264_360p", tok))).status_code == 401
    # Logged out: the token dies with its login, and so does the session it opened.
    g.ld.stream_tokens.ttl_s = 60
    tok3 = (await g.client.post("/api/auth/stream-token/cam-h264_360p", headers=op)).json()["token"]
    r = await g.client.get(base.format("cam-h264_360p", tok3))
    assert r.status_code == 200
    uri = "/api/cameras/cam-h264_360p/hls/" + media_uri(r.text)
    assert (await g.client.get(uri)).status_code == 200  # the session key alone carries on
    assert (await g.client.post("/api/auth/logout", headers=op)).status_code in (200, 204)
    assert (await g.client.get(base.format("cam-h264_360p", tok3))).status_code == 401
    assert (await g.client.get(uri)).status_code == 410
    audit = (await g.client.get("/api/audit?kind=denied", headers=admin)).json()
    rows = audit["items"] if isinstance(audit, dict) else audit
    assert any(row.get("camera_id") == "cam-h264" for row in rows)


async def test_revocation_and_admin_end_stop_the_player(gw: tuple[LiveGateway, dict[str, str]]) -> None:
    g, admin = gw
    op = await g.add_user("op2", Role.operator)
    uri, _ = await open_stream(g, "cam-h264_360p", op)
    sessions = (await g.client.get("/api/sessions", headers=admin)).json()
    assert [(s["protocol"], s["camera_id"]) for s in sessions] == [("hls", "cam-h264_360p")]
    rules = (await g.client.get("/api/admin/rules", headers=admin)).json()
    items = rules["items"] if isinstance(rules, dict) else rules
    rule = next(x for x in items if x.get("target") == "cam:cam-h264_360p")
    r = await g.client.delete(f"/api/admin/rules/{rule['id']}", headers=admin)
    assert r.status_code in (200, 204), r.text
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and g.ld.sessions.list():
        await asyncio.sleep(0.1)
    assert g.ld.sessions.list() == []
    r = await g.client.get(uri, headers=op)
    assert r.status_code == 403  # the ACL says no before the session is even looked at


async def test_traversal_and_unknown_names_are_404(gw: tuple[LiveGateway, dict[str, str]]) -> None:
    g, admin = gw
    uri, _ = await open_stream(g, "cam-h264_360p", admin)
    key = uri.split("?s=")[1]
    base = "/api/cameras/cam-h264_360p/hls/"
    for name in (
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2e%2e%2fsettings.py",
        "init1.mp4%00.m3u8",
        "seg-1.m4s",
        "part1.m4s.m3u8",
        "stream.m3u8%2F..%2Findex.m3u8",
        "seg99999999.m4s",
        "part99999999.m4s",
        "init7.mp4",
        "index.M3U8",
        "%C0%AE%C0%AE%2F",
    ):
        r = await g.client.get(base + name + f"?s={key}", headers=admin, follow_redirects=True)
        assert r.status_code == 404, (name, r.status_code, r.text)
        assert SECRET not in r.text
    r = await g.client.get(base + "stream.m3u8?s=not-a-key", headers=admin)
    assert r.status_code == 404
    # A key is bound to its camera.
    r = await g.client.get(f"/api/cameras/cam-h264/hls/stream.m3u8?s={key}", headers=admin)
    assert r.status_code == 404
    r = await g.client.get(f"/api/cameras/cam-h264/hls/stream.m3u8?s={key}")
    assert r.status_code == 401


async def test_idle_muxer_stops_and_releases_the_camera(
    gw: tuple[LiveGateway, dict[str, str]], cams: FixtureCameraServer
) -> None:
    g, admin = gw
    await open_stream(g, "cam-h264", admin)
    assert g.ld.hls.describe() and g.ld.hub.describe("cam-h264")["readers_by_protocol"] == {"hls": 1}
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline and (g.ld.hls.describe() or g.ld.sessions.list()):
        await asyncio.sleep(0.2)
    assert g.ld.hls.describe() == [] and g.ld.sessions.list() == []
    while time.monotonic() < deadline and "cam-h264" in g.ld.hub.cameras():
        await asyncio.sleep(0.2)
    assert "cam-h264" not in g.ld.hub.cameras()
    audit = (await g.client.get("/api/audit?kind=stream_end", headers=admin)).json()
    rows = audit["items"] if isinstance(audit, dict) else audit
    assert any("player stopped asking" in (row.get("detail") or "") for row in rows)


async def test_h265_camera_plays_as_h264_over_hls_through_one_transcode(
    gw: tuple[LiveGateway, dict[str, str]], cams: FixtureCameraServer
) -> None:
    g, admin = gw
    r = await g.client.get("/api/cameras/cam-h265/hls/index.m3u8", headers=admin)
    assert r.status_code == 200, r.text
    assert 'CODECS="avc1.' in r.text
    tok = (await g.client.post("/api/auth/stream-token/cam-h265", headers=admin)).json()["token"]
    info = await ffprobe(f"{g.base_url}/api/cameras/cam-h265/hls/index.m3u8?token={tok}")
    video = next(s for s in info["streams"] if s["codec_type"] == "video")  # type: ignore[union-attr]
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 1280, 720)
    assert len(g.ld.media.running()) == 1  # two players, one transcode
    assert cams.clients("h265") == 1


async def test_bad_variant_is_a_clear_422(gw: tuple[LiveGateway, dict[str, str]]) -> None:
    g, admin = gw
    r = await g.client.get("/api/cameras/cam-h264/hls/index.m3u8?variant=huge", headers=admin)
    assert r.status_code == 422 and "variant" in r.text


async def test_hls_disabled_answers_503(tmp_path: Path, cams: FixtureCameraServer) -> None:
    settings = load_settings(None, data_dir=tmp_path / "d2", hls={"enabled": False})
    async with live_gateway(settings) as g:
        admin = await g.add_user("admin", Role.admin)
        await g.add_camera(admin, "c", cams.url("h264_360p"))
        r = await g.client.get("/api/cameras/c/hls/index.m3u8", headers=admin)
        assert r.status_code == 503 and "HLS is disabled" in r.text


async def test_httpx_player_loop_follows_live(gw: tuple[LiveGateway, dict[str, str]]) -> None:
    """A player loop like hls.js: blocking reloads for the next part, fetch each part; time advances."""
    g, admin = gw
    uri, text = await open_stream(g, "cam-h264_360p", admin)
    base = "/api/cameras/cam-h264_360p/hls/"
    fetched = 0
    started = time.monotonic()
    client: httpx.AsyncClient = g.client
    while time.monotonic() - started < 3.0:
        hint = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"', text)
        assert hint is not None
        r = await client.get(base + hint.group(1), headers=admin)
        assert r.status_code == 200 and r.content[4:8] == b"moof"
        fetched += 1
        text = (await client.get(uri, headers=admin)).text
    assert fetched >= 10  # ~5 parts per second arrive as they are made


async def test_always_remux_has_segments_ready_without_holding_the_camera(
    gw: tuple[LiveGateway, dict[str, str]],
) -> None:
    from tests.live import start_viewer

    g, admin = gw
    viewer = await start_viewer(g, "cam-h264_360p", admin)  # someone watches over WebRTC
    try:
        await viewer.frames(5, timeout=15)
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not any(
            m["camera_id"] == "cam-h264_360p" and m["segments"] >= 2 for m in g.ld.hls.describe()
        ):
            await asyncio.sleep(0.1)
        started = time.monotonic()
        uri, text = await open_stream(g, "cam-h264_360p", admin)
        assert time.monotonic() - started < 0.5  # no wait for a keyframe: segments were made already
        assert text.count("#EXTINF") >= 1
        # While HLS plays, the muxer's reader holds the camera like any viewer.
        await viewer.close()
        await g.client.delete(viewer.location, headers=admin)
        await asyncio.sleep(2.5)  # longer than the hub's idle close
        assert "cam-h264_360p" in g.ld.hub.cameras()
        assert (await g.client.get(uri, headers=admin)).status_code == 200
    finally:
        await viewer.close()
    # Once the player has gone too, nothing holds the camera.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and "cam-h264_360p" in g.ld.hub.cameras():
        await asyncio.sleep(0.2)
    assert "cam-h264_360p" not in g.ld.hub.cameras()
    await g.ld.hls.sweep()
    assert not any(m["camera_id"] == "cam-h264_360p" for m in g.ld.hls.describe())
