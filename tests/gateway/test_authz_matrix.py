"""The authorization matrix: every camera-scoped route, for a camera the caller may not use this
way, with no credentials, an operator of another department, an expired token, a revoked token
and a stream token for another camera: all refused (401/403) and every refusal audited.

Routes are found by walking the app, so a camera route added later (HLS...) is covered at once.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from prometheus_client import generate_latest
from sqlalchemy import update

from acl.identity import hash_token
from acl.models import ApiToken, Role
from gateway.refusals import refusal_count
from gateway.settings import load_settings
from gateway.wiring import create_app
from tests.conftest import PASSWORD, add_user, iter_routes, login
from tests.gateway.test_route_policies import policies

CAM, OTHER = "cam-a", "cam-b"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(load_settings(None, data_dir=tmp_path / "data"))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            c.app = app  # type: ignore[attr-defined]
            yield c


def camera_routes(app: Any) -> list[tuple[str, str, str]]:
    """(method, path with ``cam-a``, policy) of every non-public route with a ``camera_id``."""
    out = []
    for route in iter_routes(app.routes):
        if not isinstance(route, APIRoute) or "{camera_id}" not in route.path:
            continue
        (policy,) = policies(route.dependant)
        if policy == "public":
            continue
        path = re.sub(r"\{[^}]+\}", "x1", route.path.replace("{camera_id}", CAM))
        out += [(m, path, policy) for m in sorted((route.methods or set()) - {"HEAD"})]
    return out


async def _setup(c: httpx.AsyncClient) -> dict[str, Any]:
    await add_user(c, "admin", Role.admin)
    admin = await login(c, "admin")
    for cam in (CAM, OTHER):
        r = await c.post(
            "/api/cameras", json={"id": cam, "name": cam, "source_url": "rtsp://u:pw@10.9.9.9/s"}, headers=admin
        )
        assert r.status_code == 201, r.text
    ids = {}
    for name in ("op-a", "op-b", "op-ab"):
        body = {"username": name, "password": PASSWORD, "role": "operator"}
        r = await c.post("/api/admin/users", json=body, headers=admin)
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]
    for dept, cam in (("dept-a", CAM), ("dept-b", OTHER)):
        assert (await c.put(f"/api/admin/departments/{dept}", json={"name": dept}, headers=admin)).status_code == 200
        rule = {"subject": f"dept:{dept}", "target": f"cam:{cam}", "action": "view_live"}
        assert (await c.post("/api/admin/rules", json=rule, headers=admin)).status_code == 201
    for user, dept in (("op-a", "dept-a"), ("op-b", "dept-b"), ("op-ab", "dept-a"), ("op-ab", "dept-b")):
        r = await c.put(f"/api/admin/users/{ids[user]}/memberships/{dept}", json={}, headers=admin)
        assert r.status_code == 200, r.text
    return {"admin": admin, "ids": ids}


async def test_every_camera_route_refuses_and_audits(client: httpx.AsyncClient) -> None:
    c = client
    ld = c.app.state.ld  # type: ignore[attr-defined]
    await _setup(c)
    routes = camera_routes(c.app)  # type: ignore[attr-defined]
    assert len(routes) >= 8, routes

    op_a = await login(c, "op-a")  # allowed on cam-a: every refusal below is the credential's fault
    assert (await c.get(f"/api/cameras/{CAM}", headers=op_a)).status_code == 200
    expired = await login(c, "op-a")
    async with ld.db.session() as s:
        token_hash = hash_token(expired["Authorization"].removeprefix("Bearer "))
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        await s.execute(update(ApiToken).where(ApiToken.token_hash == token_hash).values(expires_at=past))
    revoked = await login(c, "op-a")
    assert (await c.post("/api/auth/logout", headers=revoked)).status_code == 200
    op_ab = await login(c, "op-ab")  # allowed on both cameras; its stream token is bound to cam-b only
    r = await c.post(f"/api/auth/stream-token/{OTHER}", headers=op_ab)
    assert r.status_code == 200, r.text
    wrong_camera = r.json()["token"]
    r = await c.post(f"/api/cameras/{OTHER}/whep", params={"token": wrong_camera}, content=b"x")
    assert r.status_code == 415  # authenticated and allowed there: only the content type is wrong
    other_dept = await login(c, "op-b")

    variants: dict[str, tuple[dict[str, str], dict[str, str], int]] = {
        "no credentials": ({}, {}, 401),
        "expired token": (expired, {}, 401),
        "revoked token": (revoked, {}, 401),
        "stream token for another camera": ({}, {"token": wrong_camera}, 401),
        "operator of another department": (other_dept, {}, 403),
    }
    before = {k: len(await ld.audit.query(kind=k, limit=10_000)) for k in ("unauthenticated", "denied")}
    wrong = []
    for method, path, policy in routes:
        for name, (headers, params, want) in variants.items():
            r = await c.request(
                method, path, headers={**headers, "Content-Type": "application/json"}, params=params, content=b"{}"
            )
            if r.status_code != want:
                wrong.append(f"{method} {path} ({policy}) with {name}: {r.status_code} {r.text[:100]}")
            assert "pw@" not in r.text and "10.9.9.9" not in r.text
    assert not wrong, "\n".join(wrong)

    # Anonymous refusals are audited in aggregate (gateway/refusals.py): the first in full, then one
    # entry with the exact count of the rest when the window closes (closed here at once).
    await ld.refusals.flush(close_all=True)
    unauth = (await ld.audit.query(kind="unauthenticated", limit=10_000))[: -before["unauthenticated"] or None]
    denied = await ld.audit.query(kind="denied", limit=10_000)
    assert sum(refusal_count(e.detail, e.start) for e in unauth) == 4 * len(routes)
    assert len(unauth) == 2  # one address, one window: the first refusal and the count of the rest
    assert len(denied) - before["denied"] == len(routes)
    first = [e for e in unauth if e.start is None]
    assert len(first) == 1 and first[0].camera_id == CAM and first[0].address == "127.0.0.1"
    assert all(e.username == "op-b" and CAM in (e.camera_id or "") + (e.detail or "") for e in denied[: len(routes)])
    text = " ".join(e.detail or "" for e in unauth)
    for problem in (
        "no credentials",
        "bearer token unknown, expired or revoked",
        "stream token for another camera",  # on the routes that take stream tokens
        "a stream_token is not accepted here",  # everywhere else
    ):
        assert problem in text
    assert (await ld.audit.verify()).ok


async def test_refusal_audit_is_aggregated_per_address(tmp_path: Path) -> None:
    app = create_app(load_settings(None, data_dir=tmp_path / "data"))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            for _ in range(7):
                r = await c.get("/api/cameras", headers={"Authorization": "Bearer ld_nonsense"})
                assert r.status_code == 401
            await app.state.ld.refusals.flush(close_all=True)
            rows = await app.state.ld.audit.query(kind="unauthenticated")
            assert len(rows) == 2 and sum(refusal_count(e.detail, e.start) for e in rows) == 7
            assert rows[0].detail.startswith("count=6; ") and "6x bearer token unknown" in rows[0].detail
            metric = 'liandong_authz_denied_total{policy="unauthenticated"} 7.0'
            assert metric in generate_latest(app.state.ld.metrics.registry).decode()
