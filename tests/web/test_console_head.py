"""Console pages and their assets answer HEAD wherever they answer GET: the same status and headers
(the page's CSP included), no body."""

from __future__ import annotations

import httpx
import pytest

PAGES = ["/", "/admin", "/docs", "/static/app.js", "/static/vehiclepanel.js", "/vendor/leaflet.css"]


@pytest.mark.parametrize("path", PAGES)
async def test_head_answers_like_get(app_client: httpx.AsyncClient, path: str) -> None:
    got = await app_client.get(path)
    head = await app_client.head(path)
    assert got.status_code == head.status_code == 200, (path, got.status_code, head.status_code)
    assert head.content == b""
    for name in ("content-type", "content-security-policy", "content-length"):
        assert head.headers.get(name) == got.headers.get(name), name


async def test_head_of_a_missing_asset_is_404(app_client: httpx.AsyncClient) -> None:
    assert (await app_client.head("/static/nope.js")).status_code == 404
