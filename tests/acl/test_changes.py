"""Policy changes patch the running index: it must always equal a fresh load and Casbin's answers."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest

from acl.equivalence import reference_from_database
from acl.index import ACTION_LEVEL
from acl.models import Role
from acl.service import AclService, build_acl
from tests.acl.conftest import World
from tests.acl.test_revocation import open_session

FIXES = [("truck-away", 31.15, 121.40), ("truck-home", 31.40, 121.10)]


async def member(w: World, user: str, dept: str, role: str = "member") -> None:
    await w.ok("PUT", f"/api/admin/users/{w.ids[user]}/memberships/{dept}", json={"role": role})


async def rule(w: World, sub: str, target: str, action: str = "view_live", effect: str = "allow") -> int:
    body = {"subject": sub, "target": target, "action": action, "effect": effect}
    return int((await w.ok("POST", "/api/admin/rules", json=body))["id"])


async def assert_consistent(w: World, step: str) -> None:
    """Every (user, camera, action): patched index == freshly loaded service == plain Casbin."""
    ld = w.app.state.ld
    live: AclService = w.acl
    fresh = build_acl(ld.settings.acl, ld.db, ld.store, ld.audit, sessions=[])
    await fresh.load()
    now = time.time()
    for vid, lat, lon in FIXES:
        fresh.location.update_vehicle_position(vid, lat, lon, now)
    ref = await asyncio.to_thread(
        reference_from_database,
        ld.db.sync_engine(),
        home_district=ld.settings.acl.home_district,
        district_geojson=ld.settings.acl.district_geojson,
        positions=[(v, la, lo, now) for v, la, lo in FIXES],
        now=now,
    )
    checked = 0
    for uid, name, role in ref.users:
        if role == Role.admin.value:
            continue
        a, b = live.decider.subject_for(uid, name, role), fresh.decider.subject_for(uid, name, role)
        assert a == b, step
        for cid in ref.cameras:
            for act in ACTION_LEVEL:
                want = bool(ref.enforcer.enforce(f"user:{uid}", f"cam:{cid}", act))
                assert live.decider.authorize(a, act, cid, now=now) == want, (step, name, cid, act, want)
                assert fresh.decider.authorize(b, act, cid, now=now) == want, (step, name, cid, act, want)
                checked += 1
    assert checked >= 6 * 3, step


async def test_every_kind_of_change_keeps_index_equal_to_fresh_load(world: World) -> None:
    w = world
    for vid, lat, lon in FIXES:
        w.acl.location.update_vehicle_position(vid, lat, lon, time.time())
    for name in ("ann", "bob", "cat"):
        await w.user(name)
    await w.user("aud-x", Role.auditor)
    await member(w, "ann", "qibao")
    await member(w, "bob", "police")
    await member(w, "cat", "police", "lead")
    await w.ok("PUT", "/api/admin/groups/area-qb", json={"name": "七宝", "filter": {"area": ["七宝镇"]}})
    await w.ok("PUT", "/api/admin/groups/crossings", json={"name": "路口", "filter": {"tag": ["路口"]}})
    await w.ok("PUT", "/api/admin/groups/trucks", json={"name": "危化车", "filter": {"kind": ["truck"]}})
    await w.ok("PUT", "/api/admin/groups/hot", json={"name": "重点", "cameras": ["xz-1", "qb-2"]})
    await rule(w, "dept:qibao", "group:area-qb")
    await rule(w, "dept:police", "group:trucks")
    await rule(w, "role:lead", "group:hot", "manage")
    await rule(w, "*", "group:crossings", "view_snapshot")
    deny = await rule(w, "dept:police", "cam:truck-home", "view_live", "deny")
    await assert_consistent(w, "initial")
    base = (await w.ok("GET", "/api/admin/revisions?limit=1"))[0]["id"]

    await w.ok("PUT", "/api/admin/groups/hot", json={"name": "重点", "cameras": ["qb-1", "qb-2", "bus-1-front"]})
    await member(w, "ann", "police", "lead")
    await member(w, "cat", "police", "member")  # role change inside a department
    await w.ok("DELETE", f"/api/admin/users/{w.ids['bob']}/memberships/police")
    await w.ok(
        "PUT",
        f"/api/admin/rules/{deny}",
        json={"subject": "dept:police", "target": "cam:truck-away", "action": "view_snapshot", "effect": "deny"},
    )
    await w.ok("PUT", "/api/admin/groups/crossings", json={"name": "公交", "filter": {"kind": ["bus"]}})
    await w.acl.changes.grant_incident(
        "alarm", "INC-9", ["qibao"], ["xz-1"], dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    )
    await w.ok("PATCH", f"/api/admin/users/{w.ids['bob']}", json={"role": "auditor"})
    await assert_consistent(w, "after edits")

    await w.ok("DELETE", "/api/admin/groups/trucks")
    await w.ok("DELETE", "/api/admin/departments/police")
    await w.acl.changes.revoke_incident("alarm", "INC-9")
    await assert_consistent(w, "after deletions")

    await w.ok("POST", f"/api/admin/revisions/{base}/rollback", json={"reason": "back to the start"})
    await assert_consistent(w, "after rollback")
    assert w.acl.decider.state.revision == (await w.ok("GET", "/api/admin/revisions?limit=1"))[0]["id"]


async def test_renaming_a_department_keeps_its_members(world: World) -> None:
    w = world
    op = await w.user("op-rename")
    await member(w, "op-rename", "qibao")
    await rule(w, "dept:qibao", "cam:qb-1")
    same = {"name": "公安", "level": "department"}
    r = await w.client.put("/api/admin/departments/police", json=same, headers=w.sec)
    assert r.status_code == 422 and "nothing would change" in r.text
    await w.ok(
        "PUT",
        "/api/admin/departments/qibao",
        json={"name": "七宝镇联动分中心", "level": "subdistrict", "area": "七宝镇"},
    )
    assert await w.visible(op) == {"qb-1"}
    users = {u["username"]: u for u in await w.ok("GET", "/api/admin/users")}
    assert users["op-rename"]["memberships"] == [{"department_id": "qibao", "role": "member"}]
    rev = (await w.ok("GET", "/api/admin/revisions?limit=1"))[0]
    assert rev["changes"][0]["op"] == "update" and rev["changes"][0]["old"]["name"] == "七宝镇分中心"
    await w.ok("POST", f"/api/admin/revisions/{rev['id'] - 1}/rollback", json={})
    depts = {d["id"]: d for d in await w.ok("GET", "/api/admin/departments")}
    assert depts["qibao"]["name"] == "七宝镇分中心" and depts["qibao"]["members"] == 1
    await w.ok("PUT", "/api/admin/departments/st1", json={"name": "站1", "level": "station", "parent_id": "qibao"})
    r = await w.client.put(
        "/api/admin/departments/qibao",
        json={"name": "x", "level": "subdistrict", "parent_id": "st1"},
        headers=w.sec,
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "parent_id"


async def test_role_change_and_deactivation_end_streams(world: World) -> None:
    w = world
    await w.user("viewer-r")
    await w.user("viewer-d")
    await rule(w, "role:operator", "cam:qb-1")
    closed: list[str] = []
    s1 = await open_session(w, "viewer-r", "qb-1", closed)
    s2 = await open_session(w, "viewer-d", "qb-1", closed)
    sessions = w.app.state.ld.sessions
    await w.ok("PATCH", f"/api/admin/users/{w.ids['viewer-r']}", json={"role": "auditor"})
    assert sessions.get(s1) is None and sessions.get(s2) is not None
    await w.ok("PATCH", f"/api/admin/users/{w.ids['viewer-d']}", json={"active": False})
    assert sessions.get(s2) is None
    # A role change ends the user's logins, and with them their streams (before the policy sweep sees it).
    assert closed == ["role changed", "account deactivated"]
    why = await w.ok("GET", f"/api/admin/explain/user/{w.ids['viewer-d']}")
    assert why["active"] is False and why["total"] == 0


async def test_incident_grants_are_one_revision_and_idempotent(world: World) -> None:
    w = world
    op = await w.user("op-incident")
    await member(w, "op-incident", "police")
    until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    before = len(await w.ok("GET", "/api/admin/revisions?limit=500"))
    first = await w.acl.changes.grant_incident("alarm", "INC-5", ["police", "transport"], ["qb-1", "xz-1"], until)
    again = await w.acl.changes.grant_incident(
        "alarm", "INC-5", ["police", "transport"], ["qb-1", "xz-1", "qb-2"], until
    )
    assert len(first) == 4 and len(again) == 2  # only the new camera's grants
    assert await w.acl.changes.grant_incident("alarm", "INC-5", ["police"], ["qb-1"], until) == []  # nothing new
    assert len(await w.ok("GET", "/api/admin/revisions?limit=500")) == before + 2
    assert await w.visible(op) == {"qb-1", "xz-1", "qb-2"}
    aud = await w.user("aud-incident", Role.auditor)
    r = await w.client.get("/api/audit?incident_id=INC-5&kind=policy_change", headers=aud)
    assert [e["incident_id"] for e in r.json()] == ["INC-5", "INC-5"]
    assert await w.acl.changes.revoke_incident("alarm", "INC-5") == 6
    assert await w.visible(op) == set()
    r = await w.client.post(
        "/api/admin/incident-grants",
        json={"incident_id": "INC-6", "departments": ["nope"], "cameras": ["qb-1"]},
        headers=w.sec,
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "subject"
    assert len(await w.ok("GET", "/api/admin/revisions?limit=500")) == before + 3  # nothing half-applied
    # An incident's grant cannot be edited into an ordinary rule (closing the incident would miss it).
    await w.acl.changes.grant_incident("alarm", "INC-7", ["police"], ["qb-1"], until)
    (rid, tagged), *_ = await w.acl.policy.rules_tagged("incident:INC-7")
    body = {"subject": tagged.sub, "target": "cam:xz-1", "action": tagged.act}
    r = await w.client.put(f"/api/admin/rules/{rid}", json=body, headers=w.sec)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "rule_id" and "incident:INC-7" in r.text
    assert await w.acl.changes.revoke_incident("alarm", "INC-7") == 1


async def test_explain_shows_who_a_deny_rule_blocks(world: World) -> None:
    w = world
    await w.user("op-x")
    await w.user("op-y")
    await member(w, "op-x", "police")
    await member(w, "op-y", "transport")
    await rule(w, "role:operator", "cam:qb-2")
    deny = await rule(w, "dept:police", "cam:qb-2", "view_snapshot", "deny")
    who = await w.ok("GET", "/api/admin/explain/camera/qb-2")
    assert {u["username"] for u in who["users"]} >= {"op-y", "root"}
    assert [u["username"] for u in who["blocked"]] == ["op-x"]
    assert who["blocked"][0]["because"] == "a deny rule overrides"
    assert deny in {r["id"] for r in who["blocked"][0]["rules"]}
    r = await w.client.get("/api/admin/explain/camera/no-such-camera", headers=w.sec)
    assert r.status_code == 404
    r = await w.client.get("/api/admin/explain/camera/qb-2?action=fly", headers=w.sec)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "action"


async def test_rule_can_be_changed_in_place(world: World) -> None:
    w = world
    op = await w.user("op-edit")
    rid = await rule(w, "role:operator", "cam:qb-1", "view_snapshot")
    assert await w.visible(op) == {"qb-1"}
    body = {"subject": "role:operator", "target": "cam:xz-1", "action": "view_live"}
    new = await w.ok("PUT", f"/api/admin/rules/{rid}", json=body)
    assert new["id"] == rid
    assert await w.visible(op) == {"xz-1"}
    r = await w.client.put(f"/api/admin/rules/{rid}", json=body, headers=w.sec)
    assert r.status_code == 422 and "nothing would change" in r.text
    r = await w.client.put("/api/admin/rules/99999", json=body, headers=w.sec)
    assert r.status_code == 404 and r.json()["detail"][0]["field"] == "rule_id"


async def test_cli_changes_reach_a_running_gateway(world: World, monkeypatch: Any) -> None:
    from typer.testing import CliRunner

    from gateway.cli import app

    w = world
    op = await w.user("op-cli")
    ld = w.app.state.ld
    monkeypatch.setenv("LIANDONG_DATA_DIR", str(ld.settings.data_dir))

    async def cli(*args: str) -> Any:
        res = await asyncio.to_thread(CliRunner().invoke, app, list(args))
        assert res.exit_code == 0, res.output
        return res

    await cli("policy", "member", "op-cli", "police", "--reason", "night shift")
    res = await cli("policy", "grant", "dept:police", "cam:xz-1", "view_live")
    rule_id = int(res.output.rsplit("rule ", 1)[1].rstrip(")\n"))
    deadline = time.monotonic() + 3
    while await w.visible(op) != {"xz-1"} and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert await w.visible(op) == {"xz-1"}
    closed: list[str] = []
    sid = await open_session(w, "op-cli", "xz-1", closed)
    await cli("policy", "revoke", str(rule_id))
    t0 = time.monotonic()
    while ld.sessions.get(sid) is not None and time.monotonic() - t0 < 3:
        await asyncio.sleep(0.05)
    assert ld.sessions.get(sid) is None and closed[0].startswith("permission withdrawn")
    assert time.monotonic() - t0 < 2.5  # the revision poll runs every second
    listed = (await cli("policy", "rules", "--subject", "dept:police")).output
    assert f"{rule_id}\t" not in listed
    entries = await ld.audit.query(kind="policy_change", limit=3)
    assert entries[0].username.startswith("cli") and f"rule {rule_id} removed" in (entries[0].detail or "")
    r = await asyncio.to_thread(CliRunner().invoke, app, ["policy", "grant", "dept:nope", "cam:xz-1"])
    assert r.exit_code == 2 and "subject" in r.output


async def test_user_created_by_the_cli_gets_memberships_made_through_the_api(world: World, monkeypatch: Any) -> None:
    from typer.testing import CliRunner

    from gateway.cli import app
    from tests.conftest import PASSWORD

    w = world
    monkeypatch.setenv("LIANDONG_DATA_DIR", str(w.app.state.ld.settings.data_dir))
    res = await asyncio.to_thread(
        CliRunner().invoke, app, ["users", "add", "op-late", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert res.exit_code == 0, res.output
    await rule(w, "dept:police", "cam:qb-1")
    api_made = await w.user("op-api")
    await member(w, "op-api", "police")
    users = {u["username"]: u["id"] for u in await w.ok("GET", "/api/admin/users")}
    w.ids["op-late"] = users["op-late"]
    await member(w, "op-late", "police")  # the running gateway never saw this user being created
    late = (await w.client.post("/api/auth/token", data={"username": "op-late", "password": PASSWORD})).json()
    expected = await w.visible(api_made)
    assert expected and await w.visible({"Authorization": f"Bearer {late['access_token']}"}) == expected
    await assert_consistent(w, "membership of a user created elsewhere")


@pytest.mark.gc_freeze
async def test_reloads_freeze_the_heap_without_keeping_what_they_replace(world: World) -> None:
    """``acl.gc_freeze``: after a compile the heap is frozen (out of full collections); a reload
    replaces the policy, and neither the replaced index and state nor a garbage cycle made of
    objects frozen earlier survive it, so the frozen heap does not grow reload after reload."""
    import gc
    import weakref

    acl = world.acl
    assert acl.compiler.gc_freeze and gc.get_freeze_count() > 0

    class Node:
        def __init__(self) -> None:
            self.me = self  # a cycle: only the cyclic collector frees it

    cycle = Node()
    dropped_cycle = weakref.ref(cycle)
    await acl.changes.reload("test")  # the cycle is alive now: frozen with the rest
    assert gc.get_freeze_count() > 0
    del cycle  # garbage now, but frozen: the next reload must reclaim it
    old_index, old_state = weakref.ref(acl.decider.index), weakref.ref(acl.decider.state)
    counts = []
    for _ in range(4):
        await acl.changes.reload("test")
        counts.append(gc.get_freeze_count())
    assert old_index() is None and old_state() is None
    assert dropped_cycle() is None
    assert max(counts) - min(counts) < 100, counts  # steady, not one policy's worth more each time
