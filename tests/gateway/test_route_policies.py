"""Deny by default: every route declares exactly one policy, and non-public routes need credentials."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from gateway.app import create_app
from gateway.policy import POLICY_ATTR
from gateway.settings import load_settings
from tests.conftest import iter_routes


def policies(dependant: Any) -> list[str]:
    found = []
    call = getattr(dependant, "call", None)
    if call is not None and hasattr(call, POLICY_ATTR):
        found.append(getattr(call, POLICY_ATTR))
    for d in dependant.dependencies:
        found.extend(policies(d))
    return found


def test_every_route_declares_one_policy(tmp_path: Path) -> None:
    app = create_app(load_settings(None, data_dir=tmp_path))
    missing, several = [], []
    for route in iter_routes(app.routes):
        if isinstance(route, APIRoute):
            found = policies(route.dependant)
            if not found:
                missing.append(f"{sorted(route.methods)} {route.path}")
            elif len(found) > 1:
                several.append(f"{route.path}: {found}")
        elif route.path not in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"):
            missing.append(f"non-API route {route.path}")
    assert missing == [], f"routes without a declared policy: {missing}"
    assert sum(1 for r in iter_routes(app.routes) if isinstance(r, APIRoute)) > 40
    assert several == [], f"routes with several policies: {several}"


@pytest.fixture
async def client(tmp_path: Path) -> Any:
    app = create_app(load_settings(None, data_dir=tmp_path))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            c.app = app  # type: ignore[attr-defined]
            yield c


async def test_non_public_routes_answer_401_without_credentials(client: httpx.AsyncClient) -> None:
    checked = 0
    for route in iter_routes(client.app.routes):  # type: ignore[attr-defined]
        if not isinstance(route, APIRoute):
            continue
        if policies(route.dependant) == ["public"]:
            continue
        path = re.sub(r"\{[^}]+\}", "x1", route.path)
        for method in route.methods - {"HEAD"}:
            r = await client.request(method, path)
            assert r.status_code == 401, f"{method} {route.path} -> {r.status_code}"
            checked += 1
    assert checked > 30
