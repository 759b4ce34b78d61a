"""Vehicle positions: intake validation, spatial look-ups, tracks, and the truck rule fed from the API."""

from __future__ import annotations

import math
import time

from acl.models import Role
from camera_registry.geo import PointIndex, haversine_m
from tests.acl.conftest import World


def test_point_index_matches_haversine() -> None:
    idx = PointIndex()
    pts = [(f"p{i}", 31.0 + (i % 17) * 0.01, 121.3 + (i // 17) * 0.013) for i in range(400)]
    idx.replace(pts)
    q = (31.08, 121.41)
    got = idx.nearest(*q, k=5)
    brute = sorted(((k, haversine_m(*q, la, lo)) for k, la, lo in pts), key=lambda x: x[1])[:5]
    assert [k for k, _ in got] == [k for k, _ in brute]
    assert all(math.isclose(a[1], b[1], rel_tol=1e-6) for a, b in zip(got, brute, strict=True))
    assert all(d <= 1500 for _, d in idx.nearest(*q, k=50, radius_m=1500))
    idx.remove("p0")
    assert "p0" not in {k for k, _ in idx.nearest(31.0, 121.3, k=3)}


def test_point_index_moves_through_the_delta_and_stays_exact() -> None:
    import random

    rnd = random.Random(11)
    idx = PointIndex(rebuild_fraction=0.25, min_delta=50)
    pts = {f"p{i}": (31.0 + rnd.random() * 0.2, 121.3 + rnd.random() * 0.2) for i in range(400)}
    idx.replace((k, la, lo) for k, (la, lo) in pts.items())
    builds = idx.rebuilds
    for step in range(600):  # moves, removals and new points, checked against brute force as they go
        key = f"p{rnd.randrange(450)}"
        if rnd.random() < 0.1:
            idx.remove(key)
            pts.pop(key, None)
        else:
            pts[key] = (31.0 + rnd.random() * 0.2, 121.3 + rnd.random() * 0.2)
            idx.set(key, *pts[key])
        if step % 20 == 0:
            q = (31.0 + rnd.random() * 0.2, 121.3 + rnd.random() * 0.2)
            radius = rnd.choice([None, 3000.0])
            got = idx.nearest(*q, k=6, radius_m=radius)
            ranked = sorted((haversine_m(*q, la, lo), k) for k, (la, lo) in pts.items())
            brute = [(k, d) for d, k in ranked if radius is None or d <= radius][:6]
            assert [k for k, _ in got] == [k for k, _ in brute], step
            assert all(math.isclose(a[1], b[1], rel_tol=1e-6, abs_tol=1e-3) for a, b in zip(got, brute, strict=True))
    assert len(idx) == len(pts)
    assert 0 < idx.rebuilds - builds < 20  # rebuilt now and then, not on every move


def test_track_orders_late_fixes_caps_and_prunes() -> None:
    from camera_registry.positions import Track
    from camera_registry.vehicle_index import Fix

    tr = Track(max_points=4)
    for t in (10.0, 20.0, 40.0):
        tr.add(Fix("v", 31.0, 121.0, t, 12.5, None))
    tr.add(Fix("v", 31.1, 121.1, 30.0))  # late: goes in time order
    assert [p[0] for p in tr.points()] == [10.0, 20.0, 30.0, 40.0]
    assert tr.points()[0] == (10.0, 31.0, 121.0, 12.5, None)
    tr.add(Fix("v", 31.2, 121.2, 50.0))  # over the cap: the oldest goes
    assert [p[0] for p in tr.points()] == [20.0, 30.0, 40.0, 50.0]
    assert [p[0] for p in tr.points(since=35)] == [40.0, 50.0]
    tr.prune(45.0)
    assert [p[0] for p in tr.points()] == [50.0]


async def test_intake_nearest_and_location_rule(world: World) -> None:
    w = world
    feed = await w.user("gps-feed", Role.integration)
    op = await w.user("op-map")
    await w.ok("PUT", f"/api/admin/users/{w.ids['op-map']}/memberships/transport", json={})
    await w.ok("PUT", "/api/admin/groups/mobile", json={"name": "车载", "filter": {"kind": ["bus", "truck"]}})
    await w.ok("PUT", "/api/admin/groups/qb", json={"name": "七宝", "filter": {"area": ["七宝镇"]}})
    for target in ("group:mobile", "group:qb"):
        await w.ok(
            "POST", "/api/admin/rules", json={"subject": "dept:transport", "target": target, "action": "view_live"}
        )
    now = time.time()
    batch = [
        {"vehicle_id": "bus-1", "lat": 31.156, "lon": 121.351, "time": now - 5, "speed": 30, "heading": 90},
        {"vehicle_id": "bus-1", "lat": 31.150, "lon": 121.340, "time": now - 60},  # older: track only
        {"vehicle_id": "truck-away", "lat": 31.157, "lon": 121.352, "time": now},  # inside the district
        {"vehicle_id": "truck-home", "lat": 31.90, "lon": 120.90, "time": now},  # own truck, far away
        {"vehicle_id": "nope", "lat": 31.1, "lon": 121.3, "time": now},
        {"vehicle_id": "bus-1", "lat": 91, "lon": 121.3, "time": now},
        {"vehicle_id": "bus-1", "lat": 31.1, "lon": 121.3, "time": now + 3600},
        {"vehicle_id": "bus-1", "lat": 31.1, "lon": 121.3, "time": "yesterday"},
        "not an object",
    ]
    r = await w.client.post("/api/vehicles/positions", json=batch, headers=feed)
    assert r.status_code == 200, r.text
    rep = r.json()
    assert (rep["accepted"], rep["not_current"], rep["rejected"]) == (4, 1, 5)
    assert [e["index"] for e in rep["errors"]] == [4, 5, 6, 7, 8]
    assert rep["errors"][0]["error"] == "vehicle_id: unknown vehicle"
    assert rep["errors"][1]["error"].startswith("lat:")
    assert rep["errors"][2]["error"] == "time: in the future"
    assert (await w.client.post("/api/vehicles/positions", json=batch, headers=op)).status_code == 403
    # NDJSON works too, with per-line errors.
    nd = f'{{"vehicle_id": "bus-1", "lat": 31.157, "lon": 121.352, "time": {now}}}\n{{broken\n'
    r = await w.client.post(
        "/api/vehicles/positions", content=nd, headers={**feed, "Content-Type": "application/x-ndjson"}
    )
    assert r.json()["accepted"] == 1 and r.json()["rejected"] == 1
    # Nearest to 七宝老街: the bus and the foreign truck (both right there) and the fixed cameras the user may see.
    r = await w.client.get(
        "/api/cameras/nearest", params={"lat": 31.155, "lon": 121.35, "limit": 10, "radius": 5000}, headers=op
    )
    items = r.json()["items"]
    ids = [i["camera_id"] for i in items]
    assert set(ids) == {"bus-1-front", "truck-away", "qb-1", "qb-2"}
    assert [i["distance_m"] for i in items] == sorted(i["distance_m"] for i in items)
    assert "truck-home" not in ids  # ~90 km away, outside the radius
    assert "xz-1" not in ids  # not permitted
    r = await w.client.get("/api/cameras/nearest", params={"lat": 31.155, "lon": 121.35, "kind": "bus"}, headers=op)
    assert [i["camera_id"] for i in r.json()["items"]] == ["bus-1-front"]
    r = await w.client.get("/api/cameras/nearest", params={"lat": 31.155, "lon": 121.35, "radius": 50}, headers=op)
    assert {i["camera_id"] for i in r.json()["items"]} <= {"qb-1", "bus-1-front"}
    r = await w.client.get("/api/cameras/nearest", params={"lat": 31.155, "lon": 121.35, "max_age": 0.001}, headers=op)
    assert not {i["vehicle_id"] for i in r.json()["items"]} - {None}  # every fix is older than 1 ms
    assert (await w.client.get("/api/cameras/nearest?lat=95&lon=0", headers=op)).status_code == 422
    # The truck rule follows the feed: the foreign truck is visible while inside, not after it leaves.
    assert "truck-away" in await w.visible(op)
    r = await w.client.post(
        "/api/vehicles/positions",
        json=[{"vehicle_id": "truck-away", "lat": 31.40, "lon": 121.10, "time": time.time()}],
        headers=feed,
    )
    assert r.json()["outside_district"] == 1
    assert "truck-away" not in await w.visible(op)
    assert "truck-home" in await w.visible(op)
    # Tracks and the vehicle list, for what the caller may view.
    track = (await w.client.get("/api/vehicles/bus-1/track", headers=op)).json()
    assert len(track["points"]) == 3
    listed = {v["id"]: v for v in (await w.client.get("/api/vehicles", headers=op)).json()}
    assert listed["bus-1"]["position"]["lat"] == 31.157
    outsider = await w.user("op-none")
    assert (await w.client.get("/api/vehicles/bus-1/track", headers=outsider)).status_code == 404
    assert (await w.client.get("/api/vehicles", headers=outsider)).json() == []


async def test_nearest_matches_brute_force_with_filters() -> None:
    import random

    from camera_registry.positions import PositionService
    from camera_registry.settings import VehicleSettings

    rnd = random.Random(4)
    svc = PositionService(VehicleSettings(fresh_s=60), None, "闵行区", lambda _a, _b: True)
    now = 1_800_000_000.0
    fixed = [(f"f{i}", 31.0 + rnd.random() * 0.2, 121.3 + rnd.random() * 0.2) for i in range(300)]
    svc.set_inventory(
        {f"v{i}": ("bus", "闵行区") for i in range(300)},
        [(k, "fixed", la, lo, None) for k, la, lo in fixed]
        + [(f"v{i}-{s}", "bus", None, None, f"v{i}") for i in range(300) for s in "ab"],
    )
    items = [
        {
            "vehicle_id": f"v{i}",
            "lat": 31.0 + rnd.random() * 0.2,
            "lon": 121.3 + rnd.random() * 0.2,
            "time": now - rnd.random() * 120,
        }
        for i in range(300)
    ]
    await svc.ingest(items, now=now)
    latest = await svc.latest_many(list(svc.vehicles))
    for trial in range(30):
        lat, lon = 31.0 + rnd.random() * 0.2, 121.3 + rnd.random() * 0.2
        visible = {k for k, _, _ in fixed if rnd.random() < 0.2} | {f"v{i}-a" for i in range(300) if rnd.random() < 0.2}
        got = await svc.nearest(lat, lon, limit=7, visible=visible, now=now)
        brute = [(k, haversine_m(lat, lon, la, lo)) for k, la, lo in fixed if k in visible]
        for vid, fix in latest.items():
            if now - fix.t <= 60:
                brute += [
                    (c, haversine_m(lat, lon, fix.lat, fix.lon)) for c, _ in svc.vehicle_cameras[vid] if c in visible
                ]
        brute.sort(key=lambda x: x[1])
        assert [round(c.distance_m, 3) for c in got] == [round(d, 3) for _, d in brute[:7]], trial


async def test_fixes_taken_here_are_handed_on_and_fixes_heard_elsewhere_join_the_tracks() -> None:
    from camera_registry.positions import PositionService
    from camera_registry.settings import VehicleSettings
    from camera_registry.vehicle_index import Fix

    heard: list[tuple[str, float, float, float]] = []
    taken: list[tuple[str, float, float, float]] = []
    inside = lambda lat, _lon: lat < 31.5  # noqa: E731 (the district: everything south of 31.5)
    svc = PositionService(
        VehicleSettings(),
        None,
        "闵行区",
        inside,
        on_fix=lambda *f: heard.append(f),
        on_taken=lambda *f: taken.append(f),
    )
    svc.set_inventory({"bus": ("bus", "闵行区"), "visitor": ("truck", "松江区")}, [])
    now = time.time()
    await svc.ingest([{"vehicle_id": "bus", "lat": 31.1, "lon": 121.4, "time": now - 5}], now=now)
    assert taken == [("bus", 31.1, 121.4, now - 5)] and heard == taken

    # Another node's fixes: the location rule hears every one, tracks keep what the node that took
    # them in kept (a foreign truck outside the district is not tracked), nothing is handed on again.
    joined = svc.heard_elsewhere(
        [
            Fix("bus", 31.2, 121.4, now - 1),
            Fix("visitor", 31.9, 121.4, now - 1),  # outside the district
            Fix("visitor", 31.2, 121.4, now),
            Fix("stranger", 31.2, 121.4, now),  # not ours
            Fix("bus", 31.0, 121.4, now - 10 * 86400),  # older than the retention
        ],
        now=now,
    )
    assert joined == 2
    assert [f[0] for f in heard[1:]] == ["bus", "visitor", "visitor"]
    assert len(taken) == 1
    assert [(p[1], p[0]) for p in svc.track("bus", now=now)] == [(31.1, now - 5), (31.2, now - 1)]
    assert [(p[1], p[0]) for p in svc.track("visitor", now=now)] == [(31.2, now)]
