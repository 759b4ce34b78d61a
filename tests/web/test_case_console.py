"""Cases in the console, in a real Chromium against a live gateway (issue 18): a hotline call-taker
enters a case through the form and dispatches it to a neighbourhood station; the station's operator,
already at the console, gets it live with its nearby camera playing; the dashboard's case statistics
(ECharts) show it; the month's XLSX downloaded from the dashboard opens in openpyxl."""

from __future__ import annotations

import datetime as dt
import io
import zoneinfo
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from playwright.async_api import expect

from tests.live import LiveGateway
from tests.web.conftest import chromium_context
from tests.web.helpers import add_operator, login, playing, user_id

pytestmark = [pytest.mark.browser, pytest.mark.media]

ORG = {
    "district": {"name": "区联动中心", "level": "district"},
    "qibao": {"name": "七宝镇分中心", "level": "subdistrict", "area": "七宝镇", "parent_id": "district"},
    "qb-xz": {"name": "新镇居委", "level": "station", "area": "七宝镇", "parent_id": "qibao"},
}


async def member(g: LiveGateway, admin: dict[str, str], name: str, unit: str) -> None:
    """An operator of ``unit``, created through the admin API."""
    await add_operator(g, admin, name)
    uid = await user_id(g, admin, name)
    r = await g.client.put(f"/api/admin/users/{uid}/memberships/{unit}", json={}, headers=admin)
    assert r.status_code == 200, r.text


async def test_a_call_takers_case_reaches_the_station_live_and_the_dashboard(
    web_gateway: tuple[LiveGateway, Any], console_page: Any, web_cams: Any, tmp_path: Path
) -> None:
    g, admin = web_gateway
    for unit, body in ORG.items():
        r = await g.client.put(f"/api/admin/departments/{unit}", json=body, headers=admin)
        assert r.status_code == 200, r.text
    # A fixed camera at the place of the case; nobody at the station may view it before the dispatch.
    await g.add_camera(
        admin, "cam-near", web_cams.url("h264_360p"), name="富强街路口", area="七宝镇", lat=31.1551, lon=121.3501
    )
    await member(g, admin, "ct", "district")
    await member(g, admin, "st-op", "qb-xz")

    async with chromium_context(tmp_path / "station-profile", 1400, 820) as station_ctx:
        station = await station_ctx.new_page()
        problems: list[str] = []
        station.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
        await login(station, g, "st-op")
        await expect(station.locator("#incident-list .inc-empty")).to_be_visible()
        await expect(station.locator("#case-new")).to_be_hidden()  # a station does not take calls
        await station.wait_for_function("() => document.querySelector('#incident-list') !== null")

        # The call-taker enters the case through the form and dispatches it to the station at once.
        page = console_page
        await login(page, g, "ct")
        await page.click("#case-new")
        form = page.locator("#case-form")
        await form.locator("[name=category]").fill("road")
        await form.locator("[name=address]").fill("七宝镇富强街12号 新镇居委门口")
        await form.locator("[name=lat]").fill("31.1552")
        await form.locator("[name=lon]").fill("121.3502")
        await form.locator("[name=reporter_name]").fill("张三丰")
        await form.locator("[name=reporter_phone]").fill("13812345678")
        await form.locator("[name=text]").fill("路面塌陷，约一米见方")
        await form.locator("[name=dispatch_to]").select_option("qb-xz")
        # A bad phone number: the gateway's refusal names the field, nothing is created.
        await form.locator("[name=reporter_phone]").fill("call me")
        await form.locator("button.case-submit").click()
        await expect(form.locator(".case-error")).to_contain_text("reporter_phone")
        await form.locator("[name=reporter_phone]").fill("13812345678")
        await form.locator("button.case-submit").click()
        done = form.locator(".case-done")
        await expect(done).to_contain_text("已派遣至 新镇居委", timeout=10_000)
        cid = await done.get_attribute("data-incident")
        assert cid and cid.startswith("CASE-")
        case = (await g.client.get(f"/api/incidents/{cid}", headers=admin)).json()
        assert (case["area"], case["station"], case["dispatched_to"], case["origin"]) == (
            "七宝镇",
            "qb-xz",
            "qb-xz",
            "hotline",
        )
        assert case["reporter"] == {"name": "张**", "phone": "138****5678"}
        await expect(page.locator(f"#incident-list .inc[data-incident='{cid}']")).to_be_visible()

        # The station's console hears it live: banner, the case in its panel, the camera playing.
        await expect(station.locator("#alarm-banner")).to_contain_text(cid, timeout=10_000)
        item = station.locator(f"#incident-list .inc[data-incident='{cid}']")
        await expect(item).to_have_attribute("data-state", "dispatched")
        tile = station.locator(".tile[data-camera='cam-near']")
        await expect(tile).to_have_attribute("data-incident", cid)
        await expect(tile).to_have_attribute("data-state", "playing", timeout=20_000)
        seen = await playing(station, "cam-near", frames=10)
        assert seen["width"] > 0 and seen["frames"] >= 10, seen
        assert not problems, problems

    # The call-taker's dashboard: this month's statistics by sub-district, drawn by ECharts.
    await page.click("#views button[data-view='dashboard']")
    month = dt.datetime.now(zoneinfo.ZoneInfo(g.ld.settings.alarms.timezone)).strftime("%Y-%m")
    await page.fill("#case-month", month)
    row = page.locator("#case-stats tr[data-unit='七宝镇']")
    await expect(row.locator("[data-col='received']")).to_have_text("1", timeout=10_000)
    await expect(row.locator("[data-col='dispatched']")).to_have_text("1")
    await expect(row.locator("[data-col='overdue']")).to_have_text("0")
    await expect(page.locator("#case-chart")).to_have_attribute("data-units", "1")
    drawn = await page.evaluate(
        """() => { const c = document.querySelector('#case-chart canvas');
                   return c ? [c.width, c.height] : [0, 0]; }"""
    )
    assert drawn[0] > 100 and drawn[1] > 100, drawn
    # The month's export: an XLSX that openpyxl reads back with the same numbers.
    async with page.expect_download() as info:
        await page.click("#case-export-xlsx")
    download = await info.value
    wb = load_workbook(io.BytesIO(Path(await download.path()).read_bytes()))
    rows = [[c.value for c in r] for r in wb.worksheets[0].iter_rows()]
    header = rows[0]
    line = next(r for r in rows[1:] if "七宝镇" in [str(v) for v in r])
    assert line[header.index("受理")] == 1 and line[header.index("派遣")] == 1, rows
