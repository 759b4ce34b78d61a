"""The operator page in a real Chromium: log in, see only permitted cameras, click, play, refusal."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.async_api import expect

from tests.live import PASSWORD, LiveGateway

pytestmark = [pytest.mark.browser, pytest.mark.media]

PLAYING_JS = """async (sel) => {
  const v = document.querySelector(sel);
  const deadline = Date.now() + 8000;
  while (Date.now() < deadline && !(v && v.videoWidth > 0)) {
    await new Promise(r => setTimeout(r, 50));
  }
  if (!v || v.videoWidth === 0) return {width: 0, frames: 0};
  let frames = 0;
  await new Promise(resolve => {
    const tick = () => { frames++; if (frames >= 20) resolve(); else v.requestVideoFrameCallback(tick); };
    v.requestVideoFrameCallback(tick);
    setTimeout(resolve, 5000);
  });
  return {width: v.videoWidth, height: v.videoHeight, frames};
}"""


FIRST_FRAME_JS = """async (sel) => {
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    const v = document.querySelector(sel);
    if (v && v.videoWidth > 0) return true;
    await new Promise(r => setTimeout(r, 10));
  }
  return false;
}"""


async def login(page: Any, g: LiveGateway, user: str) -> None:
    await page.goto(g.base_url + "/")
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#console:not([hidden])")


async def grant(g: LiveGateway, admin: dict[str, str], user: str, dept: str, target: str) -> None:
    r = await g.client.put(f"/api/admin/departments/{dept}", json={"name": dept}, headers=admin)
    assert r.status_code in (200, 422), r.text
    uid = next(u["id"] for u in (await g.client.get("/api/admin/users", headers=admin)).json() if u["username"] == user)
    r = await g.client.put(f"/api/admin/users/{uid}/memberships/{dept}", json={}, headers=admin)
    assert r.status_code == 200, r.text
    r = await g.client.post(
        "/api/admin/rules", json={"subject": f"dept:{dept}", "target": target, "action": "view_live"}, headers=admin
    )
    assert r.status_code == 201, r.text


async def test_operator_sees_permitted_cameras_and_plays(web_gateway: tuple[LiveGateway, Any], chromium: Any) -> None:
    g, admin = web_gateway
    await g.add_user("op-qibao")
    await grant(g, admin, "op-qibao", "qibao", "cam:cam-qb")
    page = await chromium.new_page()
    await login(page, g, "op-qibao")
    await page.wait_for_selector("#camera-list li")
    ids = await page.eval_on_selector_all("#camera-list li", "els => els.map(e => e.dataset.camera)")
    assert ids == ["cam-qb"]  # only what the policy allows
    t0 = time.monotonic()
    await page.click("#camera-list li[data-camera='cam-qb']")
    result = await page.evaluate(PLAYING_JS, ".tile[data-camera='cam-qb'] video")
    elapsed = time.monotonic() - t0
    assert result["width"] == 1280 and result["height"] == 720, result
    assert result["frames"] >= 20, result
    print(f"click -> 20 frames rendered in {elapsed:.2f} s")
    assert "secret-pw" not in await page.content()
    sessions = (await g.client.get("/api/sessions", headers=admin)).json()
    assert [s["camera_id"] for s in sessions] == ["cam-qb"]
    # Closing the tile ends the session on the server.
    await page.click(".tile[data-camera='cam-qb'] .tile-close")
    for _ in range(50):
        if not (await g.client.get("/api/sessions", headers=admin)).json():
            break
        await page.wait_for_timeout(100)
    assert (await g.client.get("/api/sessions", headers=admin)).json() == []


async def test_refusal_and_h265_message(web_gateway: tuple[LiveGateway, Any], chromium: Any) -> None:
    g, admin = web_gateway
    await g.add_user("op-none")
    page = await chromium.new_page()
    await login(page, g, "op-none")
    # An alarm or a colleague's link opens a camera this operator may not view.
    await page.evaluate("location.hash = 'camera=cam-xz'")
    tile = page.locator(".tile[data-camera='cam-xz']")
    await expect(tile).to_have_attribute("data-state", "denied")
    assert "无权查看" in await tile.locator(".tile-msg").inner_text()
    denied = (await g.client.get("/api/audit?kind=denied", headers=admin)).json()
    assert any(d["camera_id"] == "cam-xz" and d["username"] == "op-none" for d in denied)
    # H.265 is refused with a clear reason (the transcoder issue will make it play).
    await page.evaluate("location.hash = 'camera=cam-265'")
    await expect(page.locator(".tile[data-camera='cam-265']")).to_have_attribute("data-state", "denied")


async def test_language_toggle_and_filter(web_gateway: tuple[LiveGateway, Any], chromium: Any) -> None:
    g, _admin = web_gateway
    page = await chromium.new_page()
    await page.goto(g.base_url + "/")
    assert await page.inner_text("#login-form h1") == "登录联动视频平台"
    await page.click("#lang")
    assert await page.inner_text("#login-form h1") == "Sign in to Liandong"
    await page.fill("#username", "admin")
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#camera-list li")
    assert "3 cameras you may view" in await page.inner_text("#count")
    await page.select_option("#f-area", "七宝镇")
    await expect(page.locator("#camera-list li")).to_have_count(2)
    await page.fill("#f-text", "老街")
    await expect(page.locator("#camera-list li")).to_have_count(1)
    # An admin opening the H.265 camera gets the codec message.
    await page.evaluate("location.hash = 'camera=cam-265'")
    await expect(page.locator(".tile[data-camera='cam-265']")).to_have_attribute("data-state", "codec")
    assert "H.265" in await page.inner_text(".tile[data-camera='cam-265'] .tile-msg")
    headers = (await g.client.get("/")).headers
    assert "script-src 'self'" in headers["content-security-policy"]


async def test_revocation_closes_tile_with_reason(web_gateway: tuple[LiveGateway, Any], chromium: Any) -> None:
    g, admin = web_gateway
    await g.add_user("op-rev")
    await grant(g, admin, "op-rev", "rev", "cam:cam-xz")
    page = await chromium.new_page()
    await login(page, g, "op-rev")
    await page.click("#camera-list li[data-camera='cam-xz']")
    result = await page.evaluate(PLAYING_JS, ".tile[data-camera='cam-xz'] video")
    assert result["width"] == 640, result
    rules = (await g.client.get("/api/admin/rules?subject=dept:rev", headers=admin)).json()
    r = await g.client.delete(f"/api/admin/rules/{rules[0]['id']}", headers=admin)
    assert r.status_code == 200
    tile = page.locator(".tile[data-camera='cam-xz']")
    await expect(tile).to_have_attribute("data-state", "revoked", timeout=15_000)
    assert "权限已被撤销" in await tile.locator(".tile-msg").inner_text()


async def test_alarm_opens_and_plays_bus_camera_without_a_click(
    web_gateway: tuple[LiveGateway, Any], chromium: Any, web_cams: Any
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
    await g.add_user("op-duty")
    users = (await g.client.get("/api/admin/users", headers=admin)).json()
    uid = next(u["id"] for u in users if u["username"] == "op-duty")
    await g.client.put(f"/api/admin/users/{uid}/memberships/police", json={}, headers=admin)
    secret = (await g.client.post("/api/admin/alarm-sources", json={"name": "bus-gps"}, headers=admin)).json()["secret"]
    page = await chromium.new_page()
    await login(page, g, "op-duty")
    assert await page.locator(".tile").count() == 0
    await page.wait_for_timeout(300)  # the console's event stream is connected
    t0 = time.monotonic()
    r = await g.client.post(
        "/api/alarms", **signed(secret, {"alarm_id": "P-1", "type": "panic", "vehicle_id": "bus-9"})
    )
    assert r.status_code == 202, r.text
    first = await page.evaluate(FIRST_FRAME_JS, ".tile[data-camera='bus-9-front'] video")
    first_s = time.monotonic() - t0
    assert first, "no frame from the bus camera"
    await expect(page.locator("#alarm-banner")).to_contain_text(r.json()["incident_id"])
    result = await page.evaluate(PLAYING_JS, ".tile[data-camera='bus-9-front'] video")
    assert result["width"] == 1280 and result["frames"] >= 20, result
    print(f"alarm POST -> first frame of the bus camera in Chromium: {first_s:.2f} s (camera not pulled before)")


async def test_camera_list_shows_live_thumbnails(web_gateway: tuple[LiveGateway, Any], chromium: Any) -> None:
    g, _admin = web_gateway
    page = await chromium.new_page()
    await page.goto(g.base_url + "/")
    await page.fill("#username", "admin")
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    thumb = page.locator("#camera-list li[data-camera='cam-xz'] img.thumb")
    await expect(thumb).to_have_attribute("src", re.compile(r"snapshot[.]jpg"))
    width = await page.evaluate(THUMB_JS, "#camera-list li[data-camera='cam-xz'] img.thumb")
    assert width == 160  # a real decoded JPEG from the camera, 160 px wide
    for _ in range(40):
        if "cam-xz" in g.ld.snapshots.watched():
            break
        await page.wait_for_timeout(100)
    assert "cam-xz" in g.ld.snapshots.watched()  # the console told the refresher what it shows


THUMB_JS = """async (sel) => {
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    const img = document.querySelector(sel);
    if (img && img.complete && img.naturalWidth > 0) return img.naturalWidth;
    await new Promise(r => setTimeout(r, 50));
  }
  return 0;
}"""


async def test_views_switch_on_login_and_logout(web_gateway: tuple[LiveGateway, Any], chromium: Any) -> None:
    g, _admin = web_gateway
    page = await chromium.new_page()
    await page.goto(g.base_url + "/")
    await expect(page.locator("#login-view")).to_be_visible()
    await expect(page.locator("#console")).to_be_hidden()
    await page.fill("#username", "admin")
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#console")).to_be_visible()
    await expect(page.locator("#login-view")).to_be_hidden()
    await page.click("#logout")
    await expect(page.locator("#login-view")).to_be_visible()
    await expect(page.locator("#console")).to_be_hidden()
