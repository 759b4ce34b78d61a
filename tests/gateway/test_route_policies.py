"""Deny by default: every route declares exactly one policy, and non-public routes need credentials."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute

from gateway.policy import POLICY_ATTR
from gateway.settings import load_settings
from gateway.wiring import create_app
from tests.conftest import iter_routes


def policies(dependant: Any) -> list[str]:
    found = []
    call = getattr(dependant, "call", None)
    if call is not None and hasattr(call, POLICY_ATTR):
        found.append(getattr(call, POLICY_ATTR))
    for d in dependant.dependencies:
        found.extend(policies(d))
    return found


def framework_docs(route: Any) -> bool:
    """FastAPI's own schema and documentation pages (public by design, no data behind them)."""
    return getattr(getattr(route, "endpoint", None), "__qualname__", "").startswith("FastAPI.setup.")


def route_problems(app: Any) -> tuple[list[str], list[str]]:
    """Routes with no policy, and routes with more than one."""
    missing, several = [], []
    for route in iter_routes(app.routes):
        if isinstance(route, APIRoute | APIWebSocketRoute):
            found = policies(route.dependant)
            if not found:
                missing.append(f"{sorted(getattr(route, 'methods', None) or ['WS'])} {route.path}")
            elif len(found) > 1:
                several.append(f"{route.path}: {found}")
        elif not framework_docs(route):
            # Mounts, plain Starlette routes and anything else cannot carry a policy: fail closed.
            missing.append(f"{type(route).__name__} {getattr(route, 'path', route)}")
    return missing, several


def test_every_route_declares_one_policy(tmp_path: Path) -> None:
    app = create_app(load_settings(None, data_dir=tmp_path))
    missing, several = route_problems(app)
    assert missing == [], f"routes without a declared policy: {missing}"
    assert several == [], f"routes with several policies: {several}"
    assert sum(1 for r in iter_routes(app.routes) if isinstance(r, APIRoute)) > 40


def test_the_walk_catches_unguarded_routes(tmp_path: Path) -> None:
    from fastapi import APIRouter
    from starlette.routing import Mount

    from gateway.policy import authenticated, public

    app = create_app(load_settings(None, data_dir=tmp_path))
    router = APIRouter(prefix="/api/extra")
    router.add_api_route("/open", lambda: {}, methods=["GET"])
    router.add_api_route("/twice", lambda: {}, methods=["POST"], dependencies=[public(), authenticated()])
    app.include_router(router)
    app.router.routes.append(Mount("/files", routes=[]))
    missing, several = route_problems(app)
    assert missing == ["['GET'] /api/extra/open", "Mount /files"]
    assert several == ["/api/extra/twice: ['public', 'authenticated']"]


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
        for method in (route.methods or set()) - {"HEAD"}:
            r = await client.request(method, path)
            assert r.status_code == 401, f"{method} {route.path} -> {r.status_code}"
            checked += 1
    assert checked > 30
