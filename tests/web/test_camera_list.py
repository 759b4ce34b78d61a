"""The console's camera list in Chromium: filters, language, live thumbnails, thousands of cameras."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.async_api import expect

from tests.live import LiveGateway
from tests.web.helpers import add_many_cameras, login

pytestmark = [pytest.mark.browser, pytest.mark.media]

LIST_IDS_JS = "els => els.map(e => e.dataset.camera)"


async def test_language_toggle_and_filters(web_gateway: tuple[LiveGateway, Any], console_page: Any) -> None:
    g, _admin = web_gateway
    page = console_page
    await page.goto(g.base_url + "/")
    assert await page.get_attribute("html", "lang") == "zh-CN"
    assert await page.inner_text("#login-form h1") == "登录联动视频平台"
    await page.click("#lang")
    assert await page.inner_text("#login-form h1") == "Sign in to Liandong"
    assert await page.get_attribute("html", "lang") == "en"
    await login(page, g, "admin")  # the choice survives the reload (localStorage)
    assert await page.inner_text("#lang") == "中文"
    await expect(page.locator("#count")).to_have_text("3 cameras you may view")
    # The menus offer only what the user's cameras have, with counts.
    areas = await page.eval_on_selector_all("#f-area option", "os => os.map(o => o.textContent)")
    assert areas == ["All sub-districts", "七宝镇 (2)", "莘庄镇 (1)"]
    await page.select_option("#f-area", "七宝镇")
    await expect(page.locator("#camera-list li[data-camera]")).to_have_count(2)
    await expect(page.locator("#count")).to_have_text("2 match (of 3 you may view)")
    await page.fill("#f-text", "老街")
    await expect(page.locator("#camera-list li[data-camera]")).to_have_count(1)
    await page.fill("#f-text", "")
    await page.select_option("#f-area", "")
    await page.select_option("#f-dept", "city")
    await expect(page.locator("#camera-list li[data-camera]")).to_have_count(1)
    await expect(page.locator("#camera-list li[data-camera]")).to_have_attribute("data-camera", "cam-xz")
    await page.select_option("#f-dept", "")
    await page.select_option("#f-status", "offline")  # nothing probed offline yet
    await expect(page.locator("#camera-list li[data-camera]")).to_have_count(0)
    await expect(page.locator("#camera-list")).to_have_attribute("data-state", "empty")
    await page.select_option("#f-status", "")
    await page.select_option("#f-kind", "bus")
    await expect(page.locator("#camera-list li[data-camera]")).to_have_count(0)
    await page.select_option("#f-kind", "")
    await expect(page.locator("#camera-list li[data-camera]")).to_have_count(3)
    # Back to Chinese: rows, menus and the count follow.
    await page.click("#lang")
    await expect(page.locator("#count")).to_have_text("共 3 路可见摄像机")
    meta = await page.inner_text("#camera-list li[data-camera='cam-qb'] .cam-meta")
    assert meta == "cam-qb · 七宝镇 · 固定 · police"
    assert await page.inner_text("#f-kind option[value='bus']") == "公交"


async def test_camera_list_shows_live_thumbnails(web_gateway: tuple[LiveGateway, Any], console_page: Any) -> None:
    g, _admin = web_gateway
    page = console_page
    await login(page, g, "admin")
    width = await page.evaluate(THUMB_JS, "#camera-list li[data-camera='cam-xz'] img.thumb")
    assert width == 160  # a real decoded JPEG from the camera, 160 px wide
    assert (await page.get_attribute("#camera-list li[data-camera='cam-xz'] img.thumb", "src") or "").startswith(
        "blob:"
    )
    for _ in range(40):
        watched = {w.camera_id: w.widths for w in g.ld.snapshots.interest.watched()}
        if "cam-xz" in watched:
            break
        await page.wait_for_timeout(100)
    assert watched.get("cam-xz") == (160,)  # the console told the refresher what it shows, and at what width


THUMB_JS = """async (sel) => {
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    const img = document.querySelector(sel);
    if (img && img.src && img.complete && img.naturalWidth > 0) return img.naturalWidth;
    await new Promise(r => setTimeout(r, 50));
  }
  return 0;
}"""


@pytest.mark.parametrize("gateway_overrides", [{"webrtc": {"open_timeout_s": 2.0}}])
async def test_twenty_thousand_cameras_stay_a_few_dozen_rows(
    web_gateway: tuple[LiveGateway, Any], console_page: Any
) -> None:
    g, _admin = web_gateway
    # Cameras nobody can reach: the list must not wait for them (their thumbnails fail quietly).
    areas = [f"街镇{i:02d}" for i in range(13)]
    t0 = time.monotonic()
    ids = await add_many_cameras(g, 20_000, "rtsp://127.0.0.1:9/none", areas)
    print(f"20,000 cameras registered in {time.monotonic() - t0:.2f} s")
    page = console_page
    listed: list[str] = []
    page.on("request", lambda r: listed.append(r.url) if "/api/cameras?" in r.url else None)
    t0 = time.monotonic()
    await login(page, g, "admin")
    await expect(page.locator("#count")).to_have_text("共 20,003 路可见摄像机")
    await page.wait_for_selector(f"#camera-list li[data-camera='{ids[0]}']")
    print(f"login -> first rows of 20,003 cameras: {time.monotonic() - t0:.2f} s")
    rows = await page.locator("#camera-list li").count()
    assert 5 < rows < 40, rows  # only what is on screen, plus a few
    assert len(listed) == 1  # one page of 200 fetched, not 20,003 cameras
    # The thumbnail request found the camera offline: the row says so (no image, red frame, badge).
    first_row = page.locator(f"#camera-list li[data-camera='{ids[0]}']")
    await expect(first_row.locator(".badge")).to_have_text("离线")
    await expect(first_row.locator(".thumb")).to_have_class(re.compile(r"\boffline\b"))
    # Jump to the end: the last cameras appear, fetched by offset; the DOM stays small.
    t0 = time.monotonic()
    await page.eval_on_selector("#camera-scroll", "el => { el.scrollTop = el.scrollHeight; }")
    await page.wait_for_selector("#camera-list li[data-camera='cam-xz']")  # ids sort: bulk-*, then cam-*
    print(f"scroll to the end -> last rows shown: {time.monotonic() - t0:.2f} s")
    assert await page.locator("#camera-list li").count() < 40
    assert any("offset=20000" in u for u in listed), listed
    assert len(listed) <= 3, listed  # the first page, and the one or two at the end
    # The rows are positioned where the full list would put them, in order.
    shown = await page.eval_on_selector_all("#camera-list li[data-camera]", LIST_IDS_JS)
    assert shown == sorted(shown) and shown[-4:] == [ids[-1], "cam-265", "cam-qb", "cam-xz"], shown
    # A filter starts from the top, with the new total.
    await page.select_option("#f-area", "街镇05")
    await expect(page.locator("#count")).to_have_text("筛选出 1,539 路（共 20,003 路可见）")
    first = await page.eval_on_selector_all("#camera-list li[data-camera]", LIST_IDS_JS)
    assert first[0] == "bulk-00005"
    # Keyboard: Enter on a row opens it (an unreachable camera says so).
    await page.focus("#camera-list li[data-camera='bulk-00005']")
    await page.keyboard.press("Enter")
    await expect(page.locator(".tile[data-camera='bulk-00005']")).to_have_attribute("data-state", "unavailable")
