"""Console events through the Redis Stream: an alarm taken by one node reaches a console on another,
and a console that moves to a third node (its node was killed) resumes with Last-Event-ID without
losing an event. A validity window opening by itself is announced once, not by every node."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from gateway.cluster.events import RedisEventBus, event_id, stream_id
from tests.cluster_nodes import PASSWORD, Cluster
from tests.gateway.test_alarms import signed
from tests.gateway.test_events_live import read_events
from tests.live import window_rule
from tests.redis_server import redis_server

pytestmark = [pytest.mark.timeout(240)]


def test_event_ids_round_trip() -> None:
    assert event_id("1700000000000-3") == 1700000000000003
    assert stream_id(1700000000000003) == "1700000000000-3"
    assert event_id(b"5-999") < event_id(b"6-0")


async def test_buses_share_one_stream_and_resume_by_id(tmp_path: Path) -> None:
    import redis.asyncio

    from acl.identity import Subject
    from acl.models import Role
    from gateway.events import Viewer

    with redis_server(tmp_path) as url:
        ca, cb = redis.asyncio.from_url(url), redis.asyncio.from_url(url)
        a, b = RedisEventBus(ca, group="a", keep=100), RedisEventBus(cb, group="b", keep=100)
        await a.start()
        await b.start()
        admin = Subject(1, "admin", Role.admin, frozenset())
        viewer = Viewer(admin, lambda _s, _c: True)
        got = b.stream(viewer)
        assert (await anext(got)).startswith("retry:")
        assert await anext(got) == ": connected\n\n"
        a.publish("incident.opened", {"n": 1}, cameras=["c1"])
        first = await asyncio.wait_for(anext(got), 5)
        assert "event: incident.opened" in first and '"n": 1' in first
        first_id = int(first.split("\n")[0].removeprefix("id: "))
        a.publish("incident.updated", {"n": 2})
        a.publish("incident.updated", {"n": 3})
        await asyncio.wait_for(anext(got), 5)
        await got.aclose()
        # A third node that starts now loads the stream and resumes after the first event.
        cc = redis.asyncio.from_url(url)
        c = RedisEventBus(cc, group="c", keep=100)
        await c.start()
        resumed = c.stream(viewer, first_id)
        texts = [await asyncio.wait_for(anext(resumed), 5) for _ in range(3)]
        assert texts[0].startswith("retry:")
        assert '"n": 2' in texts[1] and '"n": 3' in texts[2]
        await resumed.aclose()
        # An id older than what the stream keeps gets a reset, not a silent gap.
        d = RedisEventBus(
            redis.asyncio.from_url(url), group="d", key="liandong:events-small", keep=100, stream_keep=100
        )
        await d.start()
        for i in range(300):
            d.publish("x", {"i": i})
        deadline = time.monotonic() + 5
        while d.published < 300 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await d.stop()
        e = RedisEventBus(
            redis.asyncio.from_url(url), group="e", key="liandong:events-small", keep=100, stream_keep=100
        )
        await e.load()
        old = e.stream(viewer, 1)
        assert (await anext(old)).startswith("retry:")
        assert (await anext(old)).startswith("event: reset")
        await old.aclose()
        for bus in (a, b, c):
            await bus.stop()
        for client in (ca, cb, cc, d.r, e.r):
            await client.aclose()


async def test_alarm_on_one_node_reaches_consoles_on_others_and_resumes_after_a_node_dies(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url, Cluster(tmp_path, url, env={"LIANDONG_ALARMS__PREWARM_S": "0"}) as c:
        c.prepare({}, {"admin": "admin"})
        c.start_all()
        n1, n2, n3 = c.nodes
        admin = await asyncio.to_thread(c.token, "admin")
        async with httpx.AsyncClient(timeout=10, headers=admin) as a:
            for dept in ("district", "police"):
                await a.put(f"{n1.url}/api/admin/departments/{dept}", json={"name": dept})
            body = {"id": "fx-1", "name": "fx-1", "source_url": "rtsp://127.0.0.1:9/x"}
            r = await a.post(f"{n1.url}/api/cameras", json={**body, "lat": 31.15, "lon": 121.35, "area": "七宝镇"})
            assert r.status_code == 201, r.text
            user = {"username": "pol", "password": PASSWORD, "role": "operator"}
            uid = (await a.post(f"{n2.url}/api/admin/users", json=user)).json()["id"]
            r = await a.put(f"{n3.url}/api/admin/users/{uid}/memberships/police", json={})
            assert r.status_code == 200, r.text
            secret = (await a.post(f"{n1.url}/api/admin/alarm-sources", json={"name": "bus-gps"})).json()["secret"]
        pol = await asyncio.to_thread(c.token, "pol")
        await asyncio.sleep(0.5)  # the inventory change reaches n2 and n3 (and their ACL)

        async with httpx.AsyncClient(timeout=10, headers=pol) as console, httpx.AsyncClient(timeout=10) as sender:
            async with console.stream("GET", f"{n2.url}/api/events") as s1:
                assert s1.status_code == 200
                await asyncio.sleep(0.2)
                t0 = time.perf_counter()
                r = await sender.post(
                    f"{n1.url}/api/alarms", **signed(secret, {"alarm_id": "E-1", "lat": 31.1501, "lon": 121.3501})
                )
                assert r.status_code == 202, r.text
                ev = (await read_events(s1, 1))[0]
                took = time.perf_counter() - t0
                assert ev["event"] == "incident.opened" and ev["data"]["cameras"] == ["fx-1"]
                inc = ev["data"]["incident_id"]
                print(f"alarm on n1 -> incident.opened on a console at n2: {took * 1000:.0f} ms")
                # The console's node dies; events keep coming from the others meanwhile.
                c.kill(n2)
            async with httpx.AsyncClient(timeout=10, headers=admin) as a:
                r = await a.post(f"{n1.url}/api/incidents/{inc}/dispatch", json={"department": "police"})
                assert r.status_code == 200, r.text
                r = await a.post(f"{n3.url}/api/incidents/{inc}/acknowledge", json={})
                assert r.status_code == 200, r.text
            # The console reconnects through the load balancer to n3 with its Last-Event-ID.
            async with console.stream("GET", f"{n3.url}/api/events", headers={"Last-Event-ID": str(ev["id"])}) as s2:
                missed = await read_events(s2, 3)
        # The police console (its unit is the one dispatched to) is also told to open the cameras.
        assert [m["event"] for m in missed] == ["incident.dispatched", "incident.updated", "incident.updated"]
        assert missed[0]["data"]["dispatched_to"] == "police" and missed[0]["data"]["cameras"] == ["fx-1"]
        assert [m["data"]["state"] for m in missed[1:]] == ["dispatched", "acknowledged"]
        assert ev["id"] < missed[0]["id"] < missed[1]["id"] < missed[2]["id"]


async def test_an_event_waits_for_the_policy_its_publisher_had(tmp_path: Path) -> None:
    import redis.asyncio

    from acl.identity import Subject
    from acl.models import Role
    from gateway.events import Viewer

    with redis_server(tmp_path) as url:
        a = RedisEventBus(redis.asyncio.from_url(url), group="a", keep=100)
        b = RedisEventBus(redis.asyncio.from_url(url), group="b", keep=100)
        a.policy_revision = lambda: 7  # the grant behind the event is revision 7 at the publisher
        seen = {"rev": 6}
        caught_up: list[float] = []

        async def catch_up() -> None:  # what the node does: reload the policy from the database
            caught_up.append(time.monotonic())
            seen["rev"] = 7

        b.policy_revision = lambda: seen["rev"]
        b.catch_up = catch_up
        for bus in (a, b):
            await bus.start()
        got = b.stream(Viewer(Subject(1, "admin", Role.admin, frozenset()), lambda _s, _c: True))
        await anext(got)
        await anext(got)
        t0 = time.monotonic()
        a.publish("incident.opened", {"n": 1})
        text = await asyncio.wait_for(anext(got), 5)
        assert '"n": 1' in text
        # Not delivered with the old policy: held until the node caught up (0.3 s without a message).
        assert caught_up and time.monotonic() - t0 >= 0.3
        await got.aclose()
        for bus in (a, b):
            await bus.stop()


async def test_a_validity_window_edge_is_announced_once_by_the_cluster(tmp_path: Path) -> None:
    # Every node's sweep passes the edge; one claims it in Redis and announces it on the shared stream.
    with redis_server(tmp_path) as url, Cluster(tmp_path, url) as c:
        c.prepare({}, {"admin": "admin"})
        c.start_all()
        n1, n2, _n3 = c.nodes
        admin = await asyncio.to_thread(c.token, "admin")
        async with httpx.AsyncClient(timeout=10, headers=admin) as a:
            await a.put(f"{n1.url}/api/admin/departments/police", json={"name": "police"})
            body = {"id": "fx-1", "name": "fx-1", "source_url": "rtsp://127.0.0.1:9/x"}
            assert (await a.post(f"{n1.url}/api/cameras", json=body)).status_code == 201
            user = {"username": "pol", "password": PASSWORD, "role": "operator"}
            uid = (await a.post(f"{n1.url}/api/admin/users", json=user)).json()["id"]
            r = await a.put(f"{n1.url}/api/admin/users/{uid}/memberships/police", json={})
            assert r.status_code == 200, r.text
        pol = await asyncio.to_thread(c.token, "pol")
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(timeout=10, headers=pol) as console, httpx.AsyncClient(timeout=10) as a:
            async with console.stream("GET", f"{n2.url}/api/events") as s1:
                assert s1.status_code == 200
                await asyncio.sleep(0.2)
                start = round(time.time() + 2.0, 3)  # windows are stored to the millisecond
                rule = window_rule("dept:police", "cam:fx-1", "view_snapshot", start)
                r = await a.post(f"{n1.url}/api/admin/rules", json=rule, headers=admin)
                assert r.status_code == 201, r.text
                got = await read_events(s1, 4, timeout=start + 2.5 - time.time(), skip=())
        # The edit, then the window opening: once, although three nodes passed it.
        assert [e["event"] for e in got] == ["policy.changed", "policy.changed"], got


async def test_logins_cached_on_other_nodes_end_with_logout_and_deactivation_there(tmp_path: Path) -> None:
    # Each node keeps validated logins a few seconds; a logout or a deactivation on one node reaches
    # the others' caches through the control bus, well before that time.
    with redis_server(tmp_path) as url, Cluster(tmp_path, url) as c:
        c.prepare({}, {"admin": "admin", "op1": "operator", "op2": "operator"})
        c.start_all()
        n1, n2, n3 = c.nodes
        admin = await asyncio.to_thread(c.token, "admin")
        op1 = await asyncio.to_thread(c.token, "op1")
        op2 = await asyncio.to_thread(c.token, "op2")
        async with httpx.AsyncClient(timeout=10) as h:
            for node in (n2, n3):  # validated there: cached
                for who in (op1, op2):
                    for _ in range(2):
                        assert (await h.get(f"{node.url}/api/auth/me", headers=who)).status_code == 200
            users = (await h.get(f"{n1.url}/api/admin/users", headers=admin)).json()
            uid2 = next(u["id"] for u in users if u["username"] == "op2")

            async def refused_after(node_url: str, who: dict[str, str], since: float) -> float:
                while time.monotonic() - since < 3:
                    if (await h.get(f"{node_url}/api/auth/me", headers=who)).status_code == 401:
                        return time.monotonic() - since
                    await asyncio.sleep(0.01)
                raise AssertionError("still accepted after 3 s")

            t0 = time.monotonic()
            assert (await h.post(f"{n1.url}/api/auth/logout", headers=op1)).status_code == 200
            assert (await h.get(f"{n1.url}/api/auth/me", headers=op1)).status_code == 401  # this node: at once
            took = [await refused_after(n.url, op1, t0) for n in (n2, n3)]
            t0 = time.monotonic()
            r = await h.patch(f"{n1.url}/api/admin/users/{uid2}", json={"active": False}, headers=admin)
            assert r.status_code == 200, r.text
            assert (await h.get(f"{n1.url}/api/auth/me", headers=op2)).status_code == 401
            took += [await refused_after(n.url, op2, t0) for n in (n2, n3)]
        print("logout / deactivation on n1 -> refused on n2, n3 after (s):", [round(t, 3) for t in took])
        assert max(took) < 2.0  # the cache time (5 s by default) is not what ends them
