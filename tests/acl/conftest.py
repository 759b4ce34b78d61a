"""Fixtures for ACL tests: a migrated app with a small district inventory and users."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from acl.models import Role
from gateway.settings import load_settings
from gateway.wiring import create_app
from tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
CAMERAS: list[dict[str, Any]] = [
    {
        "id": "qb-1",
        "name": "七宝老街",
        "area": "七宝镇",
        "department": "police",
        "tags": ["路口"],
        "lat": 31.155,
        "lon": 121.35,
    },
    {"id": "qb-2", "name": "七宝地铁", "area": "七宝镇", "department": "transport", "lat": 31.16, "lon": 121.352},
    {"id": "xz-1", "name": "莘庄广场", "area": "莘庄镇", "department": "city_management", "lat": 31.11, "lon": 121.385},
    {"id": "bus-1-front", "name": "闵行12路 前", "kind": "bus", "vehicle_id": "bus-1", "department": "transport"},
    {"id": "truck-home", "name": "本区危化车", "kind": "truck", "vehicle_id": "truck-home", "department": "emergency"},
    {"id": "truck-away", "name": "外区危化车", "kind": "truck", "vehicle_id": "truck-away", "department": "emergency"},
]
VEHICLES = [
    {"id": "bus-1", "kind": "bus", "plate": "沪A10001", "line": "闵行12路", "home_district": "闵行区"},
    {"id": "truck-home", "kind": "truck", "plate": "沪B20001", "cargo": "液化石油气", "home_district": "闵行区"},
    {"id": "truck-away", "kind": "truck", "plate": "苏E30001", "cargo": "液氯", "home_district": "江苏省苏州市"},
]


@dataclass
class World:
    """The app, a client, and bearer headers of its users."""

    client: httpx.AsyncClient
    app: Any
    sec: dict[str, str]
    ids: dict[str, int]

    @property
    def acl(self) -> Any:
        return self.app.state.ld.acl

    async def user(self, name: str, role: Role = Role.operator) -> dict[str, str]:
        r = await self.client.post(
            "/api/admin/users", json={"username": name, "password": PASSWORD, "role": role.value}, headers=self.sec
        )
        assert r.status_code == 201, r.text
        self.ids[name] = r.json()["id"]
        r = await self.client.post("/api/auth/token", data={"username": name, "password": PASSWORD})
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    async def ok(self, method: str, url: str, **kw: Any) -> Any:
        r = await self.client.request(method, url, headers=self.sec, **kw)
        assert r.status_code in (200, 201), (url, r.status_code, r.text)
        return r.json()

    async def visible(self, headers: dict[str, str]) -> set[str]:
        r = await self.client.get("/api/cameras?limit=1000", headers=headers)
        assert r.status_code == 200, r.text
        return {c["id"] for c in r.json()["items"]}


@pytest.fixture
async def world(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    acl = {
        "district_geojson": ROOT / "fixtures" / "district.geojson",
        "gc_freeze": request.node.get_closest_marker("gc_freeze") is not None,
    }
    settings = load_settings(None, data_dir=tmp_path / "data", acl=acl)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        ld = app.state.ld
        from acl.users import upsert_user
        from camera_registry.inventory import import_cameras, import_vehicles

        async with ld.db.session() as s:
            await upsert_user(s, "root", PASSWORD, Role.admin)
        await import_vehicles(ld.store, VEHICLES)
        rows = [{"source_url": "rtsp://127.0.0.1:9/x", "kind": "fixed", **c} for c in CAMERAS]
        rep = await import_cameras(ld.store, rows)
        assert rep.count("created") == len(CAMERAS), rep.summary()
        await ld.inventory_changed()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            r = await client.post("/api/auth/token", data={"username": "root", "password": PASSWORD})
            root = {"Authorization": f"Bearer {r.json()['access_token']}"}
            w = World(client, app, root, {})
            w.sec = await w.user("secadmin", Role.security_admin)
            w.sec_root = root  # type: ignore[attr-defined]
            for dept, name, level, area in [
                ("district", "区联动中心", "district", None),
                ("qibao", "七宝镇分中心", "subdistrict", "七宝镇"),
                ("police", "公安", "department", None),
                ("transport", "交通委", "department", None),
            ]:
                await w.ok("PUT", f"/api/admin/departments/{dept}", json={"name": name, "level": level, "area": area})
            try:
                yield w
            finally:
                if acl["gc_freeze"]:
                    gc.unfreeze()  # what this gateway froze is collectable again for the rest of the suite
