"""Panic alarms: HMAC, idempotency, camera resolution, routing, incident grants, follow mode."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Any

from acl.models import Role
from gateway.alarms.hmac_auth import sign
from gateway.alarms.routing import on_duty
from gateway.refusals import refusal_count
from tests.acl.conftest import World


def signed(secret: str, body: dict[str, Any], source: str = "bus-gps", ts: float | str | None = None) -> dict[str, Any]:
    """Request arguments for a signed ``POST /api/alarms``."""
    raw = json.dumps(body, ensure_ascii=False).encode()
    t = ts if isinstance(ts, str) else str(int(ts if ts is not None else time.time()))
    headers = {
        "X-Liandong-Source": source,
        "X-Liandong-Timestamp": t,
        "X-Liandong-Signature": sign(secret, t, raw),
        "Content-Type": "application/json",
    }
    return {"content": raw, "headers": headers}


async def setup(w: World) -> str:
    """A registered source and a fresh fix of bus-1 at 七宝老街; returns the source's secret."""
    r = await w.client.post("/api/admin/alarm-sources", json={"name": "bus-gps"}, headers=w.sec)
    assert r.status_code == 201
    feed = await w.user("feed", Role.integration)
    now = time.time()
    fixes = [{"vehicle_id": "bus-1", "lat": 31.1552, "lon": 121.3502, "time": now}]
    assert (await w.client.post("/api/vehicles/positions", json=fixes, headers=feed)).json()["accepted"] == 1
    return str(r.json()["secret"])


async def member(w: World, name: str, dept: str) -> dict[str, str]:
    headers = await w.user(name)
    await w.ok("PUT", f"/api/admin/users/{w.ids[name]}/memberships/{dept}", json={})
    return headers


async def test_hmac_good_bad_stale_replayed(world: World) -> None:
    w = world
    secret = await setup(w)
    alarm = {"alarm_id": "A-1", "type": "panic", "vehicle_id": "bus-1", "time": "2026-11-28T08:00:00+08:00"}
    r = await w.client.post("/api/alarms", **signed(secret, alarm))
    assert r.status_code == 202, r.text
    inc_id = r.json()["incident_id"]
    again = await w.client.post("/api/alarms", **signed(secret, alarm))  # the same request replayed
    assert again.status_code == 200 and again.json() == {"incident_id": inc_id, "duplicate": True}
    ok = signed(secret, alarm)
    bad = [
        signed("wrong-secret", alarm),
        signed(secret, alarm, ts=time.time() - 3600),  # stale
        signed(secret, alarm, ts=time.time() + 3600),  # from the future
        signed(secret, alarm, ts="nan"),  # not unix seconds (NaN would pass a naive window check)
        signed(secret, alarm, source="nobody"),
        {**ok, "content": json.dumps({**alarm, "text": "tampered"}).encode()},
        {**ok, "headers": {**ok["headers"], "X-Liandong-Signature": "md5=abc"}},
        {**ok, "headers": {k: v for k, v in ok["headers"].items() if k != "X-Liandong-Signature"}},
    ]
    for req in bad:
        r = await w.client.post("/api/alarms", **req)
        assert r.status_code == 401, r.text
    assert "secret" not in r.text.lower() or "wrong" not in r.text
    await w.app.state.ld.refusals.flush(close_all=True)  # audited in aggregate: the first, then the count
    rejected = await w.app.state.ld.audit.query(kind="alarm_rejected")
    assert len(rejected) == 2 and sum(refusal_count(e.detail, e.start) for e in rejected) == len(bad)
    # Rotation: the old secret stops working at once; disabling refuses the source.
    new = (await w.client.post("/api/admin/alarm-sources/bus-gps/rotate", headers=w.sec)).json()["secret"]
    assert (await w.client.post("/api/alarms", **signed(secret, {**alarm, "alarm_id": "A-9"}))).status_code == 401
    assert (await w.client.post("/api/alarms", **signed(new, {**alarm, "alarm_id": "A-9"}))).status_code == 202
    r = await w.client.patch("/api/admin/alarm-sources/bus-gps", json={"active": False}, headers=w.sec)
    assert r.status_code == 200
    assert (await w.client.post("/api/alarms", **signed(new, {**alarm, "alarm_id": "A-10"}))).status_code == 401
    listed = (await w.client.get("/api/admin/alarm-sources", headers=w.sec)).json()
    assert listed[0]["name"] == "bus-gps" and not listed[0]["active"] and "secret" not in json.dumps(listed)
    op = await w.user("op-x")
    assert (await w.client.get("/api/admin/alarm-sources", headers=op)).status_code == 403


async def test_bad_alarm_bodies_name_the_field(world: World) -> None:
    w = world
    secret = await setup(w)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"alarm_id": "B", "lat": 100, "lon": 1}, "lat"),
        ({"alarm_id": "B", "lat": 31.1}, "lon"),
        ({"alarm_id": "B"}, "vehicle_id"),
        ({"vehicle_id": "bus-1"}, "alarm_id"),
        ({"alarm_id": "B", "vehicle_id": "bus-1", "time": "yesterday"}, "time"),
        ({"alarm_id": "B", "vehicle_id": "bus-1", "colour": "red"}, "colour"),
        ({"alarm_id": "B", "vehicle_id": "bus-1", "type": "x y"}, "type"),
    ]
    for body, field in cases:
        r = await w.client.post("/api/alarms", **signed(secret, body))
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, (body, r.text)
    r = await w.client.post("/api/alarms", **{**signed(secret, {}), "content": b"[1, 2"})
    assert r.status_code == 401  # the signature covers the body: a changed body is not signed
    raw = b"not json"
    t = str(int(time.time()))
    h = {"X-Liandong-Source": "bus-gps", "X-Liandong-Timestamp": t, "X-Liandong-Signature": sign(secret, t, raw)}
    r = await w.client.post("/api/alarms", content=raw, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body"


async def test_resolution_routing_and_grants(world: World) -> None:
    w = world
    secret = await setup(w)
    r = await w.client.post(
        "/api/alarms", **signed(secret, {"alarm_id": "A-1", "vehicle_id": "bus-1", "text": "司机报警"})
    )
    inc_id = r.json()["incident_id"]
    inc = (await w.client.get(f"/api/incidents/{inc_id}", headers=w.sec_root)).json()  # type: ignore[attr-defined]
    assert inc["cameras"][0] == "bus-1-front"  # the bus's own camera first
    assert set(inc["cameras"][1:]) == {"qb-1", "qb-2"}  # then fixed cameras around it
    assert inc["area"] == "七宝镇" and inc["state"] == "new" and inc["text"] == "司机报警"
    assert inc["departments"] == ["district", "police", "qibao"]  # routing table + the area's centre
    # The departments on duty got incident grants; others did not.
    pol = await member(w, "pol", "police")
    other = await member(w, "tr", "transport")
    assert await w.visible(pol) == {"bus-1-front", "qb-1", "qb-2"}
    assert await w.visible(other) == set()
    assert (await w.client.get(f"/api/incidents/{inc_id}", headers=other)).status_code == 404
    assert [i["id"] for i in (await w.client.get("/api/incidents", headers=pol)).json()] == [inc_id]
    assert (await w.client.get("/api/incidents", headers=other)).json() == []


async def test_alarm_with_only_a_position(world: World) -> None:
    w = world
    secret = await setup(w)
    # Position only (no vehicle): the nearest fresh bus camera and the fixed ones.
    r = await w.client.post(
        "/api/alarms", **signed(secret, {"alarm_id": "A-2", "type": "fight", "lat": 31.1555, "lon": 121.3505})
    )
    inc2 = (await w.client.get(f"/api/incidents/{r.json()['incident_id']}", headers=w.sec_root)).json()  # type: ignore[attr-defined]
    assert inc2["cameras"][0] == "bus-1-front" and inc2["type"] == "fight"
    # Far from every camera and no vehicle: no cameras, only the district centre's routes apply.
    r = await w.client.post("/api/alarms", **signed(secret, {"alarm_id": "A-3", "lat": 30.5, "lon": 121.9}))
    inc3 = (await w.client.get(f"/api/incidents/{r.json()['incident_id']}", headers=w.sec_root)).json()  # type: ignore[attr-defined]
    assert inc3["cameras"] == [] and inc3["area"] == "" and inc3["departments"] == ["district", "police"]


async def test_routing_table_from_the_admin_api(world: World) -> None:
    w = world
    secret = await setup(w)
    r = await w.client.post(
        "/api/admin/alarm-routes", json={"area": "七宝镇", "type": "fire", "departments": ["transport"]}, headers=w.sec
    )
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    bad = [
        ({"departments": ["nope"]}, "departments"),
        ({"departments": []}, "departments"),
        ({"departments": ["police"], "hours": "25:00-08:00"}, "hours"),
        ({"departments": ["police"], "extra": 1}, "extra"),
    ]
    for body, field in bad:
        r = await w.client.post("/api/admin/alarm-routes", json=body, headers=w.sec)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, r.text
    routes = (await w.client.get("/api/admin/alarm-routes", headers=w.sec)).json()
    assert [(x["source"], x["departments"]) for x in routes] == [
        ("settings", ["district", "police"]),
        ("api", ["transport"]),
    ]
    r = await w.client.post(
        "/api/alarms", **signed(secret, {"alarm_id": "R-1", "type": "fire", "lat": 31.1552, "lon": 121.3502})
    )
    inc = (await w.client.get(f"/api/incidents/{r.json()['incident_id']}", headers=w.sec_root)).json()  # type: ignore[attr-defined]
    assert inc["departments"] == ["district", "police", "transport", "qibao"]
    r = await w.client.post(
        "/api/alarms", **signed(secret, {"alarm_id": "R-2", "type": "panic", "lat": 31.1552, "lon": 121.3502})
    )
    inc = (await w.client.get(f"/api/incidents/{r.json()['incident_id']}", headers=w.sec_root)).json()  # type: ignore[attr-defined]
    assert "transport" not in inc["departments"]  # the route is for fires only
    assert (await w.client.delete(f"/api/admin/alarm-routes/{rid}", headers=w.sec)).status_code == 200
    assert (await w.client.delete(f"/api/admin/alarm-routes/{rid}", headers=w.sec)).status_code == 404
    assert len((await w.client.get("/api/admin/alarm-routes", headers=w.sec)).json()) == 1


def test_on_duty_hours() -> None:
    t = dt.time.fromisoformat
    assert on_duty("", t("03:00"))
    assert on_duty("08:00-20:00", t("08:00")) and not on_duty("08:00-20:00", t("20:00"))
    assert on_duty("20:00-08:00", t("23:59")) and on_duty("20:00-08:00", t("07:59"))
    assert not on_duty("20:00-08:00", t("12:00"))


async def test_offline_bus_camera_falls_back_to_nearest(world: World) -> None:
    w = world
    secret = await setup(w)
    ld = w.app.state.ld
    from camera_registry.models import CameraStatus

    # A second bus nearby; the first bus's camera is offline.
    await ld.store.set_status("bus-1-front", CameraStatus.offline, reason="connection refused")
    r = await w.client.post(
        "/api/cameras",
        json={"id": "bus-2-front", "name": "2", "kind": "bus", "vehicle_id": "truck-home", "source_url": "rtsp://h/p"},
        headers=w.sec_root,  # type: ignore[attr-defined]
    )
    assert r.status_code == 201
    feed = await w.user("feed2", Role.integration)
    fix = [{"vehicle_id": "truck-home", "lat": 31.156, "lon": 121.351, "time": time.time()}]
    await w.client.post("/api/vehicles/positions", json=fix, headers=feed)
    r = await w.client.post("/api/alarms", **signed(secret, {"alarm_id": "B-1", "vehicle_id": "bus-1"}))
    inc = (await w.client.get(f"/api/incidents/{r.json()['incident_id']}", headers=w.sec_root)).json()  # type: ignore[attr-defined]
    assert inc["cameras"][0] == "bus-2-front"
    assert "bus-1-front" not in inc["cameras"]
    # The offline camera's position is still used to find what is around it.
    assert inc["lat"] == 31.1552


async def test_follow_mode_as_the_bus_moves(world: World) -> None:
    w = world
    secret = await setup(w)
    r = await w.client.post("/api/alarms", **signed(secret, {"alarm_id": "F-1", "vehicle_id": "bus-1"}))
    inc_id = r.json()["incident_id"]
    root = w.sec_root  # type: ignore[attr-defined]
    before = (await w.client.get(f"/api/incidents/{inc_id}", headers=root)).json()["cameras"]
    assert "xz-1" not in before
    feed = await w.user("feed-f", Role.integration)
    # An older fix (from before the alarm) does not move the incident.
    old = [{"vehicle_id": "bus-1", "lat": 31.1101, "lon": 121.3851, "time": time.time() - 600}]
    assert (await w.client.post("/api/vehicles/positions", json=old, headers=feed)).json()["not_current"] == 1
    await asyncio.sleep(0.2)
    assert (await w.client.get(f"/api/incidents/{inc_id}", headers=root)).json()["cameras"] == before
    fix = [{"vehicle_id": "bus-1", "lat": 31.1101, "lon": 121.3851, "time": time.time()}]  # now at 莘庄广场
    assert (await w.client.post("/api/vehicles/positions", json=fix, headers=feed)).json()["accepted"] == 1
    for _ in range(50):
        inc = (await w.client.get(f"/api/incidents/{inc_id}", headers=root)).json()
        if "xz-1" in inc["cameras"]:
            break
        await asyncio.sleep(0.05)
    assert inc["cameras"] == [*before, "xz-1"]
    assert (inc["lat"], inc["lon"]) == (31.1101, 121.3851)
    assert inc["history"][-1]["action"] == "cameras" and inc["history"][-1]["added"] == ["xz-1"]
    pol = await member(w, "pol-f", "police")
    assert "xz-1" in await w.visible(pol)  # the incident grant follows the bus too
