"""PTZ from the operator console in a real Chromium, against the fixture's ONVIF camera: the control
appears on a playing tile where the user may steer, holding an arrow moves the camera (its position
read back) and letting go stops it; a second operator of lower priority is refused with the
holder's unit named in Chinese. (View-only users are refused the GET the control is built from:
tests/gateway/ptz/test_ptz_api.py.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from camera_registry.ptz_endpoints import PtzEndpoints
from fixtures.onvif_camera import OnvifCamera
from tests.live import LiveGateway
from tests.web.conftest import chromium_context
from tests.web.helpers import add_operator, grant, login, playing

pytestmark = [pytest.mark.browser, pytest.mark.media]


async def steer(g: LiveGateway, admin: dict[str, str], dept: str, name: str, level: str) -> None:
    r = await g.client.put(f"/api/admin/departments/{dept}", json={"name": name, "level": level}, headers=admin)
    assert r.status_code == 200, r.text
    r = await g.client.post(
        "/api/admin/rules", json={"subject": f"dept:{dept}", "target": "cam:cam-qb", "action": "ptz"}, headers=admin
    )
    assert r.status_code == 201, r.text


# The holder's session outlasts the second browser's start on a loaded machine.
@pytest.mark.parametrize("gateway_overrides", [{"ptz": {"idle_release_s": 600}}])
async def test_operator_steers_from_the_tile_and_a_lower_priority_is_refused(
    web_gateway: tuple[LiveGateway, Any], console_page: Any, tmp_path: Path
) -> None:
    g, admin = web_gateway
    with OnvifCamera() as cam:
        ld = g.ld
        async with ld.db.session() as s:
            await PtzEndpoints(ld.db, ld.box, ld.store.networks).put(
                s, "cam-qb", driver="onvif", url=cam.url, profile="main", username="admin", password="onvif-pass"
            )
        for user, dept in [("op-qb", "qibao"), ("op-st", "jd-station")]:
            await add_operator(g, admin, user)
            await grant(g, admin, user, dept, "cam:cam-qb")
        await steer(g, admin, "qibao", "七宝镇分中心", "subdistrict")  # priority 50 by level
        await steer(g, admin, "jd-station", "九亭站", "station")  # 40

        page = console_page
        await login(page, g, "op-qb")
        await page.click("#camera-list li[data-camera='cam-qb']")
        await playing(page, "cam-qb", frames=5)
        right = page.locator(".tile[data-camera='cam-qb'] .ptz-right")
        await expect(right).to_be_visible(timeout=15000)
        await right.hover()
        await page.mouse.down()
        async with asyncio.timeout(15):
            while cam.position()[0] < 0.05:  # the head turns right while the arrow is held
                await asyncio.sleep(0.05)
        await page.mouse.up()
        async with asyncio.timeout(15):
            while cam.moving():
                await asyncio.sleep(0.05)
        assert "Stop" in cam.ops() and cam.position()[0] > 0.05

        async with chromium_context(tmp_path / "second-profile", 1200, 800) as ctx:
            other = await ctx.new_page()
            await login(other, g, "op-st")
            await other.click("#camera-list li[data-camera='cam-qb']")
            await playing(other, "cam-qb", frames=5)
            left = other.locator(".tile[data-camera='cam-qb'] .ptz-left")
            await expect(left).to_be_visible(timeout=15000)
            await left.hover()
            await other.mouse.down()
            await other.mouse.up()
            note = other.locator(".tile[data-camera='cam-qb'] .ptz-note")
            await expect(note).to_contain_text("云台正由七宝镇分中心控制", timeout=15000)
