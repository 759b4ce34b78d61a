"""Playback in the console: Chromium shows a tile's recordings on a timeline, plays a recorded range
from the clicked moment (HLS VOD through hls.js) and seeks in it; "live" again resumes the live player."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from playwright.async_api import expect

from tests.live import LiveGateway
from tests.web.helpers import login, playing

pytestmark = [pytest.mark.browser, pytest.mark.media]
CAM = "cam-xz"

ADVANCING_JS = """async ([sel, frames]) => {
  const v = document.querySelector(sel);
  const t0 = v.currentTime;
  let n = 0;
  await new Promise((resolve, reject) => {
    const stop = setTimeout(() => reject(new Error(`${n} frames, time ${t0} -> ${v.currentTime}`)), 20000);
    const tick = () => {
      if (++n >= frames) { clearTimeout(stop); resolve(); } else v.requestVideoFrameCallback(tick);
    };
    v.requestVideoFrameCallback(tick);
  });
  return { width: v.videoWidth, from: t0, to: v.currentTime };
}"""


@pytest.fixture
def gateway_overrides() -> dict[str, Any]:
    return {"recording": {"segment_s": 2, "min_free_mb": 0, "retry_s": 0.3}}


async def test_console_plays_back_a_recorded_range_and_seeks(
    web_gateway: tuple[LiveGateway, Any], console_page: Any
) -> None:
    g, admin = web_gateway
    r = await g.client.post(f"/api/cameras/{CAM}/recordings/manual", json={"seconds": 600}, headers=admin)
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 60
    while len((await g.client.get(f"/api/cameras/{CAM}/recordings", headers=admin)).json()["segments"]) < 3:
        assert time.monotonic() < deadline, "no recording"
        await asyncio.sleep(0.3)
    assert (await g.client.delete(f"/api/cameras/{CAM}/recordings/manual", headers=admin)).status_code == 204

    page = console_page
    await login(page, g, "admin")
    await page.evaluate(f"location.hash = 'camera={CAM}'")
    assert (await playing(page, CAM, frames=5))["frames"] >= 5
    tile = page.locator(f".tile[data-camera='{CAM}']")
    await tile.locator(".tile-rec").click()
    await expect(tile).to_have_attribute("data-recordings", "1")
    # Click at the start of the recorded range on the timeline: playback from there.
    box = await tile.locator(".timeline-range").bounding_box()
    assert box is not None
    await page.mouse.click(box["x"] + 1, box["y"] + box["height"] / 2)
    await expect(tile).to_have_attribute("data-mode", "playback")
    video = f".tile[data-camera='{CAM}'] video"
    got = await page.evaluate(ADVANCING_JS, [video, 10])
    assert got["width"] == 640 and got["to"] > got["from"], got
    # Seek within the recorded range (exact: fMP4 with a keyframe at every segment's start).
    target = 3.0
    await page.evaluate(
        """async ([sel, t]) => { const v = document.querySelector(sel); await new Promise((res) => {
             v.addEventListener('seeked', res, { once: true }); v.currentTime = t; }); }""",
        [video, target],
    )
    got = await page.evaluate(ADVANCING_JS, [video, 5])
    assert target - 0.5 <= got["from"] <= target + 2.0 and got["to"] > got["from"], got
    # Back to live.
    await tile.locator(".tile-rec").click()
    await expect(tile).not_to_have_attribute("data-mode", "playback")
    assert (await playing(page, CAM, frames=5))["frames"] >= 5
    audit = (await g.client.get("/api/audit?kind=recording.playback", headers=admin)).json()
    assert any(a["camera_id"] == CAM and a["username"] == "admin" for a in audit)
