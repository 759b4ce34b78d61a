"""The console map with a tile server configured: tiles come from its origin, which the page's CSP
allows (and only for images)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect

from tests.live import LiveGateway
from tests.web.helpers import login
from tests.web.test_console_views import MAP_SETTINGS

pytestmark = [pytest.mark.browser, pytest.mark.media]


@pytest.fixture
def tile_server() -> Any:
    """A tile server on another loopback origin (as a control room's own would be): dark PNG tiles,
    and the paths it was asked for."""
    import http.server
    import threading

    import cv2
    import numpy as np

    ok, png = cv2.imencode(".png", np.full((256, 256, 3), 40, np.uint8))
    assert ok
    body = png.tobytes()
    asked: list[str] = []

    class Tiles(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", asked
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def gateway_overrides(tile_server: Any) -> dict[str, Any]:
    return {**MAP_SETTINGS, "console": {"map_tile_url": tile_server[0] + "/tiles/{z}/{x}/{y}.png"}}


async def test_map_loads_tiles_from_the_configured_server_within_the_csp(
    web_gateway: tuple[LiveGateway, Any], console_page: Any, tile_server: Any
) -> None:
    g, _admin = web_gateway
    _origin, asked = tile_server
    page = console_page  # fails the test on any CSP violation
    await login(page, g, "admin")
    await page.click("#views button[data-view='map']")
    await expect(page.locator("#map")).to_have_attribute("data-boundary", "1")
    await expect(page.locator("#map .leaflet-tile-loaded").first).to_be_visible()
    assert asked and all(re.fullmatch(r"/tiles/\d+/\d+/\d+\.png", p) for p in asked), asked
    await expect(page.locator("#map")).not_to_have_class(re.compile(r"\bno-tiles\b"))
    await expect(page.locator("#map-note")).to_have_text("")
