"""Viewing policy through the admin API: grants, groups, denies, windows, location, incidents, history."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from acl.models import Role
from tests.acl.conftest import World


async def member(w: World, user: str, dept: str, role: str = "member") -> None:
    await w.ok("PUT", f"/api/admin/users/{w.ids[user]}/memberships/{dept}", json={"role": role})


async def test_deny_by_default_and_department_group_grant(world: World) -> None:
    w = world
    op = await w.user("op-qb")
    assert await w.visible(op) == set()
    await member(w, "op-qb", "qibao")
    await w.ok("PUT", "/api/admin/groups/area-qibao", json={"name": "七宝镇全部", "filter": {"area": ["七宝镇"]}})
    await w.ok(
        "POST", "/api/admin/rules", json={"subject": "dept:qibao", "target": "group:area-qibao", "action": "view_live"}
    )
    assert await w.visible(op) == {"qb-1", "qb-2"}
    assert (await w.client.get("/api/cameras/qb-1", headers=op)).status_code == 200
    assert (await w.client.get("/api/cameras/xz-1", headers=op)).status_code == 403
    me = (await w.client.get("/api/auth/me", headers=op)).json()
    assert me["departments"] == ["qibao"]
    # The area group follows the inventory: a camera moved to another area, or deleted, leaves it.
    root = w.sec_root  # type: ignore[attr-defined]
    r = await w.client.patch("/api/cameras/xz-1", json={"area": "七宝镇"}, headers=root)
    assert r.status_code == 200, r.text
    assert await w.visible(op) == {"qb-1", "qb-2", "xz-1"}
    assert (await w.client.patch("/api/cameras/qb-2", json={"area": "莘庄镇"}, headers=root)).status_code == 200
    assert (await w.client.delete("/api/cameras/qb-1", headers=root)).status_code == 204
    assert await w.visible(op) == {"xz-1"}


async def test_static_group_role_grant_and_action_levels(world: World) -> None:
    w = world
    op = await w.user("op-static")
    await w.ok("PUT", "/api/admin/groups/hot", json={"name": "重点", "cameras": ["xz-1", "qb-2"]})
    await w.ok(
        "POST", "/api/admin/rules", json={"subject": "role:operator", "target": "group:hot", "action": "view_snapshot"}
    )
    assert await w.visible(op) == {"xz-1", "qb-2"}
    acl = w.acl
    subj = acl.decider.subject_for(w.ids["op-static"], "op-static", "operator")
    assert acl.decider.authorize(subj, "view_snapshot", "xz-1")
    assert not acl.decider.authorize(subj, "view_live", "xz-1")  # a snapshot grant does not give live video
    await w.ok("POST", "/api/admin/rules", json={"subject": "role:operator", "target": "cam:xz-1", "action": "manage"})
    assert acl.decider.authorize(subj, "view_live", "xz-1")  # manage implies view_live


async def test_dynamic_group_follows_inventory(world: World) -> None:
    w = world
    op = await w.user("op-bus")
    await member(w, "op-bus", "transport")
    await w.ok("PUT", "/api/admin/groups/buses", json={"name": "公交", "filter": {"kind": ["bus"]}})
    await w.ok(
        "POST", "/api/admin/rules", json={"subject": "dept:transport", "target": "group:buses", "action": "view_live"}
    )
    assert await w.visible(op) == {"bus-1-front"}
    r = await w.client.post(
        "/api/cameras",
        json={"id": "bus-1-inside", "name": "车内", "kind": "bus", "vehicle_id": "bus-1", "source_url": "rtsp://h/p"},
        headers=w.sec_root,  # type: ignore[attr-defined]
    )
    assert r.status_code == 201, r.text
    assert await w.visible(op) == {"bus-1-front", "bus-1-inside"}
    members = await w.ok("GET", "/api/admin/groups/buses/cameras")
    assert members == ["bus-1-front", "bus-1-inside"]


async def test_deny_overrides_allow(world: World) -> None:
    w = world
    op = await w.user("op-deny")
    await member(w, "op-deny", "police")
    await w.ok("PUT", "/api/admin/groups/all-fixed", json={"name": "固定", "filter": {"kind": ["fixed"]}})
    await w.ok(
        "POST", "/api/admin/rules", json={"subject": "dept:police", "target": "group:all-fixed", "action": "view_live"}
    )
    assert await w.visible(op) == {"qb-1", "qb-2", "xz-1"}
    deny = await w.ok(
        "POST",
        "/api/admin/rules",
        json={"subject": "dept:police", "target": "cam:qb-2", "action": "view_snapshot", "effect": "deny"},
    )
    assert await w.visible(op) == {"qb-1", "xz-1"}
    why = await w.ok("GET", "/api/admin/explain/user/" + str(w.ids["op-deny"]))
    assert why["total"] == 2
    await w.ok("DELETE", f"/api/admin/rules/{deny['id']}")
    assert await w.visible(op) == {"qb-1", "qb-2", "xz-1"}


async def test_validity_window(world: World) -> None:
    w = world
    op = await w.user("op-window")
    now = dt.datetime.now(dt.UTC)
    await w.ok(
        "POST",
        "/api/admin/rules",
        json={
            "subject": "role:operator",
            "target": "cam:qb-1",
            "action": "view_live",
            "not_before": (now + dt.timedelta(seconds=1.5)).isoformat(),
            "not_after": (now + dt.timedelta(seconds=3)).isoformat(),
        },
    )
    assert await w.visible(op) == set()
    await asyncio.sleep(1.7)
    assert await w.visible(op) == {"qb-1"}  # opens by itself
    await asyncio.sleep(1.5)
    assert await w.visible(op) == set()  # and closes by itself


async def test_incident_grant_expires_and_is_revocable(world: World) -> None:
    w = world
    op = await w.user("op-inc")
    await member(w, "op-inc", "police")
    until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)
    await w.acl.changes.grant_incident("alarm", "INC-1", ["police"], ["bus-1-front", "qb-2"], until)
    assert await w.visible(op) == {"bus-1-front", "qb-2"}
    rules = await w.ok("GET", "/api/admin/rules?subject=dept:police")
    assert {r["tag"] for r in rules} == {"incident:INC-1"}
    await asyncio.sleep(1.7)
    assert await w.visible(op) == set()
    await w.ok(
        "POST",
        "/api/admin/incident-grants",
        json={"incident_id": "INC-2", "departments": ["police"], "cameras": ["qb-1"]},
    )
    assert await w.visible(op) == {"qb-1"}
    assert (await w.ok("DELETE", "/api/admin/incident-grants/INC-2"))["revoked"] == 1
    assert await w.visible(op) == set()
    r = await w.client.delete("/api/admin/incident-grants/INC-2", headers=w.sec)
    assert r.status_code == 404


async def test_truck_location_rule_both_ways(world: World) -> None:
    w = world
    op = await w.user("op-truck")
    await member(w, "op-truck", "police")
    await w.ok("PUT", "/api/admin/groups/trucks", json={"name": "危化车", "filter": {"kind": ["truck"]}})
    await w.ok(
        "POST", "/api/admin/rules", json={"subject": "dept:police", "target": "group:trucks", "action": "view_live"}
    )
    rules = await w.ok("GET", "/api/admin/rules?subject=*")
    assert [r["tag"] for r in rules] == ["location"]  # the rule is part of the policy
    # The district's own truck is visible anywhere; the other one not while outside (or unknown).
    assert await w.visible(op) == {"truck-home"}
    w.acl.location.update_vehicle_position("truck-away", 31.15, 121.40)  # inside Minhang
    w.acl.location.update_vehicle_position("truck-home", 31.40, 121.10)  # far outside: still visible
    assert await w.visible(op) == {"truck-home", "truck-away"}
    w.acl.location.update_vehicle_position("truck-away", 31.30, 121.25)  # leaves the district
    assert await w.visible(op) == {"truck-home"}
    w.acl.location.update_vehicle_position("truck-away", 31.15, 121.40, at=time.time() - 10)  # older fix: ignored
    assert await w.visible(op) == {"truck-home"}
    w.acl.location.update_vehicle_position("truck-away", 31.12, 121.45)
    assert await w.visible(op) == {"truck-home", "truck-away"}


async def test_explain_who_can_view(world: World) -> None:
    w = world
    await w.user("op-a")
    await w.user("op-b")
    await member(w, "op-a", "qibao")
    rule = await w.ok(
        "POST", "/api/admin/rules", json={"subject": "dept:qibao", "target": "cam:qb-1", "action": "view_live"}
    )
    who = await w.ok("GET", "/api/admin/explain/camera/qb-1")
    names = {u["username"]: u for u in who["users"]}
    assert "op-a" in names and "op-b" not in names
    assert names["op-a"]["rules"][0]["id"] == rule["id"]
    assert names["root"]["because"] == "system role admin"
    what = await w.ok("GET", f"/api/admin/explain/user/{w.ids['op-a']}")
    assert what["cameras"] == [{"camera_id": "qb-1", "rules": names["op-a"]["rules"]}]


async def test_revisions_and_rollback(world: World) -> None:
    w = world
    op = await w.user("op-rb")
    await member(w, "op-rb", "qibao")
    base = (await w.ok("GET", "/api/admin/revisions?limit=1"))[0]["id"]
    await w.ok("PUT", "/api/admin/groups/g1", json={"name": "g1", "cameras": ["qb-1", "xz-1"], "reason": "test"})
    await w.ok("POST", "/api/admin/rules", json={"subject": "dept:qibao", "target": "group:g1", "action": "view_live"})
    await w.ok("DELETE", f"/api/admin/users/{w.ids['op-rb']}/memberships/qibao")
    assert await w.visible(op) == set()
    revs = await w.ok("GET", "/api/admin/revisions?limit=3")
    assert [r["author"] for r in revs] == ["secadmin"] * 3
    assert revs[0]["changes"][0]["kind"] == "membership"
    assert revs[2]["reason"] == "test"
    # Roll back to just after the grant: membership comes back, the grant stays.
    await w.ok("POST", f"/api/admin/revisions/{revs[1]['id']}/rollback", json={"reason": "undo"})
    assert await w.visible(op) == {"qb-1", "xz-1"}
    # Roll back to before the group: group and grant disappear.
    await w.ok("POST", f"/api/admin/revisions/{base}/rollback", json={})
    assert await w.visible(op) == set()
    groups = await w.ok("GET", "/api/admin/groups")
    assert "g1" not in {g["id"] for g in groups}


async def test_bad_input_names_the_field(world: World) -> None:
    w = world
    cases = [
        ("/api/admin/rules", {"subject": "bogus", "target": "cam:x", "action": "view_live"}, "subject"),
        ("/api/admin/rules", {"subject": "dept:nope", "target": "cam:x", "action": "view_live"}, "subject"),
        ("/api/admin/rules", {"subject": "*", "target": "cam:x", "action": "fly"}, "action"),
        ("/api/admin/rules", {"subject": "*", "target": "group:nope", "action": "view_live"}, "target"),
        ("/api/admin/rules", {"subject": "*", "target": "cam:x", "action": "view_live", "effect": "maybe"}, "effect"),
    ]
    before = len(await w.ok("GET", "/api/admin/revisions?limit=500"))
    for url, body, field in cases:
        r = await w.client.post(url, json=body, headers=w.sec)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["field"] == field, r.text
    r = await w.client.put("/api/admin/groups/x", json={"name": "x", "filter": {"colour": ["red"]}}, headers=w.sec)
    assert r.status_code == 422 and "filter.colour" in r.text
    r = await w.client.put("/api/admin/departments/bad id", json={"name": "x"}, headers=w.sec)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "id"
    assert len(await w.ok("GET", "/api/admin/revisions?limit=500")) == before  # nothing half-applied


async def test_roles_guard_admin_api(world: World) -> None:
    w = world
    op = await w.user("op-plain")
    aud = await w.user("aud", Role.auditor)
    assert (await w.client.post("/api/admin/rules", json={}, headers=op)).status_code == 403
    assert (await w.client.get("/api/admin/rules", headers=op)).status_code == 403
    assert (await w.client.get("/api/admin/rules", headers=aud)).status_code == 200
    r = await w.client.post(
        "/api/admin/rules", json={"subject": "*", "target": "cam:qb-1", "action": "view_live"}, headers=aud
    )
    assert r.status_code == 403
    r = await w.client.post(
        "/api/admin/users", json={"username": "x", "password": "longenough", "role": "admin"}, headers=w.sec
    )
    assert r.status_code == 403
