"""Browser tests: Debian's Chromium driven by playwright, against a live gateway and fixture cameras."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.camera_server import FixtureCameraServer
from gateway.settings import load_settings
from tests.live import LiveGateway, live_gateway

CHROMIUM = "/usr/bin/chromium"
# No mDNS, no background traffic, loopback WebRTC only (see ../shared/notes/stack-facts.md).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


@pytest.fixture(scope="module")
def web_cams() -> Iterator[FixtureCameraServer]:
    with FixtureCameraServer(mounts=("h264", "h265", "h264_360p")) as srv:
        yield srv


@pytest.fixture
async def web_gateway(tmp_path: Path, web_cams: FixtureCameraServer) -> AsyncIterator[tuple[LiveGateway, Any]]:
    settings = load_settings(None, data_dir=tmp_path / "data", hub={"idle_close_s": 2.0})
    async with live_gateway(settings) as g:
        from acl.models import Role

        admin = await g.add_user("admin", Role.admin)
        await g.add_camera(admin, "cam-qb", web_cams.url("h264", "u:secret-pw"), name="七宝老街", area="七宝镇")
        await g.add_camera(admin, "cam-xz", web_cams.url("h264_360p"), name="莘庄广场", area="莘庄镇")
        await g.add_camera(admin, "cam-265", web_cams.url("h265"), name="H265 路口", area="七宝镇")
        yield g, admin


@pytest.fixture
async def chromium(tmp_path: Path) -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is not installed (make test installs it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        ctx = await p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield ctx
        finally:
            await ctx.close()
