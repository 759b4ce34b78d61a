"""A case dispatched to a unit opens its cameras in that unit's consoles: the ``incident.dispatched``
event reaches the unit's members (and no other subtree) with the cameras its new grant lets them view."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from acl.identity import Subject
from acl.models import Role
from gateway.events import Viewer
from gateway.policy.rules import camera_check
from tests.acl.conftest import World
from tests.gateway.test_alarms import member
from tests.gateway.test_cases import org
from tests.gateway.test_events import parse


async def next_of(gen: AsyncGenerator[str, None], kind: str | None = None) -> dict[str, Any]:
    """The next event (of ``kind``, others skipped) on a console's stream."""
    async with asyncio.timeout(10):
        async for text in gen:
            if text.startswith("id: ") and (kind is None or f"\nevent: {kind}\n" in text):
                return parse(text)
    raise AssertionError(f"the stream ended before {kind}")


async def test_dispatch_opens_the_cases_cameras_at_the_unit_it_reaches(world: World) -> None:
    w = world
    await org(w)
    ct = await member(w, "ct", "district")
    st = await member(w, "st-op", "qb-xz")
    await member(w, "xzst-op", "xz-sc")
    ld = w.app.state.ld
    may_view = camera_check(ld.authorizer)

    def console(name: str, dept: str) -> AsyncGenerator[str, None]:
        subject = Subject(w.ids[name], name, Role.operator, frozenset({dept}))
        return ld.events.stream(Viewer(subject, may_view))

    station, other = console("st-op", "qb-xz"), console("xzst-op", "xz-sc")
    for gen in (station, other):
        assert (await anext(gen)).startswith("retry:")
    case = {"category": "road", "lat": 31.1552, "lon": 121.3502, "address": "七宝镇新镇居委", "text": "路面塌陷"}
    r = await w.client.post("/api/incidents", json=case, headers=ct)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    # Before the dispatch the station may view none of the case's cameras.
    assert (await w.client.get(f"/api/incidents/{cid}", headers=st)).json()["cameras"] == []
    r = await w.client.post(f"/api/incidents/{cid}/dispatch", json={"department": "qb-xz"}, headers=ct)
    assert r.status_code == 200, r.text
    ev = await next_of(station, "incident.dispatched")
    assert ev["data"]["incident_id"] == cid and ev["data"]["dispatched_to"] == "qb-xz"
    assert set(ev["data"]["cameras"]) >= {"qb-1", "qb-2"}  # granted by the dispatch, so listed
    # Another subtree hears nothing of it: its next event is the marker published after the dispatch.
    ld.events.publish("marker", {}, departments=["xz-sc"])
    assert (await next_of(other))["event"] == "marker"
    # Escalated from the station, the case reaches its sub-district centre's consoles the same way.
    qb = await member(w, "qb-op", "qibao")
    centre = console("qb-op", "qibao")
    assert (await anext(centre)).startswith("retry:")
    r = await w.client.post(f"/api/incidents/{cid}/escalate", json={}, headers=st)
    assert r.status_code == 200, r.text
    ev = await next_of(centre, "incident.dispatched")
    assert ev["data"]["dispatched_to"] == "qibao" and set(ev["data"]["cameras"]) >= {"qb-1", "qb-2"}
    assert (await w.client.get(f"/api/incidents/{cid}", headers=qb)).status_code == 200
    for gen in (station, other, centre):
        await gen.aclose()
