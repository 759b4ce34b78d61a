"""Console pages and their assets answer HEAD wherever they answer GET: the same status and headers
(the page's CSP included), no body."""

from __future__ import annotations

import httpx

PAGES = ["/", "/admin", "/docs", "/static/app.js", "/static/vehiclepanel.js", "/vendor/leaflet.css"]


async def test_head_answers_like_get(app_client: httpx.AsyncClient) -> None:
    # One app for every page (starting one costs seconds; the pages share nothing that could leak).
    for path in PAGES:
        got = await app_client.get(path)
        head = await app_client.head(path)
        assert got.status_code == head.status_code == 200, (path, got.status_code, head.status_code)
        assert head.content == b""
        for name in ("content-type", "content-security-policy", "content-length"):
            assert head.headers.get(name) == got.headers.get(name), (path, name)
    assert (await app_client.head("/static/nope.js")).status_code == 404
