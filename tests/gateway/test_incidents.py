"""The incident workflow: who may take which step, deadlines, escalation, overdue flags, statistics,
grants ended on close, and effects redone after an interrupted intake."""

from __future__ import annotations

import datetime as dt
from typing import Any

from acl.models import Role
from gateway.alarms.models import Incident
from gateway.policy import IncidentRules
from gateway.settings import AlarmRoute
from storage.db import utcnow
from tests.acl.conftest import World
from tests.gateway.test_alarms import member, setup, signed


async def open_incident(w: World, secret: str, alarm_id: str = "C-1") -> str:
    r = await w.client.post("/api/alarms", **signed(secret, {"alarm_id": alarm_id, "vehicle_id": "bus-1"}))
    assert r.status_code == 202, r.text
    return str(r.json()["incident_id"])


async def incident_rules(w: World, inc_id: str) -> list[dict[str, Any]]:
    return [r for r in await w.ok("GET", "/api/admin/rules") if r["tag"] == f"incident:{inc_id}"]


async def test_steps_by_role_deadlines_escalation_and_close(world: World) -> None:
    w = world
    secret = await setup(w)
    inc_id = await open_incident(w, secret)
    qb = await member(w, "qb-op", "qibao")  # the sub-district centre of 七宝镇
    dc = await member(w, "dc-op", "district")  # the district centre
    pol = await member(w, "pol-op", "police")  # on duty by the routing table
    tr = await member(w, "tr-op", "transport")  # not involved
    aud = await w.user("aud", Role.auditor)

    async def step(who: dict[str, str], action: str, **body: Any) -> Any:
        return await w.client.post(f"/api/incidents/{inc_id}/{action}", json=body, headers=who)

    assert (await step(tr, "dispatch", department="police")).status_code == 404  # cannot even see it
    assert (await step(pol, "dispatch", department="police")).status_code == 403  # not a command centre
    assert (await step(aud, "note", text="x")).status_code == 403  # auditors read only
    assert (await w.client.get(f"/api/incidents/{inc_id}", headers=aud)).status_code == 200
    assert (await step(qb, "resolve")).status_code == 409  # not from "new"
    assert (await step(qb, "dispatch", department="nope")).json()["detail"][0]["field"] == "department"
    r = await step(qb, "dispatch", department="police")
    assert r.status_code == 200 and r.json()["state"] == "dispatched"
    d = r.json()
    created = dt.datetime.fromisoformat(d["history"][0]["at"])
    onsite = dt.datetime.fromisoformat(d["onsite_deadline"])
    resolve = dt.datetime.fromisoformat(d["resolve_deadline"])
    assert abs((onsite - created).total_seconds() - 3 * 3600) < 60  # panic: 3 h on site
    assert abs((resolve - created).total_seconds() - 168 * 3600) < 60  # and 168 h to resolve
    assert (await step(pol, "acknowledge")).json()["state"] == "acknowledged"  # the dispatched department
    assert (await step(pol, "escalate")).status_code == 403
    assert (await step(qb, "note", text="已联系驾驶员")).status_code == 200
    assert (await step(qb, "escalate")).json()["level"] == "district"
    assert (await step(dc, "escalate")).status_code == 409  # already there
    # Escalated: the sub-district centre follows the incident but the district centre commands it.
    assert (await step(qb, "close", text="x")).status_code == 403
    assert (await step(pol, "onsite")).json()["state"] == "on_site"
    assert (await step(pol, "resolve")).json()["state"] == "resolved"
    assert (await step(dc, "close")).status_code == 409  # not before the call-back and the verification
    assert (await step(dc, "confirm")).json()["detail"][0]["field"] == "result"  # what the reporter said
    assert (await step(dc, "confirm", result="satisfied", text="已与驾驶员电话确认")).json()["state"] == "confirmed"
    assert (await step(pol, "verify", passed=True, text="x")).status_code == 403  # a handler never verifies
    assert (await step(dc, "verify", passed=True)).json()["detail"][0]["field"] == "text"
    assert (await step(dc, "verify", passed=True, text="现场核实")).json()["state"] == "verified"
    assert await incident_rules(w, inc_id)
    r = await step(dc, "close")
    assert r.status_code == 200 and r.json()["state"] == "closed"
    assert [h["action"] for h in r.json()["history"]] == [
        "opened",
        "dispatch",
        "acknowledge",
        "note",
        "escalate",
        "onsite",
        "resolve",
        "confirm",
        "verify",
        "close",
    ]
    assert [h["by"] for h in r.json()["history"][1:]] == [
        "qb-op",
        "pol-op",
        "qb-op",
        "qb-op",
        "pol-op",
        "pol-op",
        "dc-op",
        "dc-op",
        "dc-op",
    ]
    assert await incident_rules(w, inc_id) == []  # closing ended its grants
    assert (await step(dc, "reopen")).status_code == 409
    audit = await w.app.state.ld.audit.query(kind="incident")
    assert len(audit) == 9 and {a.username for a in audit} == {"qb-op", "pol-op", "dc-op"}
    denied = await w.app.state.ld.audit.query(kind="denied")
    assert any(a.action == "incident:dispatch" and a.username == "pol-op" for a in denied)
    stats = (await w.client.get("/api/incidents/stats", headers=qb)).json()
    assert stats["by_area"]["七宝镇"] == {"total": 1, "open": 0, "handled": 1, "overdue": 0, "handled_pct": 100.0}
    assert stats["by_department"]["police"]["handled_pct"] == 100.0


async def test_dispatch_and_escalation_grant_the_new_departments(world: World) -> None:
    w = world
    secret = await setup(w)
    alarms = w.app.state.ld.alarms
    # Only the police are routed: the district centre learns of it by escalation.
    alarms.routing.settings = alarms.settings.model_copy(update={"routing": [AlarmRoute(departments=["police"])]})
    inc_id = await open_incident(w, secret)
    qb = await member(w, "qb-op", "qibao")
    dc = await member(w, "dc-op", "district")
    tr = await member(w, "tr-op", "transport")
    root = w.sec_root  # type: ignore[attr-defined]
    assert (await w.client.get(f"/api/incidents/{inc_id}", headers=root)).json()["departments"] == ["police", "qibao"]
    assert await w.visible(dc) == set()
    assert await w.visible(tr) == set()
    r = await w.client.post(f"/api/incidents/{inc_id}/dispatch", json={"department": "transport"}, headers=qb)
    assert r.json()["dispatched_to"] == "transport"
    assert await w.visible(tr) == {"bus-1-front", "qb-1", "qb-2"}  # the dispatched crew can watch
    r = await w.client.post(f"/api/incidents/{inc_id}/escalate", json={}, headers=qb)
    assert r.json()["departments"] == ["police", "qibao", "transport", "district"]
    assert await w.visible(dc) == {"bus-1-front", "qb-1", "qb-2"}
    r = await w.client.post(f"/api/incidents/{inc_id}/dispatch", json={"department": "police"}, headers=dc)
    assert r.json()["dispatched_to"] == "police"  # re-dispatch keeps the original deadlines
    assert (
        r.json()["onsite_deadline"]
        == (await w.client.get(f"/api/incidents/{inc_id}", headers=root)).json()["onsite_deadline"]
    )


async def test_overdue_flags_announcements_and_stats(world: World) -> None:
    w = world
    secret = await setup(w)
    ld = w.app.state.ld
    inc_id = await open_incident(w, secret)
    qb = await member(w, "qb-op", "qibao")
    await w.client.post(f"/api/incidents/{inc_id}/dispatch", json={"department": "police"}, headers=qb)
    assert (await w.client.get(f"/api/incidents/{inc_id}", headers=qb)).json()["overdue"] is False
    async with ld.db.session() as s:  # four hours later: past the on-site deadline
        inc = await s.get(Incident, inc_id)
        inc.onsite_deadline = utcnow() - dt.timedelta(hours=1)
    d = (await w.client.get(f"/api/incidents/{inc_id}", headers=qb)).json()
    assert d["overdue"] is True and d["overdue_deadlines"] == ["onsite"]
    assert [i["id"] for i in (await w.client.get("/api/incidents?overdue=true", headers=qb)).json()] == [inc_id]
    assert (await w.client.get("/api/incidents?overdue=false", headers=qb)).json() == []
    stats = (await w.client.get("/api/incidents/stats", headers=qb)).json()
    assert stats["by_department"]["police"]["overdue"] == 1 and stats["by_area"]["七宝镇"]["open"] == 1
    before = len(ld.events._buffer)
    assert await ld.alarms.incidents.announce_overdue() == 1
    assert await ld.alarms.incidents.announce_overdue() == 0  # once per deadline
    ev = list(ld.events._buffer)[before]
    assert ev.type == "incident.overdue" and ev.data["deadline"] == "onsite" and "qibao" in ev.audience.departments
    assert len(await ld.audit.query(kind="incident_overdue")) == 1
    # On site in time for the resolution deadline: no longer overdue.
    pol = await member(w, "pol-op", "police")
    for action in ("acknowledge", "onsite"):
        await w.client.post(f"/api/incidents/{inc_id}/{action}", json={}, headers=pol)
    assert (await w.client.get(f"/api/incidents/{inc_id}", headers=qb)).json()["overdue"] is False


async def test_interrupted_intake_is_completed_on_start(world: World) -> None:
    """An incident stored but whose grants and event never went out (the process died in between)."""
    w = world
    await setup(w)
    ld = w.app.state.ld
    async with ld.db.session() as s:
        s.add(
            Incident(
                id="INC-CRASH",
                type="panic",
                area="七宝镇",
                vehicle_id="bus-1",
                cameras=["bus-1-front", "qb-1"],
                departments=["police"],
                history=[{"at": utcnow().isoformat(), "by": "source:x", "action": "opened"}],
                created_at=utcnow(),
                effects_applied=False,
                overdue_announced=[],
            )
        )
    before = len(ld.events._buffer)
    stop = await ld.alarms.start()
    await stop()
    assert {r["target"] for r in await incident_rules(w, "INC-CRASH")} == {"cam:bus-1-front", "cam:qb-1"}
    incident_events = [e.type for e in list(ld.events._buffer)[before:] if e.type != "policy.changed"]
    assert incident_events == ["incident.opened"]
    async with ld.db.session() as s:
        assert (await s.get(Incident, "INC-CRASH")).effects_applied
    after = len(ld.events._buffer)
    stop = await ld.alarms.start()  # nothing left to do the second time
    await stop()
    assert len(ld.events._buffer) == after


async def test_stats_and_offered_steps_follow_what_the_caller_may_see_and_do(world: World) -> None:
    w = world
    secret = await setup(w)
    inc_id = await open_incident(w, secret)
    qb = await member(w, "qb-op", "qibao")  # the sub-district centre in charge
    pol = await member(w, "pol-op", "police")  # routed, not yet dispatched
    tr = await member(w, "tr-op", "transport")  # not involved
    # An uninvolved department counts nothing: the stats do not reveal other departments' incidents.
    assert (await w.client.get("/api/incidents/stats", headers=tr)).json() == {"by_area": {}, "by_department": {}}
    assert (await w.client.get("/api/incidents/stats", headers=qb)).json()["by_area"]["七宝镇"]["total"] == 1

    async def offered(who: dict[str, str]) -> list[str]:
        listed = (await w.client.get("/api/incidents?state=open", headers=who)).json()
        one = (await w.client.get(f"/api/incidents/{inc_id}", headers=who)).json()
        assert [i["actions"] for i in listed] == [one["actions"]]
        return list(one["actions"])

    assert await offered(qb) == ["dispatch", "escalate", "note"]
    assert await offered(pol) == ["note"]  # only the centre dispatches
    await w.client.post(f"/api/incidents/{inc_id}/dispatch", json={"department": "police"}, headers=qb)
    assert await offered(pol) == ["acknowledge", "note"]
    # Every offered step is one the server then accepts.
    r = await w.client.post(f"/api/incidents/{inc_id}/acknowledge", json={}, headers=pol)
    assert r.status_code == 200 and r.json()["state"] == "acknowledged"
    assert await offered(pol) == ["onsite", "note"]


async def test_a_page_holds_limit_incidents_the_caller_may_see(world: World) -> None:
    """Incidents the operator may not see, interleaved with ones he may (by department, or by a camera
    he may view), far more of the former: a page still holds ``limit`` permitted ones, newest first."""
    w = world
    ld = w.app.state.ld
    pol = await member(w, "pol-op", "police")
    rule = {"subject": "dept:police", "target": "cam:xz-1", "action": "view_snapshot"}
    await w.ok("POST", "/api/admin/rules", json=rule)
    start = utcnow() - dt.timedelta(days=1)
    seen: list[str] = []  # the operator's, newest first
    rows = []
    for n in range(1200):
        # Every tenth is his: alternately routed to the police, or showing a camera he may view.
        mine = n % 10 == 3
        cams = ["xz-1"] if mine and n % 20 == 3 else ["qb-2"]
        depts = ["police"] if mine and n % 20 == 13 else ["transport"]
        inc = Incident(
            id=f"INC-{n:05d}",
            type="panic",
            area="莘庄镇",
            cameras=cams,
            departments=depts,
            created_at=start + dt.timedelta(seconds=n),
            history=[],
        )
        rows.append(inc)
        if mine:
            seen.insert(0, inc.id)
    async with ld.db.session() as s:
        s.add_all(rows)

    async def listed(query: str, who: dict[str, str] = pol) -> list[str]:
        r = await w.client.get(f"/api/incidents?{query}", headers=who)
        assert r.status_code == 200, r.text
        assert "x-incidents-incomplete" not in r.headers
        return [i["id"] for i in r.json()]

    assert await listed("limit=50") == seen[:50]  # the newest 50 rows hold only 5 of his
    assert await listed("limit=1000") == seen  # all 120 of his, not the 100 among the newest 1000 rows
    assert await listed("limit=7&state=open") == seen[:7]
    assert await listed("limit=5&area=七宝镇") == []
    assert await listed("limit=3&overdue=true") == []
    root = w.sec_root  # type: ignore[attr-defined]
    assert await listed("limit=20", root) == [f"INC-{n:05d}" for n in range(1199, 1179, -1)]  # admins: every one
    # Same creation time: the id breaks the tie, and a batch boundary inside the tie loses nothing.
    async with ld.db.session() as s:
        for inc in rows:
            (await s.get(Incident, inc.id)).created_at = start
    rules = IncidentRules(ld.alarms.incidents, ld.authorizer)
    pol_subject = ld.authorizer.subject_for(w.ids["pol-op"], "pol-op", "operator")
    got, complete = await ld.alarms.incidents.visible(lambda i: rules.may_see(pol_subject, i), limit=1000)
    assert complete and [i.id for i in got] == sorted(seen, reverse=True)
    # The scan is bounded: cut short, it says so.
    got, complete = await ld.alarms.incidents.visible(lambda i: rules.may_see(pol_subject, i), limit=200, scan_max=300)
    assert not complete and len(got) == 30


async def test_replies_name_only_the_cameras_the_caller_may_view(world: World) -> None:
    """An operator who sees an incident by his department, but may view only one of its cameras:
    the list, the incident and a step's reply name that one (also in the history), admins all."""
    w = world
    ld = w.app.state.ld
    pol = await member(w, "pol-op", "police")
    await w.ok("POST", "/api/admin/rules", json={"subject": "dept:police", "target": "cam:xz-1", "action": "view_live"})
    now = utcnow()
    async with ld.db.session() as s:
        s.add(
            Incident(
                id="INC-CAMS",
                type="panic",
                state="new",
                area="莘庄镇",
                cameras=["qb-2", "xz-1", "bus-1-front"],
                departments=["police"],
                created_at=now,
                history=[
                    {"at": now.isoformat(), "by": "source:x", "action": "opened"},
                    {"at": now.isoformat(), "by": "follow", "action": "cameras", "added": ["bus-1-front", "xz-1"]},
                ],
            )
        )
    assert await w.visible(pol) == {"xz-1"}

    def cams(inc: dict[str, Any]) -> tuple[list[str], list[str]]:
        return inc["cameras"], next(h["added"] for h in inc["history"] if h["action"] == "cameras")

    listed = (await w.client.get("/api/incidents", headers=pol)).json()
    assert [cams(i) for i in listed if i["id"] == "INC-CAMS"] == [(["xz-1"], ["xz-1"])]
    r = await w.client.get("/api/incidents/INC-CAMS", headers=pol)
    assert r.status_code == 200 and cams(r.json()) == (["xz-1"], ["xz-1"])
    r = await w.client.post("/api/incidents/INC-CAMS/note", json={"text": "看到了"}, headers=pol)
    assert r.status_code == 200 and cams(r.json()) == (["xz-1"], ["xz-1"])
    assert "qb-2" not in r.text and "bus-1-front" not in r.text
    root = w.sec_root  # type: ignore[attr-defined]
    full = (await w.client.get("/api/incidents/INC-CAMS", headers=root)).json()
    assert cams(full) == (["qb-2", "xz-1", "bus-1-front"], ["bus-1-front", "xz-1"])


async def test_vehicle_list_names_only_the_cameras_the_caller_may_view(world: World) -> None:
    w = world
    root = w.sec_root  # type: ignore[attr-defined]
    rear = {"id": "bus-1-rear", "name": "闵行12路 后", "kind": "bus", "vehicle_id": "bus-1", "source_url": "rtsp://h/r"}
    assert (await w.client.post("/api/cameras", json=rear, headers=root)).status_code == 201
    tr = await member(w, "tr-op", "transport")  # may view the front camera, not the rear one
    rule = {"subject": "dept:transport", "target": "cam:bus-1-front", "action": "view_live"}
    await w.ok("POST", "/api/admin/rules", json=rule)
    assert "bus-1-rear" not in await w.visible(tr)
    listed = {v["id"]: v for v in (await w.client.get("/api/vehicles", headers=tr)).json()}
    assert listed["bus-1"]["cameras"] == ["bus-1-front"]
    listed = {v["id"]: v for v in (await w.client.get("/api/vehicles", headers=root)).json()}
    assert sorted(listed["bus-1"]["cameras"]) == ["bus-1-front", "bus-1-rear"]
