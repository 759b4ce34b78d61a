"""Panic alarms: HMAC, idempotency, camera resolution, routing, incident grants, workflow, events."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

from acl.models import Role
from gateway.events import EventBus
from tests.acl.conftest import World


def signed(secret: str, body: dict[str, Any], source: str = "bus-gps", ts: float | None = None) -> dict[str, Any]:
    raw = json.dumps(body, ensure_ascii=False).encode()
    t = str(int(ts if ts is not None else time.time()))
    sig = hmac.new(secret.encode(), t.encode() + b"." + raw, hashlib.sha256).hexdigest()
    headers = {
        "X-Liandong-Source": source,
        "X-Liandong-Timestamp": t,
        "X-Liandong-Signature": f"sha256={sig}",
        "Content-Type": "application/json",
    }
    return {"content": raw, "headers": headers}


async def setup(w: World) -> str:
    r = await w.client.post("/api/admin/alarm-sources", json={"name": "bus-gps"}, headers=w.sec)
    assert r.status_code == 201
    feed = await w.user("feed", Role.integration)
    now = time.time()
    fixes = [{"vehicle_id": "bus-1", "lat": 31.1552, "lon": 121.3502, "time": now}]
    assert (await w.client.post("/api/vehicles/positions", json=fixes, headers=feed)).json()["accepted"] == 1
    return str(r.json()["secret"])


async def test_hmac_idempotency_and_resolution(world: World) -> None:
    w = world
    secret = await setup(w)
    alarm = {
        "alarm_id": "A-1",
        "type": "panic",
        "vehicle_id": "bus-1",
        "time": "2026-11-28T08:00:00+08:00",
        "text": "司机按下报警",
    }
    r = await w.client.post("/api/alarms", **signed(secret, alarm))
    assert r.status_code == 202, r.text
    inc_id = r.json()["incident_id"]
    again = await w.client.post("/api/alarms", **signed(secret, alarm))  # replay / retry
    assert again.status_code == 200 and again.json() == {"incident_id": inc_id, "duplicate": True}
    bad = [
        signed("wrong-secret", alarm),
        signed(secret, alarm, ts=time.time() - 3600),  # stale
        signed(secret, alarm, source="nobody"),
        {**signed(secret, alarm), "content": json.dumps({**alarm, "text": "tampered"}).encode()},
    ]
    for req in bad:
        r = await w.client.post("/api/alarms", **req)
        assert r.status_code == 401, r.text
    rejected = await w.app.state.ld.audit.query(kind="alarm_rejected")
    assert len(rejected) == 4
    inc = (await w.client.get(f"/api/incidents/{inc_id}", headers=w.sec_root)).json()  # type: ignore[attr-defined]
    assert inc["cameras"][0] == "bus-1-front"  # the bus's own camera first
    assert set(inc["cameras"][1:]) == {"qb-1", "qb-2"}  # then fixed cameras around it
    assert inc["area"] == "七宝镇"
    assert set(inc["departments"]) == {"district", "police", "qibao"}  # routing table + the area's centre
    # The departments on duty got incident grants; others did not.
    pol = await w.user("pol")
    await w.ok("PUT", f"/api/admin/users/{w.ids['pol']}/memberships/police", json={})
    other = await w.user("tr")
    await w.ok("PUT", f"/api/admin/users/{w.ids['tr']}/memberships/transport", json={})
    assert await w.visible(pol) == {"bus-1-front", "qb-1", "qb-2"}
    assert await w.visible(other) == set()
    assert (await w.client.get(f"/api/incidents/{inc_id}", headers=other)).status_code == 404
    # Position only (no vehicle): the nearest fresh bus camera and the fixed ones.
    r = await w.client.post(
        "/api/alarms", **signed(secret, {"alarm_id": "A-2", "type": "fight", "lat": 31.1555, "lon": 121.3505})
    )
    inc2 = (await w.client.get(f"/api/incidents/{r.json()['incident_id']}", headers=w.sec)).json()
    assert inc2["cameras"][0] == "bus-1-front"
    r = await w.client.post("/api/alarms", **signed(secret, {"alarm_id": "A-3", "lat": 100, "lon": 1}))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "lat"


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
    inc = (await w.client.get(f"/api/incidents/{r.json()['incident_id']}", headers=w.sec)).json()
    assert inc["cameras"][0] == "bus-2-front"


async def test_workflow_deadlines_escalation_and_close(world: World) -> None:
    w = world
    secret = await setup(w)
    r = await w.client.post("/api/alarms", **signed(secret, {"alarm_id": "C-1", "vehicle_id": "bus-1"}))
    inc_id = r.json()["incident_id"]
    sec = w.sec

    async def step(action: str, **body: Any) -> Any:
        return await w.client.post(f"/api/incidents/{inc_id}/{action}", json=body, headers=sec)

    assert (await step("resolve")).status_code == 409  # not from "new"
    r = await step("dispatch", department="police")
    assert r.status_code == 200 and r.json()["state"] == "dispatched"
    assert r.json()["onsite_deadline"] and r.json()["resolve_deadline"]
    assert (await step("escalate")).json()["level"] == "district"
    assert (await step("escalate")).status_code == 409
    assert (await step("note", text="已联系驾驶员")).status_code == 200
    for action, state in (("acknowledge", "acknowledged"), ("onsite", "on_site"), ("resolve", "resolved")):
        assert (await step(action)).json()["state"] == state
    stats = (await w.client.get("/api/incidents/stats", headers=sec)).json()
    assert stats["by_area"]["七宝镇"]["handled_pct"] == 100.0
    assert stats["by_department"]["police"]["total"] == 1
    rules = await w.ok("GET", "/api/admin/rules")
    assert any(r["tag"] == f"incident:{inc_id}" for r in rules)
    r = await step("close")
    assert r.json()["state"] == "closed"
    assert [h["action"] for h in r.json()["history"]] == [
        "opened",
        "dispatch",
        "escalate",
        "note",
        "acknowledge",
        "onsite",
        "resolve",
        "close",
    ]
    rules = await w.ok("GET", "/api/admin/rules")
    assert not any(r["tag"] == f"incident:{inc_id}" for r in rules)  # closing ended its grants
    audit = await w.app.state.ld.audit.query(kind="incident")
    assert len(audit) == 7  # every step by whom and when (opening is audited as the alarm)


async def test_event_bus_filters_and_resumes() -> None:
    bus = EventBus(keep=100)
    e1 = bus.publish("incident.opened", {"incident_id": "X"}, ("a", "b"))
    bus.publish("incident.opened", {"incident_id": "Y"}, ("c",))
    e3 = bus.publish("incident.updated", {"incident_id": "X"}, ("a",))
    gen: Any = bus.stream(lambda cam: cam in ("a", "b"), last_id=e1.id - 1)
    first = await gen.__anext__()
    assert f"id: {e1.id}" in first and '"cameras": ["a", "b"]' in first
    second = await gen.__anext__()
    assert f"id: {e3.id}" in second  # Y (camera c) is not for this user
    assert (await gen.__anext__()).startswith(": connected")
    live = asyncio.ensure_future(gen.__anext__())
    await asyncio.sleep(0)
    bus.publish("incident.opened", {"incident_id": "Z"}, ("b", "c"))
    text = await asyncio.wait_for(live, 2)
    assert '"cameras": ["b"]' in text  # only the cameras the user may view
    await gen.aclose()


async def test_follow_mode_adds_cameras_as_the_bus_moves(world: World) -> None:
    w = world
    secret = await setup(w)
    r = await w.client.post("/api/alarms", **signed(secret, {"alarm_id": "F-1", "vehicle_id": "bus-1"}))
    inc_id = r.json()["incident_id"]
    before = (await w.client.get(f"/api/incidents/{inc_id}", headers=w.sec)).json()["cameras"]
    assert "xz-1" not in before
    feed = await w.user("feed-f", Role.integration)
    await asyncio.sleep(2.1)  # follow updates are throttled per vehicle
    fix = [{"vehicle_id": "bus-1", "lat": 31.1101, "lon": 121.3851, "time": time.time()}]  # now at 莘庄广场
    assert (await w.client.post("/api/vehicles/positions", json=fix, headers=feed)).json()["accepted"] == 1
    for _ in range(50):
        after = (await w.client.get(f"/api/incidents/{inc_id}", headers=w.sec)).json()["cameras"]
        if "xz-1" in after:
            break
        await asyncio.sleep(0.05)
    assert after == [*before, "xz-1"]
    pol = await w.user("pol-f")
    await w.ok("PUT", f"/api/admin/users/{w.ids['pol-f']}/memberships/police", json={})
    assert "xz-1" in await w.visible(pol)  # the incident grant follows the bus too
