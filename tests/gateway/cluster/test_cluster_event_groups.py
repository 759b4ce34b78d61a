"""Each node's consumer group with real gateway processes: ``GET /api/cluster`` shows a node falling
behind (paused by SIGSTOP, its blocked read holding an entry it cannot acknowledge), the node is
killed with SIGKILL in that state, comes back under its id with nothing pending and no lag, and a
console that reconnects to it with ``Last-Event-ID`` gets every event after its id exactly once."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio

from gateway.cluster.events import STREAM_KEY, event_id
from tests.cluster_nodes import Cluster, Node
from tests.gateway.test_events_live import read_events
from tests.redis_server import redis_server

pytestmark = [pytest.mark.timeout(240)]


async def test_a_killed_node_shows_its_lag_comes_back_under_its_id_and_consoles_see_each_event_once(
    tmp_path: Path,
) -> None:
    with redis_server(tmp_path) as url, Cluster(tmp_path, url, n=2) as c:
        c.prepare({}, {"admin": "admin"})
        c.start_all()
        n1, n2 = c.nodes
        admin = await asyncio.to_thread(c.token, "admin")
        r = redis.asyncio.from_url(url)
        numbers = itertools.count(1)
        async with httpx.AsyncClient(timeout=10, headers=admin) as a:

            async def change() -> int:
                """A policy change on n1 (each puts a policy.changed event on the stream); its revision."""
                resp = await a.put(f"{n1.url}/api/admin/departments/d{next(numbers)}", json={"name": "d"})
                assert resp.status_code == 200, resp.text
                return int(resp.json()["revision"])

            async def groups(node: Node = n1) -> dict[str, Any]:
                resp = await a.get(f"{node.url}/api/cluster")
                assert resp.status_code == 200, resp.text
                return dict(resp.json()["event_groups"])

            async def until(check: Any, timeout: float, what: str) -> dict[str, Any]:
                deadline = time.monotonic() + timeout
                while True:
                    g = await groups()
                    if check(g):
                        return g
                    assert time.monotonic() < deadline, f"{what}: {g}"
                    await asyncio.sleep(0.1)

            def settled(g: dict[str, Any], *names: str) -> bool:
                return all(n in g and (g[n]["pending"], g[n]["lag"]) == (0, 0) for n in names)

            async with a.stream("GET", f"{n2.url}/api/events") as s1:
                assert s1.status_code == 200
                await asyncio.sleep(0.2)
                for _ in range(3):
                    await change()
                seen = await read_events(s1, 3, skip=())
            assert [e["event"] for e in seen] == ["policy.changed"] * 3
            await until(lambda g: settled(g, "n1", "n2"), 10, "both groups caught up")

            c.kill(n2, signal.SIGSTOP)  # paused: its blocked read may take one entry it cannot acknowledge
            for _ in range(5):
                await change()
            behind = await until(lambda g: (g["n2"]["lag"] or 0) >= 4, 10, "n2's lag visible at n1")
            assert (behind["n1"]["lag"] or 0) <= 1  # n1 keeps up (its last read may be under way)
            late = behind["n2"]
            print(f"n2 paused: /api/cluster at n1 shows n2 pending {late['pending']}, lag {late['lag']}")
            c.kill(n2)  # SIGKILL in that state: what it had read stays pending in its group
            await change()
            await change()
            back_at = time.monotonic()
            c.start(1)  # the same node id
            after = await until(lambda g: settled(g, "n1", "n2"), 20, "n2 caught up after its restart")
            print(f"n2 restarted: nothing pending, no lag {time.monotonic() - back_at:.1f} s after the start began")
            assert set(after) == {"n1", "n2"}  # its group was kept, not a new one beside it
            assert settled(await groups(n2), "n1", "n2")  # n2 reports the same

            # The console reconnects to n2 with its Last-Event-ID: each later event once, in stream order.
            last = seen[-1]["id"]
            rows = await r.xrange(STREAM_KEY, min=f"({last // 1000}-{last % 1000}", max="+")
            expected = [event_id(sid) for sid, _f in rows]
            assert len(expected) >= 7  # 7 changes (a node's revision check may have announced one more)
            async with a.stream("GET", f"{n2.url}/api/events", headers={"Last-Event-ID": str(last)}) as s2:
                got = await read_events(s2, len(expected), skip=())
                sentinel = await change()
                nxt = await read_events(s2, 1, skip=())
            assert [e["id"] for e in got] == expected
            assert nxt[0]["event"] == "policy.changed" and nxt[0]["data"]["revision"] == sentinel  # no duplicate first
        await r.aclose()
