"""Cases as the district runs them (issue 18): a hotline case with only an address, dispatched to
a station, escalated to its sub-district, handled, confirmed by call-back, verified by someone
other than the handler and closed, with the wrong actors refused at each step; subtree visibility
and reporter privacy; categories; statistics that keep a late case overdue after closing, and
their XLSX/CSV export."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from openpyxl import load_workbook

from acl.models import Role
from gateway.alarms.models import Incident
from gateway.alarms.notices import Outbox
from gateway.alarms.settings import NotifySettings
from storage.db import utcnow
from tests.acl.conftest import World
from tests.gateway.test_alarms import member

CASE = {
    "category": "road",
    "address": "七宝镇富强街12号 新镇居委门口",
    "reporter_name": "张三丰",
    "reporter_phone": "13812345678",
    "text": "路面塌陷，约一米见方",
}


async def org(w: World) -> None:
    """A second sub-district and a station under each (the fixture has the district, 七宝镇, police, transport)."""
    for dept, name, level, area, parent in [
        ("xinzhuang", "莘庄镇分中心", "subdistrict", "莘庄镇", "district"),
        ("qb-xz", "新镇居委", "station", "七宝镇", "qibao"),
        ("xz-sc", "莘城居委", "station", "莘庄镇", "xinzhuang"),
    ]:
        body = {"name": name, "level": level, "area": area, "parent_id": parent}
        await w.ok("PUT", f"/api/admin/departments/{dept}", json=body)


async def test_hotline_case_from_address_to_close(world: World) -> None:
    w = world
    await org(w)
    ct = await member(w, "ct", "district")  # a hotline call-taker at the district centre
    qb = await member(w, "qb-op", "qibao")
    st = await member(w, "st-op", "qb-xz")
    xz = await member(w, "xz-op", "xinzhuang")
    xzst = await member(w, "xzst-op", "xz-sc")
    feed = await w.user("feed", Role.integration)
    ld = w.app.state.ld

    # Only call-takers (operators of a command centre) and integration accounts open cases.
    assert (await w.client.post("/api/incidents", json=CASE, headers=st)).status_code == 403
    bad = await w.client.post("/api/incidents", json={**CASE, "reporter_phone": "call me"}, headers=ct)
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "reporter_phone"
    r = await w.client.post("/api/incidents", json=CASE, headers=ct)
    assert r.status_code == 201, r.text
    case = r.json()
    cid = case["id"]
    # The address alone picked the sub-district and the station; no coordinates, so no cameras.
    assert (case["area"], case["station"], case["level"], case["origin"]) == (
        "七宝镇",
        "qb-xz",
        "subdistrict",
        "hotline",
    )
    assert case["reporter"] == {"name": "张三丰", "phone": "13812345678"}  # its creator sees it in full
    assert case["cameras"] == [] and case["state"] == "new"
    async with ld.db.session() as s:  # encrypted at rest
        row = await s.get(Incident, cid)
        assert "13812345678" not in (row.reporter_phone_enc or "") and row.reporter_phone_enc

    async def step(who: dict[str, str], action: str, **body: Any) -> Any:
        return await w.client.post(f"/api/incidents/{cid}/{action}", json=body, headers=who)

    # Another subtree never sees the case, nor its reporter.
    for other in (xz, xzst):
        assert (await w.client.get(f"/api/incidents/{cid}", headers=other)).status_code == 404
        assert (await w.client.get(f"/api/incidents/{cid}/reporter", headers=other)).status_code == 404
        assert cid not in [i["id"] for i in (await w.client.get("/api/incidents", headers=other)).json()]
    # The station the case is at sees it, masked, until it handles it.
    got = (await w.client.get(f"/api/incidents/{cid}", headers=st)).json()
    assert got["reporter"] == {"name": "张**", "phone": "138****5678"}
    assert (await w.client.get(f"/api/incidents/{cid}/reporter", headers=st)).status_code == 403
    assert "13812345678" not in (await w.client.get("/api/incidents", headers=qb)).text  # masked in lists

    # Photos: JPEG or PNG by their bytes, size-limited, listed on the case, readable by whoever sees it.
    jpeg = b"\xff\xd8\xff\xe0" + b"\0" * 2000
    hdr = {**st, "Content-Type": "image/jpeg"}
    r = await w.client.post(f"/api/incidents/{cid}/photos?text=现场照片", content=jpeg, headers=hdr)
    assert r.status_code == 201, r.text
    assert (r.json()["n"], r.json()["type"], r.json()["by"]) == (1, "image/jpeg", "st-op")
    fake = await w.client.post(f"/api/incidents/{cid}/photos", content=b"<svg/>", headers=hdr)
    assert fake.status_code == 422 and fake.json()["detail"][0]["field"] == "body"
    ld.alarms.photos.max_bytes = 1024
    big = await w.client.post(f"/api/incidents/{cid}/photos", content=jpeg, headers=hdr)
    assert big.status_code == 422 and "at most 1024 bytes" in big.text
    assert (await w.client.post(f"/api/incidents/{cid}/photos", content=jpeg, headers=xz)).status_code == 404
    got = await w.client.get(f"/api/incidents/{cid}/photos/1", headers=qb)
    assert got.status_code == 200 and got.content == jpeg and got.headers["content-type"] == "image/jpeg"
    assert (await w.client.get(f"/api/incidents/{cid}/photos/1", headers=xzst)).status_code == 404
    assert [a["n"] for a in (await w.client.get(f"/api/incidents/{cid}", headers=qb)).json()["attachments"]] == [1]

    # Dispatch goes downwards or to departments only; the field steps belong to the unit it is dispatched to.
    r = await step(qb, "dispatch", department="xz-sc")
    assert r.status_code == 403 and r.json()["detail"][0]["field"] == "department"
    assert (await step(st, "dispatch", department="qb-xz")).status_code == 403  # a station does not command
    r = await step(qb, "dispatch", department="qb-xz")
    assert r.status_code == 200 and r.json()["dispatched_to"] == "qb-xz"
    d = r.json()
    hours = [
        (dt.datetime.fromisoformat(d[k]) - dt.datetime.fromisoformat(d["dispatched_at"])).total_seconds() / 3600
        for k in ("onsite_deadline", "resolve_deadline")
    ]
    assert [round(h, 3) for h in hours] == [3.0, 168.0]  # the district's defaults
    assert (await step(xzst, "acknowledge")).status_code == 404
    assert (await step(st, "acknowledge")).json()["state"] == "acknowledged"
    full = await w.client.get(f"/api/incidents/{cid}/reporter", headers=st)  # now a handler
    assert full.status_code == 200 and full.json()["reporter"]["phone"] == "13812345678"
    views = await ld.audit.query(kind="incident_reporter_viewed")
    assert [(a.username, a.incident_id) for a in views] == [("st-op", cid)]

    # The station cannot handle it: up to its sub-district centre, which acknowledges anew.
    assert (await step(xz, "escalate")).status_code == 404
    r = await step(st, "escalate")
    assert (r.json()["dispatched_to"], r.json()["state"]) == ("qibao", "dispatched")
    assert (await step(st, "onsite")).status_code == 403  # no longer the station's
    for action, state in (("acknowledge", "acknowledged"), ("onsite", "on_site"), ("resolve", "resolved")):
        assert (await step(qb, action)).json()["state"] == state
    assert (await step(qb, "close")).status_code == 409  # not before the call-back and the verification
    r = await step(qb, "confirm", result="unsatisfied", text="市民称仍有积水")
    assert r.json()["state"] == "on_site"  # the reporter is not satisfied: back to the handlers
    assert (await step(qb, "resolve")).json()["state"] == "resolved"
    r = await step(qb, "confirm", result="satisfied", text="回访满意")
    assert r.json()["state"] == "confirmed"
    # The handler never verifies their own work; someone else from the commanding units does.
    assert (await step(qb, "verify", passed=True, text="ok")).status_code == 403
    assert (await step(ct, "verify", passed=True, text="现场核实已修复")).json()["state"] == "verified"
    r = await step(qb, "close")
    assert r.status_code == 200 and r.json()["state"] == "closed" and r.json()["closed_at"]
    hist = r.json()["history"]
    assert [h["action"] for h in hist] == [
        "opened",
        "photo",
        "dispatch",
        "acknowledge",
        "escalate",
        "acknowledge",
        "onsite",
        "resolve",
        "confirm",
        "resolve",
        "confirm",
        "verify",
        "close",
    ]
    assert hist[8]["result"] == "unsatisfied" and hist[11]["by"] == "ct" and hist[11]["passed"] is True
    assert r.json()["handlers"] == ["qb-op"]

    # An integration account's case with coordinates opens the cameras around it like an alarm.
    r = await w.client.post(
        "/api/incidents",
        json={"category": "fire", "lat": 31.1552, "lon": 121.3502, "text": "冒烟", "origin": "hotline"},
        headers=feed,
    )
    assert r.status_code == 201, r.text
    assert r.json()["origin"] == "api" and r.json()["area"] == "七宝镇"
    assert r.json()["cameras"] == []  # the reply shows only the cameras its caller may view: none
    seen = (await w.client.get(f"/api/incidents/{r.json()['id']}", headers=qb)).json()
    assert set(seen["cameras"]) >= {"qb-1", "qb-2"}  # granted to the sub-district on duty, like an alarm's


async def test_categories_and_overdue_kept_in_statistics(world: World) -> None:
    w = world
    await org(w)
    ct = await member(w, "ct", "district")
    qb = await member(w, "qb-op", "qibao")
    xz = await member(w, "xz-op", "xinzhuang")
    ld = w.app.state.ld

    # Categories: admin-edited, all or nothing; the rest keep the defaults.
    assert (await w.client.put("/api/incident-categories", json=[], headers=qb)).status_code == 403
    r = await w.client.put(
        "/api/incident-categories",
        json=[
            {"name": "noise", "onsite_hours": 2, "resolve_hours": 24},
            {"name": "bad", "onsite_hours": 9, "resolve_hours": 1},
        ],
        headers=w.sec,
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "[1].onsite_hours"
    assert (await w.client.get("/api/incident-categories", headers=qb)).json()["categories"] == []
    r = await w.client.put(
        "/api/incident-categories",
        json=[{"name": "noise", "label": "噪声扰民", "onsite_hours": 2, "resolve_hours": 24}],
        headers=w.sec,
    )
    assert r.status_code == 200 and r.json()["default"] == {"onsite_hours": 3.0, "resolve_hours": 168.0}

    # Notices go through the outbox: here a webhook is configured but nobody delivers (no sender).
    ld.alarms.incidents.outbox = Outbox(NotifySettings(webhook_url="http://127.0.0.1:9/hook"), {"webhook"})
    ids = []
    for cat in ("noise", "road"):
        r = await w.client.post("/api/incidents", json={**CASE, "category": cat}, headers=ct)
        ids.append(r.json()["id"])
        r = await w.client.post(f"/api/incidents/{ids[-1]}/dispatch", json={"department": "qb-xz"}, headers=qb)
        d = r.json()
        span = dt.datetime.fromisoformat(d["resolve_deadline"]) - dt.datetime.fromisoformat(d["dispatched_at"])
        assert span == dt.timedelta(hours=24 if cat == "noise" else 168)
    late, ok = ids
    st = await member(w, "st-op", "qb-xz")
    # The noise case: on site after its deadline (its clock moved back), then handled and closed.
    async with ld.db.session() as s:
        inc = await s.get(Incident, late)
        inc.onsite_deadline = utcnow() - dt.timedelta(minutes=5)
    assert await ld.alarms.incidents.announce_overdue() == 1
    notices = (await w.client.get(f"/api/incidents/{late}", headers=qb)).json()["notices"]
    assert [(n["kind"], n["unit"], n["channel"]) for n in notices] == [
        ("dispatched", "qb-xz", "webhook"),
        ("deadline_passed", "qb-xz", "webhook"),
    ]
    assert all(n["state"] in ("pending", "failed") and n["sent_at"] is None for n in notices)
    for who, action, body in [
        (st, "acknowledge", {}),
        (st, "onsite", {}),
        (st, "resolve", {}),
        (qb, "confirm", {"result": "satisfied"}),
        (qb, "verify", {"passed": True, "text": "已核实"}),
        (qb, "close", {}),
    ]:
        r = await w.client.post(f"/api/incidents/{late}/{action}", json=body, headers=who)
        assert r.status_code == 200, (action, r.text)
    assert r.json()["state"] == "closed" and r.json()["overdue"] is False and r.json()["overdue_ever"] == ["onsite"]
    for action in ("acknowledge", "onsite"):
        await w.client.post(f"/api/incidents/{ok}/{action}", json={}, headers=st)

    month = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
    r = await w.client.get(f"/api/incidents/stats?month={month}&by=station", headers=qb)
    assert r.status_code == 200, r.text
    [row] = r.json()["units"]
    assert row["unit"] == "qb-xz" and row["name"] == "新镇居委"
    assert (row["received"], row["dispatched"], row["closed"], row["overdue"]) == (2, 2, 1, 1)  # late one kept
    assert row["onsite_in_time_pct"] == 50.0 and row["rank"] == 1
    sub = (await w.client.get(f"/api/incidents/stats?month={month}&by=subdistrict&daily=true", headers=ct)).json()
    assert [(u["unit"], u["received"]) for u in sub["units"]] == [("七宝镇", 2)]
    assert [(d["unit"], d["received"]) for d in sub["days"]] == [("七宝镇", 2)]
    # Another subtree counts none of them.
    assert (await w.client.get(f"/api/incidents/stats?month={month}&by=station", headers=xz)).json()["units"] == []
    bad = await w.client.get("/api/incidents/stats?month=2026-13", headers=qb)
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "month"

    r = await w.client.get(f"/api/incidents/stats/export?month={month}&by=station&format=xlsx&daily=true", headers=qb)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.openxml")
    wb = load_workbook(io.BytesIO(r.content))
    rows = list(wb.worksheets[0].iter_rows(values_only=True))
    assert rows[0][:3] == ("单位", "受理", "派遣") and rows[1][0] == "新镇居委" and rows[1][1] == 2
    assert rows[1][6] == 1  # overdue (ever)
    r = await w.client.get(f"/api/incidents/stats/export?month={month}&by=station&format=csv", headers=qb)
    assert r.content.startswith("\ufeff单位,受理".encode())
    assert len(await ld.audit.query(kind="incident_stats_exported")) == 2
