"""Previewing a policy change: its effect on who sees what, with nothing stored."""

from __future__ import annotations

from typing import Any

from acl.models import Role
from gateway.events import LocalEventBus, Viewer
from tests.acl.conftest import World


async def member(w: World, user: str, dept: str) -> None:
    await w.ok("PUT", f"/api/admin/users/{w.ids[user]}/memberships/{dept}", json={})


async def preview(w: World, body: dict[str, Any], status: int = 200) -> Any:
    r = await w.client.post("/api/acl/preview", json=body, headers=w.sec)
    assert r.status_code == status, r.text
    return r.json()


def effect(p: dict[str, Any], action: str = "view_live") -> dict[str, Any]:
    return next(e for e in p["effects"] if e["action"] == action)


async def stored(w: World) -> tuple[int, int, int]:
    """Revision, number of rules, number of audit entries."""
    ld = w.app.state.ld
    audit = await ld.audit.query(limit=10_000)
    return await ld.acl.policy.latest_revision(), len(ld.acl.decider.state.rules), len(audit)


async def test_a_grant_preview_counts_users_and_cameras_and_stores_nothing(world: World) -> None:
    w = world
    a, b = await w.user("op-a"), await w.user("op-b")
    await w.user("op-other")
    await member(w, "op-a", "police")
    await member(w, "op-b", "police")
    await w.ok("PUT", "/api/admin/groups/qibao-all", json={"name": "七宝全部", "filter": {"area": ["七宝镇"]}})
    before = await stored(w)
    rule = {"subject": "dept:police", "target": "group:qibao-all", "action": "view_live"}
    p = await preview(w, {"op": "add_rule", "rule": rule})
    assert await stored(w) == before  # no revision, no rule, no audit entry
    assert await w.visible(a) == set()
    live = effect(p)
    assert (live["users_gaining"], live["cameras_gained"], live["users_losing"], live["cameras_lost"]) == (2, 2, 0, 0)
    assert live["departments"] == [
        {
            "department_id": "police",
            "name": "公安",
            "users_gaining": 2,
            "users_losing": 0,
            "cameras_gained": 2,
            "cameras_lost": 0,
        }
    ]
    assert {u["username"] for u in live["users"]} == {"op-a", "op-b"}
    assert sorted(live["users"][0]["gained_sample"]) == ["qb-1", "qb-2"]
    assert effect(p, "view_snapshot")["cameras_gained"] == 2  # live implies snapshots
    assert p["changes"] == [
        {
            "op": "add",
            "kind": "rule",
            "row": {"ptype": "p", "v0": "dept:police", "v1": "group:qibao-all", "v2": "view_live"}
            | {"v3": "allow", "v4": "", "v5": ""},
        }
    ]
    # The real change then does what the preview said.
    await w.ok("POST", "/api/admin/rules", json=rule)
    assert await w.visible(a) == await w.visible(b) == {"qb-1", "qb-2"}
    # The same grant again: the preview refuses it as the change would.
    err = await preview(w, {"op": "add_rule", "rule": rule}, 422)
    assert err["detail"] == [{"field": "rule", "message": "an identical rule exists"}]


async def test_a_deny_rule_and_a_removed_membership_show_as_losses(world: World) -> None:
    w = world
    await w.user("op-a")
    await member(w, "op-a", "transport")
    await w.ok(
        "POST", "/api/admin/rules", json={"subject": "dept:transport", "target": "cam:qb-2", "action": "view_live"}
    )
    await w.ok(
        "POST", "/api/admin/rules", json={"subject": "dept:transport", "target": "cam:xz-1", "action": "view_live"}
    )
    deny = {"subject": "*", "target": "cam:qb-2", "action": "view_live", "effect": "deny"}
    live = effect(await preview(w, {"op": "add_rule", "rule": deny}))
    assert (live["users_losing"], live["cameras_lost"], live["users_gaining"]) == (1, 1, 0)
    assert live["users"][0]["lost_sample"] == ["qb-2"]
    snap = effect(await preview(w, {"op": "add_rule", "rule": deny}), "view_snapshot")
    assert snap["cameras_lost"] == 0  # denying live still lets them see snapshots
    p = await preview(w, {"op": "remove_membership", "user_id": w.ids["op-a"], "department_id": "transport"})
    assert effect(p)["cameras_lost"] == 2
    assert effect(p)["departments"][0]["department_id"] == "transport"


async def test_a_rollback_preview_matches_what_the_rollback_does(world: World) -> None:
    w = world
    a = await w.user("op-a")
    await member(w, "op-a", "police")
    rev = await w.app.state.ld.acl.policy.latest_revision()
    await w.ok("POST", "/api/admin/rules", json={"subject": "dept:police", "target": "cam:qb-1", "action": "view_live"})
    await w.ok("POST", "/api/admin/rules", json={"subject": "dept:police", "target": "cam:xz-1", "action": "view_live"})
    assert await w.visible(a) == {"qb-1", "xz-1"}
    p = await preview(w, {"op": "rollback", "revision_id": rev})
    assert effect(p)["cameras_lost"] == 2 and [c["op"] for c in p["changes"]] == ["remove", "remove"]
    await w.ok("POST", f"/api/admin/revisions/{rev}/rollback", json={})
    assert await w.visible(a) == set()


async def test_bad_proposals_name_the_field_and_only_editors_may_preview(world: World) -> None:
    w = world
    bad = [
        ({"op": "add_rule", "rule": {"subject": "dept:nope", "target": "cam:qb-1", "action": "view_live"}}, "subject"),
        ({"op": "add_rule", "rule": {"subject": "dept:police", "target": "cam:qb-1", "action": "fly"}}, "action"),
        (
            {"op": "add_rule", "rule": {"subject": "dept:police", "target": "group:nope", "action": "view_live"}},
            "target",
        ),
        ({"op": "add_rule"}, "rule"),
        ({"op": "remove_rule", "rule_id": 99999}, "rule_id"),
        ({"op": "set_membership", "user_id": 99999, "department_id": "police"}, "user_id"),
        ({"op": "put_group", "group_id": "g", "group": {"name": "g", "filter": {"colour": ["red"]}}}, "filter.colour"),
        ({"op": "rollback", "revision_id": 99999}, "revision"),
        ({"op": "explode"}, "op"),
    ]
    for body, field in bad:
        r = await w.client.post("/api/acl/preview", json=body, headers=w.sec)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["detail"][0]["field"] == field, (body, r.json())
    auditor = await w.user("aud", Role.auditor)
    op = await w.user("op")
    for h in (auditor, op):
        r = await w.client.post("/api/acl/preview", json={"op": "remove_rule", "rule_id": 1}, headers=h)
        assert r.status_code == 403


async def test_a_policy_change_reaches_the_consoles_it_can_change_and_the_policy_readers(world: World) -> None:
    w = world
    bus: LocalEventBus = w.app.state.ld.events
    for name in ("op-a", "op-b"):
        await w.user(name)
    await w.user("aud", Role.auditor)
    await member(w, "op-a", "police")

    def viewer(name: str, role: str = "operator") -> Viewer:
        return Viewer(w.acl.decider.subject_for(w.ids[name], name, role), lambda s, c: False)

    def latest() -> Any:
        return next(e for e in reversed(bus._buffer) if e.type == "policy.changed")

    a, b, aud, sec = viewer("op-a"), viewer("op-b"), viewer("aud", "auditor"), viewer("secadmin", "security_admin")
    await w.ok("POST", "/api/admin/rules", json={"subject": "dept:police", "target": "cam:qb-1", "action": "view_live"})
    ev = latest()
    assert ev.data == {"revision": await w.app.state.ld.acl.policy.latest_revision()}
    text = a.render(ev)
    assert text is not None and "event: policy.changed" in text
    assert b.render(ev) is None  # op-b's view did not change: their console learns nothing
    assert aud.render(ev) is not None and sec.render(ev) is not None  # the admin consoles follow every change
    await w.ok("POST", "/api/admin/rules", json={"subject": "*", "target": "cam:xz-1", "action": "view_snapshot"})
    assert b.render(latest()) is not None  # a rule for everyone reaches everyone
    await w.ok("PATCH", f"/api/admin/users/{w.ids['op-b']}", json={"active": False})
    ev = latest()
    assert b.render(ev) is not None and a.render(ev) is None


async def test_the_csv_export_follows_the_viewer_filters(world: World) -> None:
    import csv
    import io

    w = world
    aud = await w.user("aud", Role.auditor)
    await w.user("op-a")
    await w.client.post("/api/auth/token", data={"username": "op-a", "password": "wrong password"})
    r = await w.client.get("/api/audit/export.csv?kind=user_created", headers=aud)
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {x["kind"] for x in rows} == {"user_created"} and len(rows) >= 3  # secadmin, op-a, aud
    listed = (await w.client.get("/api/audit?kind=user_created", headers=aud)).json()
    assert sorted(int(x["id"]) for x in rows) == sorted(x["id"] for x in listed)
    r = await w.client.get("/api/audit/export.csv?kind=login_failed&until=2000-01-01T00:00:00Z", headers=aud)
    assert list(csv.DictReader(io.StringIO(r.text))) == []


async def test_comparing_only_the_users_a_change_can_reach_gives_the_full_answer(
    world: World, monkeypatch: Any
) -> None:
    import acl.preview

    w = world
    for name, dept in [("op-a", "police"), ("op-b", "transport"), ("op-c", "qibao"), ("op-d", None)]:
        await w.user(name)
        if dept:
            await member(w, name, dept)
    await w.ok("PUT", "/api/admin/groups/qb", json={"name": "qb", "filter": {"area": ["七宝镇"]}})
    await w.ok("PUT", "/api/admin/groups/st", json={"name": "st", "cameras": ["qb-1", "xz-1"]})
    await w.ok("POST", "/api/admin/rules", json={"subject": "dept:police", "target": "group:qb", "action": "view_live"})
    await w.ok(
        "POST", "/api/admin/rules", json={"subject": "role:operator", "target": "group:st", "action": "view_snapshot"}
    )
    rev = await w.app.state.ld.acl.policy.latest_revision()
    await w.ok("POST", "/api/admin/rules", json={"subject": "dept:qibao", "target": "group:st", "action": "view_live"})
    proposals = [
        {"op": "add_rule", "rule": {"subject": "dept:transport", "target": "group:qb", "action": "view_live"}},
        {"op": "add_rule", "rule": {"subject": "*", "target": "cam:xz-1", "action": "view_live", "effect": "deny"}},
        {"op": "put_group", "group_id": "st", "group": {"name": "st", "cameras": ["qb-2"]}},
        {"op": "put_group", "group_id": "qb", "group": {"name": "qb", "filter": {"area": ["莘庄镇"]}}},
        {"op": "delete_group", "group_id": "qb"},
        {"op": "set_membership", "user_id": w.ids["op-d"], "department_id": "police"},
        {"op": "delete_department", "department_id": "qibao"},
        {"op": "rollback", "revision_id": rev},
    ]
    narrowed = [await preview(w, p) for p in proposals]
    monkeypatch.setattr(acl.preview, "affected_users", lambda *a: None)  # compare every user instead
    full = [await preview(w, p) for p in proposals]
    assert narrowed == full
    assert any(e["users_total"] for p in full for e in p["effects"])  # the proposals do change things


async def test_a_role_change_or_deactivation_is_previewed_for_that_user_only(world: World) -> None:
    w = world
    await w.user("op-a")
    await w.user("op-b")
    await member(w, "op-a", "police")
    await w.ok("POST", "/api/admin/rules", json={"subject": "dept:police", "target": "cam:qb-1", "action": "view_live"})
    await w.ok(
        "POST", "/api/admin/rules", json={"subject": "role:operator", "target": "cam:xz-1", "action": "view_live"}
    )
    before = await stored(w)
    p = await preview(w, {"op": "patch_user", "user_id": w.ids["op-a"], "active": False})
    live = effect(p)
    assert (live["users_losing"], live["cameras_lost"], live["users_gaining"]) == (1, 2, 0)
    assert live["users"][0]["username"] == "op-a" and p["changes"] == []
    p = await preview(w, {"op": "patch_user", "user_id": w.ids["op-b"], "system_role": "auditor"})
    assert [(u["username"], u["lost_sample"]) for u in effect(p)["users"]] == [("op-b", ["xz-1"])]
    p = await preview(w, {"op": "patch_user", "user_id": w.ids["op-b"], "system_role": "admin"})
    assert effect(p)["users"] == []  # an admin sees everything by role: not counted
    assert await stored(w) == before
    err = await preview(w, {"op": "patch_user", "user_id": 99999, "active": False}, 422)
    assert err["detail"] == [{"field": "user_id", "message": "no user 99999"}]
