"""The API docs (issue 15, finding 9): Swagger UI from the gateway itself (npm ``swagger-ui-dist``),
under a CSP that allows no other origin and no inline script; ReDoc not served."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.policy import POLICY_ATTR
from gateway.settings import load_settings
from tests.conftest import iter_routes
from tests.live import live_gateway

URL_ATTR = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


async def test_docs_page_is_served_from_the_gateway_under_a_strict_csp(app_client: httpx.AsyncClient) -> None:
    r = await app_client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp and "http" not in csp and "*" not in csp  # no inline code, no other origin
    assert "<script>" not in r.text and "style=" not in r.text  # nothing inline
    assert not re.search(r"(?:https?:)?//", r.text), "the page names another origin"
    assets = URL_ATTR.findall(r.text)
    assert {"/vendor/swagger-ui/swagger-ui-bundle.js", "/static/docs.js", "/vendor/swagger-ui/swagger-ui.css"} <= set(
        assets
    )
    for path in assets:
        a = await app_client.get(path)
        assert a.status_code == 200 and len(a.content) > 100, path
        assert "cdn" not in a.headers.get("location", "")
    js = await app_client.get("/static/docs.js")
    assert js.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert "/openapi.json" in js.text and "validatorUrl: null" in js.text
    schema = (await app_client.get("/openapi.json")).json()
    assert "/api/cameras" in schema["paths"]
    assert (await app_client.get("/redoc")).status_code == 404
    assert (await app_client.get("/docs/oauth2-redirect")).status_code == 404


def test_docs_routes_declare_a_policy_like_every_other(tmp_path: Path) -> None:
    from gateway.wiring import create_app

    app = create_app(load_settings(None, data_dir=tmp_path))
    by_path = {getattr(r, "path", ""): r for r in iter_routes(app.routes)}
    for path in ("/docs", "/openapi.json"):
        deps = [getattr(d.call, POLICY_ATTR, None) for d in by_path[path].dependant.dependencies]
        assert deps == ["public"], (path, deps)
    framework = [r for r in iter_routes(app.routes) if "FastAPI.setup." in getattr(r.endpoint, "__qualname__", "")]
    assert framework == []  # FastAPI's CDN pages are off


@pytest.mark.browser
async def test_chromium_renders_the_docs_with_no_csp_violation_and_no_other_origin(
    tmp_path: Path, console_page: Any
) -> None:
    async with live_gateway(load_settings(None, data_dir=tmp_path / "data")) as g:
        requested: list[str] = []
        console_page.on("request", lambda req: requested.append(req.url))
        await console_page.goto(g.base_url + "/docs")
        await console_page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
        assert "Liandong" in await console_page.inner_text(".swagger-ui .info .title")
        await console_page.wait_for_function("document.querySelectorAll('.opblock').length > 20", timeout=15_000)
        await console_page.click(".opblock-summary")  # expand an operation: the UI runs, not just paints
        await console_page.wait_for_selector(".opblock-body", timeout=5_000)
        outside = [u for u in requested if not u.startswith((g.base_url + "/", "data:"))]
        assert outside == [], outside
