"""The operator page in a real Chromium: permitted cameras, click, play, refusals, revocation, the wall."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from playwright.async_api import expect

from tests.live import LiveGateway
from tests.web.helpers import add_operator, grant, login, playing

pytestmark = [pytest.mark.browser, pytest.mark.media]


async def open_sessions(g: LiveGateway, admin: dict[str, str]) -> list[str]:
    return sorted(s["camera_id"] for s in (await g.client.get("/api/sessions", headers=admin)).json())


async def wait_sessions(g: LiveGateway, admin: dict[str, str], want: list[str], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while await open_sessions(g, admin) != sorted(want):
            await asyncio.sleep(0.1)


async def test_operator_sees_permitted_cameras_and_plays(
    web_gateway: tuple[LiveGateway, Any], console_page: Any
) -> None:
    g, admin = web_gateway
    await add_operator(g, admin, "op-qibao")
    await grant(g, admin, "op-qibao", "qibao", "cam:cam-qb")
    page = console_page
    await login(page, g, "op-qibao")
    await page.wait_for_selector("#camera-list li[data-camera]")
    ids = await page.eval_on_selector_all("#camera-list li[data-camera]", "els => els.map(e => e.dataset.camera)")
    assert ids == ["cam-qb"]  # only what the policy allows
    t0 = time.monotonic()
    await page.click("#camera-list li[data-camera='cam-qb']")
    result = await playing(page, "cam-qb")
    elapsed = time.monotonic() - t0
    assert (result["width"], result["height"]) == (1280, 720), result
    assert result["frames"] >= 20, result
    print(f"click -> first frame {result['first_frame_ms']} ms; -> 20 frames presented {elapsed:.2f} s")
    tile = page.locator(".tile[data-camera='cam-qb']")
    await expect(tile).to_have_attribute("data-state", "playing")
    # Per-tile info: protocol, codec, size, bitrate, latency, first frame (refreshed every second).
    await expect(tile.locator(".tile-info")).to_contain_text("kbit/s", timeout=15000)
    info = await tile.locator(".tile-info").inner_text()
    assert info.startswith("WebRTC · H264 · 1280×720") and "延迟" in info and "首帧" in info, info
    assert "secret-pw" not in await page.content()
    assert await open_sessions(g, admin) == ["cam-qb"]
    # Closing the tile ends the session on the server (WHEP DELETE).
    await page.click(".tile[data-camera='cam-qb'] .tile-close")
    await wait_sessions(g, admin, [])
    # The session leaves the registry before its end is audited: give the audit write a moment.
    async with asyncio.timeout(5):
        while True:
            stream_end = (await g.client.get("/api/audit?kind=stream_end", headers=admin)).json()
            if any(e["camera_id"] == "cam-qb" and "ended by viewer" in (e.get("detail") or "") for e in stream_end):
                break
            await asyncio.sleep(0.1)


async def test_refusals_are_clear_in_both_languages(web_gateway: tuple[LiveGateway, Any], console_page: Any) -> None:
    g, admin = web_gateway
    await add_operator(g, admin, "op-none")
    page = console_page
    await login(page, g, "op-none")
    await expect(page.locator("#count")).to_have_text("共 0 路可见摄像机")
    # A colleague's link (or another system) opens a camera this operator may not view.
    await page.evaluate("location.hash = 'camera=cam-xz'")
    tile = page.locator(".tile[data-camera='cam-xz']")
    await expect(tile).to_have_attribute("data-state", "denied")
    await expect(tile.locator(".tile-msg")).to_have_text("无权查看此摄像机（已记录）")
    await expect(tile.locator(".tile-retry")).to_be_hidden()  # retrying cannot help
    denied = (await g.client.get("/api/audit?kind=denied", headers=admin)).json()
    assert any(d["camera_id"] == "cam-xz" and d["username"] == "op-none" for d in denied)
    await page.click("#lang")
    await expect(tile.locator(".tile-msg")).to_have_text("You may not view this camera (logged)")
    # No session was made, and the camera's name was not revealed.
    assert await open_sessions(g, admin) == []
    assert await tile.locator(".tile-title").inner_text() == "cam-xz"


async def test_h265_plays_through_the_transcoder_and_unknown_cameras_say_why(
    web_gateway: tuple[LiveGateway, Any], console_page: Any
) -> None:
    g, _admin = web_gateway
    page = console_page
    await login(page, g, "admin")
    await page.evaluate("location.hash = 'camera=cam-265,no-such-cam'")
    await expect(page.locator(".tile[data-camera='no-such-cam']")).to_have_attribute("data-state", "not_found")
    await expect(page.locator(".tile[data-camera='no-such-cam'] .tile-msg")).to_have_text("摄像机不存在")
    # Chromium has no H.265: the gateway's shared transcode sends it H.264 over WebRTC.
    got = await playing(page, "cam-265")
    assert (got["width"], got["height"]) == (1280, 720) and got["frames"] >= 20
    assert await page.get_attribute(".tile[data-camera='cam-265']", "data-protocol") == "webrtc"
    assert len(g.ld.media.running()) == 1


async def test_without_webrtc_the_tile_falls_back_to_hls_and_plays(
    web_gateway: tuple[LiveGateway, Any], chromium: Any
) -> None:
    g, admin = web_gateway
    page = await chromium.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    # A browser (or network policy) without WebRTC: the console must still show video.
    await page.add_init_script("delete window.RTCPeerConnection; delete window.webkitRTCPeerConnection;")
    try:
        await login(page, g, "admin")
        await page.evaluate("location.hash = 'camera=cam-265'")
        got = await playing(page, "cam-265", frames=30)
        assert (got["width"], got["height"]) == (1280, 720)
        tile = page.locator(".tile[data-camera='cam-265']")
        await expect(tile).to_have_attribute("data-protocol", "hls")
        await expect(tile.locator(".tile-info")).to_contain_text("HLS")
        sessions = (await g.client.get("/api/sessions", headers=admin)).json()
        assert [(s["protocol"], s["camera_id"]) for s in sessions] == [("hls", "cam-265")]
        await tile.locator(".tile-close").click()
        await wait_sessions(g, admin, [])  # closing the tile ended the HLS session
    finally:
        await page.close()
    assert not problems, problems


@pytest.mark.parametrize("gateway_overrides", [{"webrtc": {"open_timeout_s": 2.0}}])
async def test_unreachable_camera_can_be_retried(
    web_gateway: tuple[LiveGateway, Any], console_page: Any, web_cams: Any
) -> None:
    g, admin = web_gateway
    await g.add_camera(admin, "cam-dead", "rtsp://127.0.0.1:9/none", name="断线")
    page = console_page
    await login(page, g, "admin")
    await page.click("#camera-list li[data-camera='cam-dead']")
    tile = page.locator(".tile[data-camera='cam-dead']")
    await expect(tile).to_have_attribute("data-state", "unavailable", timeout=10_000)
    await expect(tile.locator(".tile-msg")).to_have_text("摄像机无法连接")
    await expect(tile.locator(".tile-retry")).to_have_text("重试")
    # The camera is repaired (here: pointed at a working source) once the gateway has let go of it;
    # Retry then plays it in the same tile.
    r = await g.client.patch("/api/cameras/cam-dead", json={"source_url": web_cams.url("h264_360p")}, headers=admin)
    assert r.status_code == 200, r.text
    async with asyncio.timeout(15):
        while "cam-dead" in g.ld.hub.cameras():
            await asyncio.sleep(0.1)
    await tile.locator(".tile-retry").click()
    result = await playing(page, "cam-dead")
    assert result["width"] == 640 and result["frames"] >= 20, result


async def test_layouts_cap_the_wall_and_closed_tiles_end_their_sessions(
    web_gateway: tuple[LiveGateway, Any], console_page: Any
) -> None:
    g, admin = web_gateway
    page = console_page
    await login(page, g, "admin")
    await page.select_option("#layout", "1")
    await page.click("#camera-list li[data-camera='cam-qb']")
    assert (await playing(page, "cam-qb"))["frames"] >= 20
    # One tile only: opening another replaces the oldest, whose session ends.
    await page.click("#camera-list li[data-camera='cam-xz']")
    assert (await playing(page, "cam-xz"))["frames"] >= 20
    await expect(page.locator(".tile")).to_have_count(1)
    await wait_sessions(g, admin, ["cam-xz"])
    # Four tiles: both play side by side; clicking an open camera does not open it twice.
    await page.select_option("#layout", "4")
    await page.click("#camera-list li[data-camera='cam-qb']")
    await page.click("#camera-list li[data-camera='cam-xz']")
    assert (await playing(page, "cam-qb"))["frames"] >= 20
    await expect(page.locator(".tile")).to_have_count(2)
    await wait_sessions(g, admin, ["cam-qb", "cam-xz"])
    # Back to one: the older tile (cam-xz) closes.
    await page.select_option("#layout", "1")
    await expect(page.locator(".tile")).to_have_count(1)
    await expect(page.locator(".tile")).to_have_attribute("data-camera", "cam-qb")
    await wait_sessions(g, admin, ["cam-qb"])
    # An impatient double click on another camera still makes one tile and one session.
    await page.dblclick("#camera-list li[data-camera='cam-xz']")
    assert (await playing(page, "cam-xz"))["frames"] >= 20
    await expect(page.locator(".tile")).to_have_count(1)
    await wait_sessions(g, admin, ["cam-xz"])
    await page.select_option("#layout", "16")
    assert await page.get_attribute("#grid", "data-layout") == "16"


async def test_revocation_closes_tile_with_reason(web_gateway: tuple[LiveGateway, Any], console_page: Any) -> None:
    g, admin = web_gateway
    await add_operator(g, admin, "op-rev")
    await grant(g, admin, "op-rev", "rev", "cam:cam-xz")
    page = console_page
    await login(page, g, "op-rev")
    await page.click("#camera-list li[data-camera='cam-xz']")
    result = await playing(page, "cam-xz")
    assert result["width"] == 640, result
    rules = (await g.client.get("/api/admin/rules?subject=dept:rev", headers=admin)).json()
    t0 = time.monotonic()
    r = await g.client.delete(f"/api/admin/rules/{rules[0]['id']}", headers=admin)
    assert r.status_code == 200
    tile = page.locator(".tile[data-camera='cam-xz']")
    # The gateway ends the stream within a second; the tile notices the silence and asks the gateway
    # (waiting for the browser's ICE consent to expire would take ~10 s).
    await expect(tile).to_have_attribute("data-state", "revoked", timeout=7_000)
    print(f"grant withdrawn -> tile says so in {time.monotonic() - t0:.2f} s")
    await expect(tile.locator(".tile-msg")).to_have_text("查看权限已被撤销，视频已关闭")
    await expect(tile.locator(".tile-retry")).to_be_hidden()
    assert await open_sessions(g, admin) == []


async def test_alarm_opens_and_plays_bus_camera_without_a_click(
    web_gateway: tuple[LiveGateway, Any], console_page: Any, web_cams: Any
) -> None:
    from camera_registry.inventory import import_vehicles
    from tests.gateway.test_alarms import signed

    g, admin = web_gateway
    await import_vehicles(g.ld.store, [{"id": "bus-9", "kind": "bus", "plate": "沪A99999", "line": "闵行9路"}])
    body = {
        "id": "bus-9-front",
        "name": "闵行9路 前",
        "kind": "bus",
        "vehicle_id": "bus-9",
        "source_url": web_cams.url("h264"),
    }
    assert (await g.client.post("/api/cameras", json=body, headers=admin)).status_code == 201
    for dept in ("district", "police"):
        await g.client.put(f"/api/admin/departments/{dept}", json={"name": dept}, headers=admin)
    await add_operator(g, admin, "op-duty")
    users = (await g.client.get("/api/admin/users", headers=admin)).json()
    uid = next(u["id"] for u in users if u["username"] == "op-duty")
    await g.client.put(f"/api/admin/users/{uid}/memberships/police", json={}, headers=admin)
    secret = (await g.client.post("/api/admin/alarm-sources", json={"name": "bus-gps"}, headers=admin)).json()["secret"]
    page = console_page
    await login(page, g, "op-duty")
    assert await page.locator(".tile").count() == 0
    await page.wait_for_timeout(300)  # the console's event stream is connected
    t0 = time.monotonic()
    r = await g.client.post(
        "/api/alarms", **signed(secret, {"alarm_id": "P-1", "type": "panic", "vehicle_id": "bus-9"})
    )
    assert r.status_code == 202, r.text
    result = await playing(page, "bus-9-front")
    assert result["width"] == 1280 and result["frames"] >= 20, result
    await expect(page.locator("#alarm-banner")).to_contain_text(r.json()["incident_id"])
    print(f"alarm POST -> playing bus camera in Chromium: {time.monotonic() - t0:.2f} s (camera not pulled before)")


async def test_a_stream_that_ends_by_itself_comes_back_without_a_click(
    web_gateway: tuple[LiveGateway, Any], console_page: Any
) -> None:
    """What a viewer of a dead gateway node sees: the session vanishes, the camera is still theirs,
    and the tile reconnects by itself (here the session is ended on the server, not the permission)."""
    g, admin = web_gateway
    page = console_page
    await login(page, g, "admin")
    await page.evaluate("location.hash = 'camera=cam-xz'")
    await playing(page, "cam-xz", frames=10)
    (first,) = (await g.client.get("/api/sessions", headers=admin)).json()
    # Every state the tile passes through (the "reconnecting" one lasts only the first retry's
    # 0.25 s, too short to be sure a poll sees it on a loaded machine).
    await page.evaluate(
        """() => {
        const tile = document.querySelector(".tile[data-camera='cam-xz']");
        window.tileStates = [];
        new MutationObserver(() => window.tileStates.push(tile.dataset.state)).observe(tile, {
          attributes: true, attributeFilter: ["data-state"],
        });
      }"""
    )
    r = await g.client.delete(f"/api/sessions/{first['id']}", headers=admin)
    assert r.status_code == 200
    tile = page.locator(".tile[data-camera='cam-xz']")
    await page.wait_for_function("() => window.tileStates.includes('reconnecting')", timeout=15000)
    await page.wait_for_function(
        "() => window.tileStates.lastIndexOf('playing') > window.tileStates.indexOf('reconnecting')", timeout=20000
    )
    await expect(tile).to_have_attribute("data-state", "playing", timeout=5000)
    (again,) = (await g.client.get("/api/sessions", headers=admin)).json()
    assert again["id"] != first["id"] and again["camera_id"] == "cam-xz"
    await tile.locator(".tile-close").click()
    await wait_sessions(g, admin, [])
