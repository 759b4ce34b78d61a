"""Vehicle panels: what a bus's and a truck's panel shows, to whom, and a truck from elsewhere only
while it is inside the district (administrators included); buses with GPS but no camera on the map."""

from __future__ import annotations

import time

from acl.models import Role
from camera_registry.inventory import import_inventory
from tests.acl.conftest import World

INSIDE = (31.16, 121.343)  # 七宝, inside fixtures/district.geojson
OUTSIDE = (31.262, 121.262)  # 青浦, north-west of it
DETAILS = [
    {
        "id": "bus-1",
        "kind": "bus",
        "plate": "沪A10001",
        "line": "闵行12路",
        "home_district": "闵行区",
        "contact": "调度 021-64120000",
        "driver": "王伟",
        "driver_phone": "13900000001",
        "company": "上海闵行客运有限公司",
    },
    {
        "id": "truck-away",
        "kind": "truck",
        "plate": "苏E30001",
        "cargo": "液氯",
        "home_district": "江苏省苏州市",
        "driver": "李强",
        "driver_phone": "13900002001",
        "escort": "张敏",
        "company": "苏州工业园区危运有限公司",
    },
    {"id": "bus-nocam", "kind": "bus", "plate": "沪D10002", "line": "闵行12路", "home_district": "闵行区"},
    {"id": "truck-sh", "kind": "truck", "plate": "沪B20002", "cargo": "汽油", "home_district": "上海市闵行区"},
]


async def _setup(w: World) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    ld = w.app.state.ld
    rep = await import_inventory(
        ld.store,
        [{"id": "truck-sh-cab", "name": "沪B20002 驾驶室", "kind": "truck", "vehicle_id": "truck-sh",
          "source_url": "rtsp://127.0.0.1:9/x", "department": "emergency"}],
        DETAILS,
    )  # fmt: skip
    assert rep.written and not rep.rejected_count(), rep.summary()
    await ld.inventory_changed()
    for gid, flt in (("buses", {"kind": ["bus"]}), ("trucks", {"kind": ["truck"]})):
        await w.ok("PUT", f"/api/admin/groups/{gid}", json={"name": gid, "filter": flt})
    for target in ("group:buses", "group:trucks"):
        rule = {"subject": "dept:transport", "target": target, "action": "view_live"}
        await w.ok("POST", "/api/admin/rules", json=rule)
    transport = await w.user("tp")
    await w.ok("PUT", f"/api/admin/users/{w.ids['tp']}/memberships/transport", json={})
    other = await w.user("qb")
    await w.ok("PUT", f"/api/admin/users/{w.ids['qb']}/memberships/qibao", json={})
    feed = await w.user("gps", Role.integration)
    return transport, other, feed


async def _drive(w: World, feed: dict[str, str], vehicle: str, at: tuple[float, float]) -> None:
    fix = [{"vehicle_id": vehicle, "lat": at[0], "lon": at[1], "time": time.time()}]
    r = await w.client.post("/api/vehicles/positions", json=fix, headers=feed)
    assert r.json()["accepted"] + r.json()["outside_district"] == 1, r.text


async def test_panels_follow_the_camera_policy_and_the_truck_sharing_rule(world: World) -> None:
    # One test (one app and its logins): the parts share their setup.
    w = world
    transport, other, feed = await _setup(w)
    root = w.sec_root  # type: ignore[attr-defined]

    # A bus: line, plate, driver, company and its cameras; not the driver's phone or the dispatch line.
    await _drive(w, feed, "bus-1", INSIDE)
    bus = (await w.client.get("/api/vehicles/bus-1", headers=transport)).json()
    assert bus["line"] == "闵行12路" and bus["plate"] == "沪A10001" and bus["driver"] == "王伟"
    assert bus["company"] == "上海闵行客运有限公司"
    assert bus["cameras"] == [{"id": "bus-1-front", "name": "闵行12路 前", "position": None}]
    assert "driver_phone" not in bus and "contact" not in bus
    assert bus["position"]["lat"] == INSIDE[0]
    # Someone who may view none of its cameras gets what a missing vehicle gets.
    for vid in ("bus-1", "truck-away", "no-such"):
        r = await w.client.get(f"/api/vehicles/{vid}", headers=other)
        assert (r.status_code, r.json()) == (404, {"detail": f"no vehicle '{vid}' you may view"})

    # A truck registered elsewhere: nothing before it enters, everything while inside, nothing after.
    for who in (transport, root):
        assert (await w.client.get("/api/vehicles/truck-away", headers=who)).status_code == 404
    await _drive(w, feed, "truck-away", OUTSIDE)
    for who in (transport, root):
        assert (await w.client.get("/api/vehicles/truck-away", headers=who)).status_code == 404
    await _drive(w, feed, "truck-away", INSIDE)
    truck = (await w.client.get("/api/vehicles/truck-away", headers=transport)).json()
    assert {k: truck[k] for k in ("cargo", "escort", "driver_phone", "company", "home_district")} == {
        "cargo": "液氯",
        "escort": "张敏",
        "driver_phone": "13900002001",
        "company": "苏州工业园区危运有限公司",
        "home_district": "江苏省苏州市",
    }
    assert [c["id"] for c in truck["cameras"]] == ["truck-away"]
    assert (await w.client.get("/api/vehicles/truck-away", headers=root)).status_code == 200
    await _drive(w, feed, "truck-away", OUTSIDE)
    for who in (transport, root):
        assert (await w.client.get("/api/vehicles/truck-away", headers=who)).status_code == 404

    # 上海市闵行区 is the home district: that truck is shared without any fix.
    own = (await w.client.get("/api/vehicles/truck-sh", headers=transport)).json()
    assert own["home_district"] == "闵行区" and own["cargo"] == "汽油"

    # A bus with GPS but no camera yet is on the map (and has a panel) for whoever watches buses.
    await _drive(w, feed, "bus-nocam", INSIDE)
    listed = {v["id"]: v for v in (await w.client.get("/api/vehicles", headers=transport)).json()}
    assert listed["bus-nocam"]["cameras"] == [] and listed["bus-nocam"]["position"]["lat"] == INSIDE[0]
    panel = (await w.client.get("/api/vehicles/bus-nocam", headers=transport)).json()
    assert panel["line"] == "闵行12路" and panel["cameras"] == []
    assert "bus-nocam" not in {v["id"] for v in (await w.client.get("/api/vehicles", headers=other)).json()}
    assert (await w.client.get("/api/vehicles/bus-nocam", headers=other)).status_code == 404
