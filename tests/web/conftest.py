"""Browser tests: Debian's Chromium driven by playwright, against a live gateway and fixture cameras.

Reusable pieces for any browser test: ``chromium`` (a fresh browser profile), ``console_page`` (a
page that fails the test on an uncaught script error or a Content-Security-Policy violation),
``web_gateway`` (a live gateway with three fixture cameras and an admin), ``chromium_context`` (one
more browser, e.g. a second user's); helpers in ``helpers.py``.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.camera_server import FixtureCameraServer
from tests.live import LiveGateway, gateway_with

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
    """Fixture cameras: 720p and 360p H.264, and H.265 (which browsers cannot play)."""
    with FixtureCameraServer(mounts=("h264", "h265", "h264_360p")) as srv:
        yield srv


@pytest.fixture
def gateway_overrides() -> dict[str, Any]:
    """Settings sections for ``web_gateway`` (override with ``@pytest.mark.parametrize("gateway_overrides", ...)``)."""
    return {}


@pytest.fixture
async def web_gateway(
    tmp_path: Path, web_cams: FixtureCameraServer, gateway_overrides: dict[str, Any]
) -> AsyncIterator[tuple[LiveGateway, Any]]:
    """A live gateway with an admin (bearer headers returned) and cameras cam-qb, cam-xz, cam-265."""
    overrides = {"hub": {"idle_close_s": 2.0}, **gateway_overrides}
    async with gateway_with(tmp_path / "data", {}, **overrides) as (g, admin):
        await g.add_camera(
            admin, "cam-qb", web_cams.url("h264", "u:secret-pw"), name="七宝老街", area="七宝镇", department="police"
        )
        await g.add_camera(
            admin, "cam-xz", web_cams.url("h264_360p"), name="莘庄广场", area="莘庄镇", department="city"
        )
        await g.add_camera(admin, "cam-265", web_cams.url("h265"), name="H265 路口", area="七宝镇", department="police")
        yield g, admin


@contextlib.asynccontextmanager
async def chromium_context(profile: Path, width: int, height: int) -> AsyncIterator[Any]:
    """A Chromium context with its own profile (and so its own cookies), closed when the block ends
    whatever happens."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        ctx = await p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": width, "height": height},
        )
        try:
            yield ctx
        finally:
            await ctx.close()


@pytest.fixture
async def chromium(tmp_path: Path) -> AsyncIterator[Any]:
    """A Chromium context with a fresh profile, closed after the test whatever happens."""
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is not installed (make test installs it)")
    async with chromium_context(tmp_path / "chromium-profile", 1400, 820) as ctx:
        yield ctx


@pytest.fixture
async def console_page(chromium: Any) -> AsyncIterator[Any]:
    """A page that records uncaught script errors and CSP violations; the test fails if any occurred."""
    page = await chromium.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
    page.on(
        "console",
        lambda m: problems.append(f"console: {m.text}") if "Content Security Policy" in m.text else None,
    )
    yield page
    assert not problems, problems
