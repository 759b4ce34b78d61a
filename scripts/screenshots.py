"""Take the console screenshots in docs/ (run: python scripts/screenshots.py).

Starts the fixture cameras and an in-process gateway with a few sample cameras, logs in with
Debian's Chromium, opens four live tiles and saves ``docs/console.png``; then sets up a small
organisation and saves the security-admin console previewing a grant as ``docs/admin.png``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from acl.models import Role  # noqa: E402
from fixtures.camera_server import FixtureCameraServer  # noqa: E402
from gateway.settings import load_settings  # noqa: E402
from tests.live import PASSWORD, live_gateway  # noqa: E402
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402


async def main() -> None:
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as tmp, FixtureCameraServer(mounts=("h264", "h264_360p")) as cams:
        async with live_gateway(load_settings(None, data_dir=Path(tmp) / "d")) as g:
            admin = await g.add_user("admin", Role.admin)
            names = [
                ("qb-1", "七宝老街东口", "七宝镇"),
                ("qb-2", "七宝地铁站", "七宝镇"),
                ("xz-1", "莘庄广场", "莘庄镇"),
                ("ml-1", "梅陇路口", "梅陇镇"),
                ("hq-1", "虹桥镇中心", "虹桥镇"),
            ]
            for i, (cid, name, area) in enumerate(names):
                await g.add_camera(admin, cid, cams.url("h264" if i % 2 == 0 else "h264_360p"), name=name, area=area)
            async with async_playwright() as p:
                ctx = await p.chromium.launch_persistent_context(
                    str(Path(tmp) / "profile"),
                    executable_path=CHROMIUM,
                    args=CHROMIUM_ARGS,
                    headless=True,
                    viewport={"width": 1400, "height": 820},
                )
                page = await ctx.new_page()
                await page.goto(g.base_url + "/")
                await page.fill("#username", "admin")
                await page.fill("#password", PASSWORD)
                await page.click("#login-form button[type=submit]")
                await page.wait_for_selector("#camera-list li")
                for cid, *_ in names[:4]:
                    await page.click(f"#camera-list li[data-camera='{cid}']")
                await page.wait_for_timeout(5000)
                out = ROOT / "docs" / "console.png"
                await page.screenshot(path=str(out))
                print(f"wrote {out}")
                await admin_screenshot(g, admin, ctx)
                await ctx.close()


async def admin_screenshot(g: Any, admin: dict[str, str], ctx: Any) -> None:
    """The rules page of the admin console with the preview of a grant open."""
    for dept, name, level, area in [
        ("district", "区联动中心", "district", None),
        ("qibao", "七宝镇分中心", "subdistrict", "七宝镇"),
        ("city", "城管", "department", None),
        ("police", "公安", "department", None),
    ]:
        body = {"name": name, "level": level, "area": area, "reason": "组织架构初始化"}
        await g.client.put(f"/api/admin/departments/{dept}", json=body, headers=admin)
    for i, dept in enumerate(["city", "city", "city", "police", "qibao"]):
        r = await g.client.post(
            "/api/admin/users", json={"username": f"op-{dept}-{i}", "password": PASSWORD}, headers=admin
        )
        await g.client.put(f"/api/admin/users/{r.json()['id']}/memberships/{dept}", json={}, headers=admin)
    await g.client.put(
        "/api/admin/groups/qibao-all", json={"name": "七宝镇全部", "filter": {"area": ["七宝镇"]}}, headers=admin
    )
    for sub, target, action in [
        ("dept:police", "group:qibao-all", "view_live"),
        ("dept:qibao", "group:qibao-all", "view_live"),
        ("dept:city", "cam:xz-1", "view_snapshot"),
    ]:
        body = {"subject": sub, "target": target, "action": action, "reason": "值班需要"}
        await g.client.post("/api/admin/rules", json=body, headers=admin)
    await g.add_user("sec", Role.security_admin)
    await ctx.clear_cookies()  # log in afresh as the security admin
    page = await ctx.new_page()
    await page.goto(g.base_url + "/admin")
    await page.fill("#username", "sec")
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("body[data-loaded='1']")
    await page.click("#tabs button[data-tab='rules']")
    await page.fill("#rule-form [name=subject]", "dept:city")
    await page.fill("#rule-form [name=target]", "group:qibao-all")
    await page.fill("#rule-form [name=reason]", "城管夜间巡查七宝镇")
    await page.click("#rule-form button[type=submit]")
    await page.wait_for_selector("#preview:not([hidden])")
    out = ROOT / "docs" / "admin.png"
    await page.screenshot(path=str(out))
    print(f"wrote {out}")


if __name__ == "__main__":
    asyncio.run(main())
