"""The app starts, migrates, and answers health, login and camera list."""

from __future__ import annotations

import httpx

from acl.models import Role
from tests.conftest import add_user, login


async def test_health_and_login(app_client: httpx.AsyncClient) -> None:
    assert (await app_client.get("/healthz")).json() == {"status": "ok"}
    assert (await app_client.get("/readyz")).status_code == 200
    assert (await app_client.get("/api/cameras")).status_code == 401
    await add_user(app_client, "alice", Role.admin)
    h = await login(app_client, "alice")
    r = await app_client.get("/api/cameras", headers=h)
    assert r.status_code == 200
    assert r.json()["total"] == 0
