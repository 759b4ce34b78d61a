"""Logging in and out of the console in Chromium, and a login that ends while cameras play."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import expect

from tests.live import LiveGateway
from tests.web.helpers import login, playing

pytestmark = [pytest.mark.browser, pytest.mark.media]


async def test_views_switch_on_login_and_logout(web_gateway: tuple[LiveGateway, Any], console_page: Any) -> None:
    g, admin = web_gateway
    page = console_page
    await page.goto(g.base_url + "/")
    await expect(page.locator("#login-view")).to_be_visible()
    await expect(page.locator("#console")).to_be_hidden()
    await page.fill("#username", "admin")
    await page.fill("#password", "wrong password")
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#login-error")).to_have_text("用户名或密码错误")
    await expect(page.locator("#console")).to_be_hidden()
    await login(page, g, "admin")
    await expect(page.locator("#login-view")).to_be_hidden()
    assert await page.input_value("#password") == ""  # not left in the page
    cookies = {c["name"]: c for c in await page.context.cookies()}
    assert cookies["liandong_session"]["httpOnly"] and not cookies["liandong_csrf"]["httpOnly"]
    await page.click("#camera-list li[data-camera='cam-qb']")
    assert (await playing(page, "cam-qb"))["frames"] >= 20
    # Logging out closes every tile (ending its session) and forgets the list.
    await page.click("#logout")
    await expect(page.locator("#login-view")).to_be_visible()
    await expect(page.locator("#console")).to_be_hidden()
    await expect(page.locator(".tile")).to_have_count(0)
    await expect(page.locator("#camera-list li")).to_have_count(0)
    async with asyncio.timeout(5):
        while (await g.client.get("/api/sessions", headers=admin)).json():
            await asyncio.sleep(0.1)
    # A reload stays logged out: the session cookie is gone on the server too.
    await page.reload()
    await expect(page.locator("#login-view")).to_be_visible()


async def test_a_login_ended_elsewhere_returns_to_the_login_form(
    web_gateway: tuple[LiveGateway, Any], console_page: Any
) -> None:
    g, admin = web_gateway
    page = console_page
    await login(page, g, "admin")  # the admin plays a camera, then a security admin ends that login
    await page.click("#camera-list li[data-camera='cam-xz']")
    assert (await playing(page, "cam-xz"))["frames"] >= 20
    tokens = (await g.client.get("/api/auth/tokens?all_users=true", headers=admin)).json()
    browser_login = max((t for t in tokens if t["kind"] == "session" and not t["revoked"]), key=lambda t: t["id"])
    r = await g.client.delete(f"/api/auth/tokens/{browser_login['id']}", headers=admin)
    assert r.status_code == 200, r.text
    await expect(page.locator("#login-view")).to_be_visible(timeout=15_000)
    await expect(page.locator("#login-error")).to_have_text("登录已失效，请重新登录")
    await expect(page.locator(".tile")).to_have_count(0)
