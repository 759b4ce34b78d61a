"""Access removed while watching: the session registry ends the stream within a second."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from tests.acl.conftest import World


async def open_session(w: World, user: str, camera: str, closed: list[str]) -> str:
    ld = w.app.state.ld
    subject = w.acl.subject_for(w.ids[user], user, "operator")

    async def closer(reason: str) -> None:
        closed.append(reason)

    s = await ld.sessions.open(
        user_id=subject.user_id,
        username=user,
        camera_id=camera,
        protocol="test",
        address="127.0.0.1",
        token_id=None,
        closer=closer,
        subject=subject,
    )
    return str(s.id)


async def test_removed_membership_ends_stream(world: World) -> None:
    w = world
    await w.user("viewer")
    await w.ok("PUT", f"/api/admin/users/{w.ids['viewer']}/memberships/police", json={})
    await w.ok("POST", "/api/admin/rules", json={"subject": "dept:police", "target": "cam:qb-1", "action": "view_live"})
    await w.ok("POST", "/api/admin/rules", json={"subject": "dept:police", "target": "cam:qb-2", "action": "view_live"})
    closed: list[str] = []
    keep = await open_session(w, "viewer", "qb-2", closed)
    sid = await open_session(w, "viewer", "qb-1", closed)
    rules = await w.ok("GET", "/api/admin/rules?target=cam:qb-1")
    t0 = time.monotonic()
    await w.ok("DELETE", f"/api/admin/rules/{rules[0]['id']}")
    assert time.monotonic() - t0 < 1.0
    ld = w.app.state.ld
    assert ld.sessions.get(sid) is None
    assert ld.sessions.get(keep) is not None  # other cameras keep playing
    assert closed == [f"permission withdrawn: rule {rules[0]['id']} removed"]
    ends = await ld.audit.query(kind="stream_end")
    assert ends[0].camera_id == "qb-1" and "permission withdrawn" in (ends[0].detail or "")


async def test_expiring_grant_ends_stream_by_itself(world: World) -> None:
    w = world
    await w.user("viewer2")
    until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    await w.ok(
        "POST",
        "/api/admin/rules",
        json={"subject": "role:operator", "target": "cam:xz-1", "action": "view_live", "not_after": until.isoformat()},
    )
    closed: list[str] = []
    sid = await open_session(w, "viewer2", "xz-1", closed)
    deadline = time.monotonic() + 4
    while w.app.state.ld.sessions.get(sid) is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert w.app.state.ld.sessions.get(sid) is None
    assert closed and closed[0].startswith("permission withdrawn")
