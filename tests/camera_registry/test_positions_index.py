"""The vehicle index contract, run against the in-process k-d tree and a real redis-server."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from camera_registry.geo import haversine_m
from camera_registry.positions import PositionService
from camera_registry.settings import VehicleSettings
from camera_registry.vehicle_index import Fix, MemoryVehicleIndex, RedisVehicleIndex, VehicleIndex
from tests.redis_server import redis_server


@pytest.fixture(params=["memory", "redis"])
async def index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VehicleIndex]:
    if request.param == "memory":
        yield MemoryVehicleIndex()
        return
    import redis.asyncio

    with redis_server(tmp_path) as url:
        idx = RedisVehicleIndex(redis.asyncio.from_url(url))
        try:
            yield idx
        finally:
            await idx.close()


async def test_newer_wins_older_is_not_current(index: VehicleIndex) -> None:
    got = await index.update(
        [Fix("a", 31.1, 121.3, 100.0, 30.0, 90.0), Fix("a", 31.2, 121.4, 90.0), Fix("a", 31.3, 121.5, 100.0)]
    )
    assert got == [True, False, False]  # equal time is not newer either
    assert await index.get("a") == Fix("a", 31.1, 121.3, 100.0, 30.0, 90.0)
    assert await index.update([Fix("a", 31.15, 121.35, 110.0)]) == [True]
    cur = await index.get("a")
    assert cur is not None and (cur.lat, cur.lon, cur.speed) == (31.15, 121.35, None)
    assert await index.get("nope") is None


async def test_hidden_fix_takes_the_vehicle_out(index: VehicleIndex) -> None:
    await index.update([Fix("t", 31.1, 121.3, 100.0), Fix("b", 31.1001, 121.3001, 100.0)])
    assert {f.vehicle_id for f, _ in await index.nearest(31.1, 121.3, 5, None, 0)} == {"t", "b"}
    assert await index.update([Fix("t", 32.5, 120.0, 110.0)], hidden=[True]) == [True]
    assert await index.get("t") is None
    assert [f.vehicle_id for f, _ in await index.nearest(31.1, 121.3, 5, None, 0)] == ["b"]
    # An older fix (from before it left) does not bring it back.
    assert await index.update([Fix("t", 31.1, 121.3, 105.0)]) == [False]
    assert await index.get_many(["t", "b"]) == {"b": Fix("b", 31.1001, 121.3001, 100.0)}


async def test_nearest_is_exact_with_freshness_and_radius(index: VehicleIndex) -> None:
    rnd = random.Random(7)
    fixes = [
        Fix(f"v{i}", 31.0 + rnd.random() * 0.3, 121.2 + rnd.random() * 0.3, 1000.0 - rnd.random() * 200)
        for i in range(800)
    ]
    assert all(await index.update(fixes))
    for _ in range(25):
        lat, lon = 31.0 + rnd.random() * 0.3, 121.2 + rnd.random() * 0.3
        min_t = rnd.choice([0.0, 900.0, 990.0])
        radius = rnd.choice([None, 500.0, 2500.0])
        k = rnd.choice([1, 5, 20])
        got = await index.nearest(lat, lon, k, radius, min_t)
        brute = sorted((haversine_m(lat, lon, f.lat, f.lon), f.vehicle_id) for f in fixes if f.t >= min_t)
        want = [vid for d, vid in brute if radius is None or d <= radius][:k]
        assert [f.vehicle_id for f, _ in got] == want, (lat, lon, min_t, radius, k)
        assert all(abs(d - haversine_m(lat, lon, f.lat, f.lon)) < 1e-6 for f, d in got)


async def test_position_service_on_redis(tmp_path: Path) -> None:
    """The service with the Redis index: a second node sees the first node's fixes."""
    import redis.asyncio

    with redis_server(tmp_path) as url:
        nodes = [
            PositionService(
                VehicleSettings(),
                None,
                "闵行区",
                lambda _la, _lo: True,
                index=RedisVehicleIndex(redis.asyncio.from_url(url)),
            )
            for _ in range(2)
        ]
        try:
            for svc in nodes:
                svc.set_inventory({"bus-1": ("bus", "闵行区")}, [("bus-1-front", "bus", None, None, "bus-1")])
            now = 1_800_000_000.0
            rep = await nodes[0].ingest(
                [
                    {"vehicle_id": "bus-1", "lat": 31.15, "lon": 121.35, "time": now - 5},
                    {"vehicle_id": "bus-1", "lat": 86.0, "lon": 121.35, "time": now},  # Redis GEO cannot hold it
                ],
                now=now,
            )
            assert (rep["accepted"], rep["rejected"]) == (1, 1)
            assert rep["errors"][0]["error"].startswith("lat: must be between -85.0511")
            near = await nodes[1].nearest(31.1501, 121.3501, limit=3, now=now)
            assert [(c.camera_id, c.vehicle_id) for c in near] == [("bus-1-front", "bus-1")]
            assert near[0].distance_m < 20
            rep = await nodes[1].ingest([{"vehicle_id": "bus-1", "lat": 31.0, "lon": 121.0, "time": now - 60}], now=now)
            assert rep["not_current"] == 1  # older than what node 0 stored
        finally:
            for svc in nodes:
                await svc.close()


async def test_redis_down_answers_503_and_alarms_still_land(tmp_path: Path) -> None:
    """Redis stops while the gateway runs: position routes answer 503, an alarm is still stored."""
    import contextlib
    import time

    import httpx

    from acl.models import Role
    from acl.users import upsert_user
    from camera_registry.inventory import import_cameras, import_vehicles
    from gateway.settings import load_settings
    from gateway.wiring import create_app
    from tests.conftest import PASSWORD, login
    from tests.gateway.test_alarms import signed

    with contextlib.ExitStack() as redis_running:
        url = redis_running.enter_context(redis_server(tmp_path))
        app = create_app(load_settings(None, data_dir=tmp_path / "data", redis_url=url))
        async with app.router.lifespan_context(app):
            ld = app.state.ld
            async with ld.db.session() as s:
                await upsert_user(s, "root", PASSWORD, Role.admin)
                await upsert_user(s, "feed", PASSWORD, Role.integration)
            await import_vehicles(ld.store, [{"id": "bus-1", "kind": "bus", "plate": "沪A1"}])
            cam = {"id": "bus-1-front", "name": "前", "kind": "bus", "vehicle_id": "bus-1", "source_url": "rtsp://h/x"}
            await import_cameras(ld.store, [cam])
            await ld.inventory_changed()
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                root, feed = await login(c, "root"), await login(c, "feed")
                secret = (await c.post("/api/admin/alarm-sources", json={"name": "s"}, headers=root)).json()["secret"]
                fix = [{"vehicle_id": "bus-1", "lat": 31.15, "lon": 121.35, "time": time.time()}]
                assert (await c.post("/api/vehicles/positions", json=fix, headers=feed)).json()["accepted"] == 1
                assert await ld.positions.latest("bus-1") is not None
                redis_running.close()  # redis-server stops
                r = await c.post("/api/vehicles/positions", json=fix, headers=feed)
                assert r.status_code == 503 and "unavailable" in r.json()["detail"]
                assert (await c.get("/api/cameras/nearest?lat=31.15&lon=121.35", headers=root)).status_code == 503
                alarm = signed(secret, {"alarm_id": "X-1", "vehicle_id": "bus-1"}, source="s")
                r = await c.post("/api/alarms", **alarm)
                assert r.status_code == 202, r.text
                inc = (await c.get(f"/api/incidents/{r.json()['incident_id']}", headers=root)).json()
                assert inc["cameras"] == ["bus-1-front"] and inc["lat"] is None  # its camera, no live position
