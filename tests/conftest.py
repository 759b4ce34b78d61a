"""Shared test fixtures: settings in a temporary data dir, a migrated app, users and logins."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from acl.models import Role
from gateway.settings import Settings, load_settings
from gateway.wiring import create_app

PASSWORD = "correct horse battery"

# acl.gc_freeze runs one full garbage collection per policy compile (start, reload, inventory change).
# In a gateway process that is one pass over its own heap; in this test process it is a pass over
# the whole suite's (~450,000 objects: 0.3-0.6 s each, thousands of compiles: minutes of CI). The
# suite runs with it off (subprocess nodes inherit this); tests marked ``gc_freeze`` turn it on.
os.environ.setdefault("LIANDONG_ACL__GC_FREEZE", "false")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings isolated in a temporary data dir."""
    return load_settings(None, data_dir=tmp_path / "data")


@pytest.fixture
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client for a fresh, migrated app (lifespan run)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


async def add_user(client: httpx.AsyncClient, name: str, role: Role = Role.operator, password: str = PASSWORD) -> None:
    """Create a user directly in the app's database."""
    from acl.users import upsert_user

    ld = client.app.state.ld  # type: ignore[attr-defined]
    async with ld.db.session() as s:
        await upsert_user(s, name, password, role)


async def login(client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> dict[str, str]:
    """A bearer Authorization header for ``name``."""
    r = await client.post("/api/auth/token", data={"username": name, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
async def admin_headers(app_client: httpx.AsyncClient) -> dict[str, str]:
    """An admin's bearer header."""
    await add_user(app_client, "admin", Role.admin)
    return await login(app_client, "admin")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Nothing to reorder yet; kept for markers added by packages."""
    _ = items


@pytest.fixture(scope="session")
def repo_root() -> Iterator[Path]:
    """The project's root directory."""
    yield Path(__file__).resolve().parent.parent


def iter_routes(routes: Any) -> Iterator[Any]:
    """Every route of an app, flattening included routers (FastAPI keeps them nested)."""
    for r in routes:
        inner = getattr(r, "original_router", None)
        if inner is not None:
            yield from iter_routes(inner.routes)
        else:
            yield r
