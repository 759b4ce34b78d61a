"""Each rule that moved into :mod:`gateway.policy`, against the real app: the guard or filter that
asks it answers as before, and the route declares it (one policy per route, as the walk demands)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.routing import APIRoute

from acl.identity import Subject
from acl.models import Role
from gateway.alarms.models import Incident
from gateway.events import Audience, Event, Viewer
from gateway.policy import IncidentRules
from gateway.policy.rules import (
    Refused,
    has_role,
    may_grant_role,
    may_manage_user,
    may_see_camera_sources,
    owner_scope,
    receives_event,
    visible_camera_ids,
    visible_cameras_in,
)
from storage.db import utcnow
from storage.times import parse_zoned
from tests.acl.conftest import World
from tests.conftest import PASSWORD, iter_routes
from tests.gateway.test_alarms import member
from tests.gateway.test_route_policies import policies

ADMIN = Subject(1, "root", Role.admin)
OP = Subject(7, "op", Role.operator, frozenset({"police"}))


def declared(app: Any, method: str, path: str) -> list[str]:
    for r in iter_routes(app.routes):
        if isinstance(r, APIRoute) and r.path == path and method in (r.methods or set()):
            return policies(r.dependant)
    raise AssertionError(f"no route {method} {path}")


async def test_only_admins_make_or_change_admins(world: World) -> None:
    """``require_user_admin``: a security admin creates and edits users, but neither creates an
    admin, nor makes one, nor changes one; an admin does all three."""
    w = world
    app = w.app
    assert declared(app, "POST", "/api/admin/users") == ["user-admin:admin,security_admin"]
    assert declared(app, "PATCH", "/api/admin/users/{user_id}") == ["user-admin:admin,security_admin"]
    assert may_grant_role(OP, Role.operator) and not may_grant_role(OP, "admin") and may_grant_role(ADMIN, Role.admin)
    assert (
        may_manage_user(OP, Role.auditor) and not may_manage_user(OP, Role.admin) and may_manage_user(ADMIN, Role.admin)
    )

    body = {"username": "boss", "password": PASSWORD, "role": "admin"}
    r = await w.client.post("/api/admin/users", json=body, headers=w.sec)
    assert r.status_code == 403 and r.json()["detail"] == [
        {"field": "role", "message": "only admins may create admins"}
    ]
    r = await w.client.post("/api/admin/users", json={**body, "role": "operator"}, headers=w.sec)
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    r = await w.client.patch(f"/api/admin/users/{uid}", json={"role": "admin"}, headers=w.sec)
    assert r.status_code == 403 and r.json()["detail"] == [{"field": "role", "message": "only admins may make admins"}]
    r = await w.client.patch(f"/api/admin/users/{uid}", json={"display_name": "Boss"}, headers=w.sec)
    assert r.status_code == 200, r.text
    root = w.sec_root  # type: ignore[attr-defined]
    r = await w.client.patch(f"/api/admin/users/{uid}", json={"role": "admin"}, headers=root)
    assert r.status_code == 200, r.text
    r = await w.client.patch(f"/api/admin/users/{uid}", json={"active": False}, headers=w.sec)
    assert r.status_code == 403 and r.json()["detail"] == "only admins may change admins"
    assert (await w.client.patch("/api/admin/users/99999", json={}, headers=w.sec)).status_code == 404
    # An operator is refused by role before anything about the body; a bad body is still a 422.
    op = await w.user("plain")
    assert (await w.client.post("/api/admin/users", json=body, headers=op)).status_code == 403
    r = await w.client.post("/api/admin/users", json={"username": "x", "password": "short"}, headers=w.sec)
    assert r.status_code == 422
    r = await w.client.post("/api/admin/users", content=b"[]", headers={**w.sec, "Content-Type": "application/json"})
    assert r.status_code == 422
    # The guard reads the role as the route's model does: no spelling of "admin" slips past it.
    for role in (" admin ", "ADMIN", "Admin"):
        r = await w.client.post("/api/admin/users", json={**body, "username": "y", "role": role}, headers=w.sec)
        assert r.status_code in (403, 422), (role, r.status_code)
        assert (await w.client.patch(f"/api/admin/users/{uid}", json={"role": role}, headers=w.sec)).status_code in (
            403,
            422,
        )
    assert "y" not in {u["username"] for u in (await w.client.get("/api/admin/users", headers=w.sec)).json()}


async def test_sessions_and_tokens_are_their_owners_or_any_for_admins(world: World) -> None:
    """``require_owner_or_admin``: listing sessions and tokens, revoking a token."""
    w = world
    app = w.app
    assert declared(app, "GET", "/api/sessions") == ["owner-or-admin"]
    assert declared(app, "GET", "/api/auth/tokens") == ["owner-or-admin"]
    assert declared(app, "DELETE", "/api/auth/tokens/{token_id}") == ["owner-or-admin"]
    assert owner_scope(OP) == 7 and owner_scope(ADMIN) == 1 and owner_scope(ADMIN, admins_see_all=True) is None
    assert owner_scope(ADMIN, 5) == 5 and owner_scope(ADMIN, everyone=True) is None and owner_scope(OP, 7) == 7
    for kw in ({"user_id": 5}, {"everyone": True}):
        with pytest.raises(Refused):
            owner_scope(OP, **kw)

    op = await w.user("op1")
    other = await w.user("op2")
    root = w.sec_root  # type: ignore[attr-defined]
    me = w.ids["op1"]
    assert (await w.client.get(f"/api/sessions?user_id={me}", headers=op)).status_code == 200
    r = await w.client.get(f"/api/sessions?user_id={w.ids['op2']}", headers=op)
    assert r.status_code == 403 and r.json()["detail"] == "user_id: only admins may list other users' sessions"
    assert (await w.client.get(f"/api/sessions?user_id={w.ids['op2']}", headers=root)).status_code == 200
    assert (await w.client.get("/api/sessions?user_id=x", headers=op)).status_code == 422

    for flag in ("true", "1", "t", "yes"):  # whatever the route reads as true, the guard does too
        r = await w.client.get(f"/api/auth/tokens?all_users={flag}", headers=op)
        assert r.status_code == 403 and r.json()["detail"] == "all_users: admins only", flag
    mine = (await w.client.get("/api/auth/tokens", headers=op)).json()
    assert {t["user_id"] for t in mine} == {me}
    own_admin = (await w.client.get("/api/auth/tokens", headers=root)).json()
    every = (await w.client.get("/api/auth/tokens?all_users=true", headers=root)).json()
    assert {t["user_id"] for t in own_admin} == {own_admin[0]["user_id"]}
    assert {me, w.ids["op2"]} <= {t["user_id"] for t in every}

    theirs = next(t["id"] for t in every if t["user_id"] == w.ids["op2"])
    assert (await w.client.delete(f"/api/auth/tokens/{theirs}", headers=op)).status_code == 404
    assert (await w.client.get("/api/auth/me", headers=other)).status_code == 200
    assert (await w.client.delete(f"/api/auth/tokens/{theirs}", headers=root)).status_code == 200
    assert (await w.client.get("/api/auth/me", headers=other)).status_code == 401


async def test_camera_sources_and_camera_lists_ask_the_rules(world: World) -> None:
    """``may_see_camera_sources`` and ``visible_camera_ids``: the camera list, nearest, the map,
    facets and the dashboard count only what the caller may view; only admins see sources."""
    w = world
    root = w.sec_root  # type: ignore[attr-defined]
    assert may_see_camera_sources(ADMIN) and not may_see_camera_sources(OP)
    assert visible_camera_ids(w.acl.decider, ADMIN) is None
    pol = await member(w, "pol-op", "police")
    await w.ok("POST", "/api/admin/rules", json={"subject": "dept:police", "target": "cam:qb-1", "action": "view_live"})
    subject = w.acl.decider.subject_for(w.ids["pol-op"], "pol-op", "operator")
    assert set(visible_camera_ids(w.acl.decider, subject) or ()) == {"qb-1"}

    items = (await w.client.get("/api/cameras", headers=pol)).json()["items"]
    assert [c["id"] for c in items] == ["qb-1"] and "source_url" not in items[0]
    assert "source_url" in (await w.client.get("/api/cameras/qb-1", headers=root)).json()
    near = (await w.client.get("/api/cameras/nearest?lat=31.155&lon=121.35", headers=pol)).json()["items"]
    assert [c["camera_id"] for c in near] == ["qb-1"]
    assert [row[0] for row in (await w.client.get("/api/console/map/cameras", headers=pol)).json()["cameras"]] == [
        "qb-1"
    ]
    assert (await w.client.get("/api/console/facets", headers=pol)).json()["total"] == 1
    assert (await w.client.get("/api/console/dashboard", headers=pol)).json()["cameras"]["total"] == 1
    assert (await w.client.get("/api/console/dashboard", headers=root)).json()["cameras"]["total"] == 6


async def test_incident_rules_decide_for_the_guard_the_list_and_the_buttons(world: World) -> None:
    """``IncidentRules``: auditors read every incident and act on none; a department in the
    audience sees and notes; the centre in charge dispatches; others see nothing."""
    w = world
    ld = w.app.state.ld
    assert declared(w.app, "GET", "/api/incidents/{incident_id}") == ["incident"]
    pol = await member(w, "pol-op", "police")
    centre = await member(w, "qb-op", "qibao")
    tr = await member(w, "tr-op", "transport")
    aud = await w.user("aud", Role.auditor)
    async with ld.db.session() as s:
        s.add(Incident(id="INC-R", type="panic", area="七宝镇", departments=["police"], created_at=utcnow()))
    rules = IncidentRules(ld.alarms.incidents, ld.authorizer)
    inc = await rules.flow.get("INC-R")
    assert inc is not None
    subjects = {n: w.acl.decider.subject_for(w.ids[n], n, r) for n, r in [("pol-op", "operator"), ("aud", "auditor")]}
    assert rules.may_see(subjects["aud"], inc) and not rules.may_act(subjects["aud"], "note", inc)
    assert rules.next_actions(subjects["pol-op"], inc) == ["note"]
    assert rules.next_actions(ADMIN, inc) == ["dispatch", "escalate", "note"]

    r = await w.client.get("/api/incidents/INC-R", headers=pol)
    assert r.status_code == 200 and r.json()["actions"] == ["note"]
    assert (await w.client.get("/api/incidents/INC-R", headers=centre)).json()["actions"] == [
        "dispatch",
        "escalate",
        "note",
    ]
    assert (await w.client.get("/api/incidents/INC-R", headers=tr)).status_code == 404
    assert [i["id"] for i in (await w.client.get("/api/incidents", headers=tr)).json()] == []
    assert (await w.client.get("/api/incidents/stats", headers=tr)).json() == {"by_area": {}, "by_department": {}}
    assert (await w.client.get("/api/incidents/INC-R", headers=aud)).json()["actions"] == []
    r = await w.client.post("/api/incidents/INC-R/dispatch", json={"department": "police"}, headers=pol)
    assert r.status_code == 403
    r = await w.client.post("/api/incidents/INC-R/dispatch", json={"department": "police"}, headers=centre)
    assert r.status_code == 200, r.text
    assert (await w.client.get("/api/incidents/INC-R", headers=pol)).json()["actions"] == ["acknowledge", "note"]


def test_events_reach_their_audience_as_the_rules_say() -> None:
    """``receives_event`` and ``visible_cameras_in``: what a console's event stream lets through."""
    may_view = lambda s, c: c == "qb-1" and "police" in s.departments  # noqa: E731
    stranger = Subject(8, "x", Role.operator, frozenset({"transport"}))
    cams = Audience(cameras=("qb-1", "qb-2"))
    assert receives_event(OP, cams, may_view) and not receives_event(OP, Audience(cameras=("qb-2",)), may_view)
    assert receives_event(OP, Audience(departments=("police",)), lambda _s, _c: False)
    assert not receives_event(stranger, cams, may_view) and receives_event(stranger, Audience(everyone=True), may_view)
    assert receives_event(stranger, Audience(users=(8,)), may_view)
    assert receives_event(Subject(9, "a", Role.auditor), Audience(roles=("auditor",)), may_view)
    assert not receives_event(stranger, Audience(), may_view) and receives_event(ADMIN, Audience(), may_view)
    assert visible_cameras_in(OP, ["qb-2", "qb-1"], may_view) == ["qb-1"]
    assert visible_cameras_in(ADMIN, ["qb-2", "qb-1"], lambda _s, _c: False) == ["qb-2", "qb-1"]
    ev = Event(1, "incident.cameras", {"cameras": ["qb-1", "qb-2"], "nearby": ["qb-2"]}, cams)
    assert Viewer(OP, may_view).render(ev) == ev.sse({"cameras": ["qb-1"], "nearby": []})
    assert Viewer(ADMIN, lambda _s, _c: False).render(ev) == ev.sse()
    assert Viewer(stranger, may_view).render(ev) is None


def test_roles_and_zoned_times() -> None:
    assert has_role(ADMIN, []) and has_role(OP, [Role.operator]) and not has_role(OP, [Role.auditor])
    assert parse_zoned("2026-11-28T08:00:00Z") == dt.datetime(2026, 11, 28, 8, tzinfo=dt.UTC)
    assert parse_zoned("2026-11-28T08:00:00+08:00").utcoffset() == dt.timedelta(hours=8)
    for bad, why in (("2026-11-28T08:00:00", "needs a timezone"), ("yesterday", "not an ISO 8601 time")):
        with pytest.raises(ValueError, match=why):
            parse_zoned(bad)


async def test_since_needs_a_zone_on_both_routes(world: World) -> None:
    w = world
    for path in ("/api/incidents/stats", "/api/console/dashboard"):
        r = await w.client.get(f"{path}?since=2026-01-01T00:00:00", headers=w.sec)
        assert r.status_code == 422 and r.json()["detail"] == [{"field": "since", "message": "needs a timezone"}]
        assert (await w.client.get(f"{path}?since=2026-01-01T00:00:00Z", headers=w.sec)).status_code == 200
