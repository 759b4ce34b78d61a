"""Access removed while watching: the session registry ends the stream within a second."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from types import SimpleNamespace
from typing import Any

from tests.acl.conftest import World


async def open_session(w: World, user: str, camera: str, closed: list[str]) -> str:
    ld = w.app.state.ld
    subject = w.acl.decider.subject_for(w.ids[user], user, "operator")

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


async def test_window_edges_are_announced_to_whom_an_edit_would_be(world: World) -> None:
    """The sweep's look for window edges, at chosen times (the background sweep is stopped so the
    clock is the test's): each edge once, to the users of the rule's subject plus the policy readers,
    or to everyone for a ``*`` rule; a window already open when the rule was stored is no news."""
    w = world
    ld = w.app.state.ld
    acl = w.acl
    await acl.sweep.stop()
    await w.user("pol1")
    await w.ok("PUT", f"/api/admin/users/{w.ids['pol1']}/memberships/police", json={})
    await w.user("tr1")
    await w.ok("PUT", f"/api/admin/users/{w.ids['tr1']}/memberships/transport", json={})
    t = float(int(time.time()) + 3600)  # whole seconds: windows are stored to the millisecond

    def iso(x: float) -> str:
        return dt.datetime.fromtimestamp(x, dt.UTC).isoformat()

    for rule in (
        {"subject": "dept:police", "target": "cam:qb-1", "not_before": iso(t), "not_after": iso(t + 60)},
        {"subject": "*", "target": "cam:qb-2", "not_before": iso(t + 120)},
        {"subject": "dept:transport", "target": "cam:qb-2", "not_before": iso(time.time() - 5)},
    ):
        await w.ok("POST", "/api/admin/rules", json={"action": "view_snapshot", **rule})
    await acl.sweep.windows.passed()  # now: nothing has passed since the rules were stored
    seen = len(ld.events._buffer)

    async def edge(at: float) -> list[tuple[tuple[int, ...], tuple[str, ...], bool]]:
        nonlocal seen
        await acl.sweep.windows.passed(at)
        new = list(ld.events._buffer)[seen:]
        seen += len(new)
        assert all(e.type == "policy.changed" and e.data == {"revision": acl.decider.state.revision} for e in new)
        return [(e.audience.users, e.audience.roles, e.audience.everyone) for e in new]

    readers = ("security_admin", "auditor")
    assert await edge(t - 1) == []
    assert await edge(t) == [((w.ids["pol1"],), readers, False)]  # opened
    assert await edge(t + 30) == []  # once
    assert await edge(t + 60) == [((w.ids["pol1"],), readers, False)]  # closed
    assert await edge(t + 150) == [((), (), True)]  # a rule for everyone: everyone
    assert await edge(t + 10_000) == []


# -- the parts on their own (acl/revocation.py), without the app ---------------------------------
def _decider_with_window(t: float) -> Any:
    from acl.decider import AccessDecider
    from acl.index import CameraAttrs, Rule, VisibilityIndex
    from acl.policy import PolicyState

    rules = [Rule("dept:police", "cam:a", "view_live", nbf=t, exp=t + 60, rule_id=1)]
    st = PolicyState({}, {5: [("police", "member")]}, {5: "operator"}, {}, {}, rules)
    d = AccessDecider()
    d.install(st, VisibilityIndex([CameraAttrs("a")], rules, {}, {}), {5: frozenset({"role:operator", "dept:police"})})
    return d


class _Claims:
    def __init__(self, grant: bool) -> None:
        self.grant, self.keys = grant, []  # type: ignore[var-annotated]

    async def claim(self, key: str) -> bool:
        self.keys.append(key)
        return self.grant


async def test_an_edge_another_node_claimed_is_not_announced_here() -> None:
    from acl.notices import PolicyNotices
    from acl.revocation import ValidityWindows

    t = time.time() + 3600
    for grant, heard in ((True, [(0, frozenset({5}))]), (False, [])):
        notices = PolicyNotices()
        told: list[tuple[int, frozenset[int] | None]] = []
        notices.on_policy_changed.append(lambda rev, users, told=told: told.append((rev, users)))
        claims = _Claims(grant)
        windows = ValidityWindows(_decider_with_window(t), notices, claims)
        assert await windows.passed(t - 1) == 0 and claims.keys == []
        assert await windows.passed(t) == 1
        assert told == heard and len(claims.keys) == 1
        assert await windows.passed(t + 1) == 0  # each edge once


async def test_the_revoker_ends_what_the_viewer_lost_in_every_session_holder() -> None:
    from acl.identity import Subject
    from acl.models import Role
    from acl.revocation import StreamRevoker

    d = _decider_with_window(time.time() - 10)  # the window is open now: user 5 may view "a"

    class Holder:
        def __init__(self) -> None:
            self.ended: list[tuple[int | None, set[str] | None, str]] = []
            gone = Subject(user_id=6, username="gone", role=Role.operator, departments=frozenset())
            self.sessions = [
                SimpleNamespace(user_id=5, username="pol", camera_id="a", subject=None),
                SimpleNamespace(user_id=6, username="gone", camera_id="a", subject=gone),
            ]

        def list(self) -> list[Any]:
            return self.sessions

        async def end_sessions(self, user_id: int | None, camera_ids: set[str] | None, reason: str) -> int:
            self.ended.append((user_id, camera_ids, reason))
            return 1

    holders = [Holder(), Holder()]
    assert await StreamRevoker(d, holders).enforce("test") == 2
    assert all(h.ended == [(6, {"a"}, "permission withdrawn: test")] for h in holders)


async def test_the_windows_do_not_keep_a_replaced_policy_alive() -> None:
    import weakref

    from acl.notices import PolicyNotices
    from acl.revocation import LocalEdgeClaim, ValidityWindows

    t = time.time() + 3600
    d = _decider_with_window(t)
    windows = ValidityWindows(d, PolicyNotices(), LocalEdgeClaim())
    await windows.passed()
    old = weakref.ref(d.state)
    d.install(_decider_with_window(t).state, d.index, d.subjects)  # a reload replaced the policy
    assert old() is None
    assert await windows.passed(t) == 1  # and the new rules are looked at
