"""The console's own endpoints: map data (boundary, camera positions), dashboard figures, config,
and the page's CSP when a tile server is configured. Each answers only about what the caller may see."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest

from gateway.alarms.models import Incident
from gateway.settings import Settings, load_settings
from storage.db import utcnow
from tests.conftest import PASSWORD, login

ROOT = Path(__file__).resolve().parents[2]
TILES = "https://{s}.tiles.example.net/{z}/{x}/{y}.png"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        None,
        data_dir=tmp_path / "data",
        acl={"district_geojson": ROOT / "fixtures" / "district.geojson"},
        console={"map_tile_url": TILES, "map_attribution": "© tiles.example"},
    )


CAMS = [
    # id, area, department, lat, lon, status
    ("a1", "七宝镇", "police", 31.155, 121.350, "online"),
    ("a2", "七宝镇", "city", 31.158, 121.352, "offline"),
    ("b1", "莘庄镇", "city", 31.110, 121.385, "error"),
    ("b2", "莘庄镇", "city", None, None, "unknown"),
]


async def seed(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, str]:
    """Four cameras, two incidents; an operator of department qb who may view a2 and b1 only."""
    ld = client.app.state.ld  # type: ignore[attr-defined]
    for cid, area, dept, lat, lon, _status in CAMS:
        body = {"id": cid, "name": f"cam {cid}", "source_url": "rtsp://127.0.0.1:9/x", "area": area}
        body |= {"department": dept} | ({"lat": lat, "lon": lon} if lat is not None else {})
        assert (await client.post("/api/cameras", json=body, headers=admin)).status_code == 201
    for cid, *_, status in CAMS:
        await ld.store.set_status(cid, status)
    await client.put("/api/admin/departments/qb", json={"name": "七宝值班"}, headers=admin)
    r = await client.post(
        "/api/admin/users", json={"username": "op", "password": PASSWORD, "role": "operator"}, headers=admin
    )
    await client.put(f"/api/admin/users/{r.json()['id']}/memberships/qb", json={}, headers=admin)
    for target in ("cam:a2", "cam:b1"):
        rule = {"subject": "dept:qb", "target": target, "action": "view_live"}
        assert (await client.post("/api/admin/rules", json=rule, headers=admin)).status_code == 201
    now = utcnow()
    async with ld.db.session() as s:
        for i, (area, depts, state, late) in enumerate(
            [
                ("七宝镇", ["qb"], "dispatched", True),  # overdue
                ("七宝镇", ["qb"], "closed", False),  # handled
                ("莘庄镇", ["other"], "new", False),  # not the operator's
            ]
        ):
            s.add(
                Incident(
                    id=f"INC-T{i}",
                    type="panic",
                    state=state,
                    area=area,
                    departments=depts,
                    dispatched_to="qb" if state != "new" else None,
                    onsite_deadline=now + dt.timedelta(hours=-1 if late else 3),
                    resolve_deadline=now + dt.timedelta(hours=100),
                    history=[],
                    created_at=now,
                    effects_applied=True,
                    overdue_announced=[],
                )
            )
    return await login(client, "op")


async def test_endpoints_need_a_login(app_client: httpx.AsyncClient) -> None:
    for path in ("/api/console/district", "/api/console/map/cameras", "/api/console/dashboard"):
        assert (await app_client.get(path)).status_code == 401, path


async def test_map_data_holds_only_visible_positioned_cameras(
    app_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    op = await seed(app_client, admin_headers)
    district = (await app_client.get("/api/console/district", headers=op)).json()
    assert district["type"] == "FeatureCollection"
    assert district["features"][0]["geometry"]["type"] == "Polygon"
    everything = (await app_client.get("/api/console/map/cameras", headers=admin_headers)).json()
    assert [c[0] for c in everything["cameras"]] == ["a1", "a2", "b1"]  # b2 has no position
    mine = (await app_client.get("/api/console/map/cameras", headers=op)).json()
    assert mine["fields"] == ["id", "name", "lat", "lon", "status", "area"]
    assert mine["cameras"] == [
        ["a2", "cam a2", 31.158, 121.352, "offline", "七宝镇"],
        ["b1", "cam b1", 31.110, 121.385, "error", "莘庄镇"],
    ]


async def test_dashboard_counts_only_what_the_caller_may_see(
    app_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    op = await seed(app_client, admin_headers)
    d = (await app_client.get("/api/console/dashboard", headers=op)).json()
    inc = d["incidents"]
    assert (inc["total"], inc["open"], inc["handled"], inc["overdue"], inc["handled_pct"]) == (2, 1, 1, 1, 50.0)
    assert list(inc["by_area"]) == ["七宝镇"]  # 莘庄镇's incident belongs to another department
    assert inc["by_department"]["qb"] == {"total": 2, "open": 1, "handled": 1, "overdue": 1, "handled_pct": 50.0}
    assert d["cameras"] == {
        "total": 2,
        "offline": 2,
        "by_area": {"七宝镇": {"total": 1, "offline": 1}, "莘庄镇": {"total": 1, "offline": 1}},
    }
    everything = (await app_client.get("/api/console/dashboard", headers=admin_headers)).json()
    assert everything["incidents"]["total"] == 3
    assert everything["cameras"]["by_area"]["七宝镇"] == {"total": 2, "offline": 1}
    # A period counts the incidents opened since then (only with a time zone).
    later = (utcnow() + dt.timedelta(minutes=1)).isoformat()
    d = (await app_client.get("/api/console/dashboard", params={"since": later}, headers=op)).json()
    assert d["incidents"]["total"] == 0 and d["incidents"]["by_area"] == {} and d["cameras"]["total"] == 2
    r = await app_client.get("/api/console/dashboard", params={"since": "2026-11-28T00:00:00"}, headers=op)
    assert r.status_code == 422
    # The stats endpoint agrees with the dashboard.
    stats = (await app_client.get("/api/incidents/stats", headers=op)).json()
    assert stats["by_area"] == inc["by_area"]


async def test_config_names_the_tile_server_and_departments_and_the_csp_allows_only_that_origin(
    app_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    op = await seed(app_client, admin_headers)
    cfg = (await app_client.get("/api/config", headers=op)).json()
    assert cfg["map"]["tile_url"] == TILES and cfg["map"]["attribution"] == "© tiles.example"
    assert {"id": "qb", "name": "七宝值班", "level": "department"} in cfg["departments"]
    csp = (await app_client.get("/")).headers["content-security-policy"]
    assert "img-src 'self' data: blob: https://*.tiles.example.net;" in csp
    assert "connect-src 'self';" in csp and "script-src 'self';" in csp  # tiles are images only
