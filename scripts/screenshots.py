"""Take the console screenshots in docs/ (run: python scripts/screenshots.py).

Starts the fixture cameras, loads the district-scale sample that ``make demo`` serves
(:func:`fixtures.demo.load_district`: 6,945 cameras, 1,102 buses and trucks, 52 departments, the
demo's logins and grants), starts an in-process gateway on it with the district boundary, feeds a
position for every vehicle, raises a panic alarm on a bus and adds a few older incidents, then
logs in as the demo ``admin`` with Debian's Chromium and saves:

- ``docs/console.png``: the camera wall (the alarm's cameras opened by themselves) and the alarm panel;
- ``docs/map.png``: the map with the boundary, cameras, vehicles and the incident, without tiles;
- ``docs/alarms.png``: an incident opened in the alarm panel, with its deadline and history;
- ``docs/dashboard.png``: the dashboard;
- ``docs/admin.png``: the security-admin console previewing a grant.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from acl.models import Role  # noqa: E402
from fixtures.camera_server import FixtureCameraServer  # noqa: E402
from fixtures.demo import DEMO_USERS, load_district, replay_plan  # noqa: E402
from fixtures.district_sample import generate_district  # noqa: E402
from gateway.alarms.models import Incident  # noqa: E402
from gateway.settings import load_settings  # noqa: E402
from storage.db import utcnow  # noqa: E402
from tests.gateway.test_alarms import signed  # noqa: E402
from tests.live import PASSWORD, LiveGateway, live_gateway  # noqa: E402
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

DOCS = ROOT / "docs"
ADMIN_PW = next(pw for name, pw, *_ in DEMO_USERS if name == "admin")
ALARM_BUS = "bus-001"


async def seed(g: LiveGateway, admin: dict[str, str]) -> str:
    """Positions, camera states, older incidents on the loaded district; returns an alarm source's secret."""
    ld = g.ld
    sample = generate_district()
    fixed = [c for c in sample.cameras if c["kind"] == "fixed"]
    for c in fixed[5:600:9]:
        await ld.store.set_status(c["id"], "offline")
    for c in fixed[:600:2]:
        await ld.store.set_status(c["id"], "online")
    # Every vehicle somewhere on its demo route, ALARM_BUS where its recorded trace starts.
    feed = await g.add_user("feed", Role.integration)
    now = time.time()
    plan = replay_plan(sample.vehicles, (ALARM_BUS, "truck-681"))
    fixes = [{"vehicle_id": vid, "lat": r[0][0], "lon": r[0][1], "time": now} for vid, r in plan.items()]
    r = await g.client.post("/api/vehicles/positions", json=fixes, headers=feed)
    r.raise_for_status()
    # Older incidents for the panel and the dashboard.
    areas = ["七宝镇", "莘庄镇", "梅陇镇", "虹桥镇", "浦江镇", "颛桥镇"]
    states = ["closed", "closed", "resolved", "on_site", "acknowledged", "dispatched", "closed", "dispatched"]
    depts = ["police", "transport", "city_management", "police"]
    t0 = utcnow()
    async with ld.db.session() as s:
        for i in range(22):
            state = states[i % len(states)]
            created = t0 - dt.timedelta(hours=2 + i * 3)
            s.add(
                Incident(
                    id=f"INC-{created:%Y%m%d}-{0xA100 + i:X}",
                    type="panic",
                    state=state,
                    area=areas[i % len(areas)],
                    departments=["police"],
                    dispatched_to=depts[i % len(depts)],
                    onsite_deadline=created + dt.timedelta(hours=3),
                    resolve_deadline=created + dt.timedelta(hours=168),
                    history=[{"at": created.isoformat(), "by": "source:bus-gps", "action": "opened"}],
                    text="乘客求助" if i % 3 else "",
                    created_at=created,
                    effects_applied=True,
                    overdue_announced=[],
                )
            )
    secret = (await g.client.post("/api/admin/alarm-sources", json={"name": "bus-gps"}, headers=admin)).json()
    return str(secret["secret"])


async def shoot(g: LiveGateway, admin: dict[str, str], secret: str) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        ctx = await p.chromium.launch_persistent_context(
            str(Path(tempfile.mkdtemp()) / "profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1600, "height": 900},
        )
        page = await ctx.new_page()
        await page.goto(g.base_url + "/")
        await page.fill("#username", "admin")
        await page.fill("#password", ADMIN_PW)
        await page.click("#login-form button[type=submit]")
        await page.wait_for_selector("#camera-list li[data-camera]")
        await page.wait_for_timeout(500)
        alarm = {"alarm_id": "DEMO-1", "type": "panic", "vehicle_id": ALARM_BUS, "text": "驾驶员按下一键报警"}
        r = await g.client.post("/api/alarms", **signed(secret, alarm))
        r.raise_for_status()
        inc_id = r.json()["incident_id"]
        await page.wait_for_selector(f"#incident-list .inc[data-incident='{inc_id}']")
        await page.locator("#camera-list li[data-camera]").nth(4).click()  # one more camera beside the alarm's
        await page.wait_for_timeout(6000)
        await save(page, "console.png")

        item = page.locator(f"#incident-list .inc[data-incident='{inc_id}']")
        await item.locator(".inc-head").click()
        await item.locator("select.inc-dept").select_option("police")
        await item.locator("button[data-action='dispatch']").click()
        await page.wait_for_selector(f"#incident-list .inc[data-incident='{inc_id}'][data-state='dispatched']")
        await item.locator("textarea.inc-note").fill("已电话联系驾驶员，车辆停靠七宝站等待民警")
        await item.locator("button[data-action='note']").click()
        await page.wait_for_timeout(800)
        await save(page, "alarms.png")

        await page.click("#views button[data-view='map']")
        await page.wait_for_selector("#map[data-vehicles]")
        await page.wait_for_timeout(1500)
        await save(page, "map.png")

        await page.click("#views button[data-view='dashboard']")
        await page.wait_for_selector("#dashboard .kpi")
        await page.wait_for_timeout(500)
        await save(page, "dashboard.png")
        await admin_screenshot(g, admin, ctx)
        await ctx.close()


async def admin_screenshot(g: Any, admin: dict[str, str], ctx: Any) -> None:
    """The rules page of the admin console with the preview of a grant open."""
    for i, dept in enumerate(["city_management", "city_management", "city_management", "police", "qibao"]):
        r = await g.client.post(
            "/api/admin/users", json={"username": f"op-{dept}-{i}", "password": PASSWORD}, headers=admin
        )
        await g.client.put(f"/api/admin/users/{r.json()['id']}/memberships/{dept}", json={}, headers=admin)
    await g.add_user("sec", Role.security_admin)
    await ctx.clear_cookies()  # log in afresh as the security admin
    page = await ctx.new_page()
    await page.goto(g.base_url + "/admin")
    await page.fill("#username", "sec")
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("body[data-loaded='1']")
    await page.click("#tabs button[data-tab='rules']")
    await page.fill("#rule-form [name=subject]", "dept:city_management")
    await page.fill("#rule-form [name=target]", "group:area-qibao")
    await page.fill("#rule-form [name=reason]", "城管夜间巡查七宝镇")
    await page.click("#rule-form button[type=submit]")
    await page.wait_for_selector("#preview:not([hidden])")
    out = ROOT / "docs" / "admin.png"
    await page.screenshot(path=str(out))
    print(f"wrote {out}")


async def save(page: Any, name: str) -> None:
    out = DOCS / name
    await page.screenshot(path=str(out))
    print(f"wrote {out}")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, FixtureCameraServer() as cams:
        settings = load_settings(
            None, data_dir=Path(tmp) / "d", acl={"district_geojson": ROOT / "fixtures" / "district.geojson"}
        )
        took = await load_district(settings.database_url, settings.data_dir, cams.port)
        print(f"district sample loaded in {took['total']:.1f} s")
        async with live_gateway(settings) as g:
            r = await g.client.post("/api/auth/token", data={"username": "admin", "password": ADMIN_PW})
            r.raise_for_status()
            admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
            secret = await seed(g, admin)
            await shoot(g, admin, secret)


if __name__ == "__main__":
    asyncio.run(main())
