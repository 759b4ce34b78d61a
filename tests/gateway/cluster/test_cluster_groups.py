"""Each node's consumer group on the event stream, against a real redis-server, node by node in one
process: a node restarted under its id acknowledges what it had read and holds every event once; an
entry whose reply was lost on the way is read again; the group comes back after a Redis restart and
after the stream was deleted; groups of dead nodes are removed after the idle setting, live ones
are not. (tests/gateway/cluster/test_cluster_event_groups.py does the same with real gateways.)"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from acl.identity import Subject
from acl.models import Role
from gateway.cluster.events import STREAM_KEY, RedisEventBus, entry_fields
from gateway.cluster.ownership import CameraOwnership
from gateway.events import Viewer
from tests.gateway.cluster.test_cluster_redis_restart import restartable_redis
from tests.redis_proxy import RedisProxy
from tests.redis_server import redis_server

pytestmark = [pytest.mark.timeout(120)]

ADMIN = Viewer(Subject(1, "admin", Role.admin, frozenset()), lambda _s, _c: True)


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "") -> float:
    """Poll ``check`` until true; seconds it took (AssertionError after ``timeout``)."""
    t0 = time.monotonic()
    while not await check():
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


def data_of(sse: str) -> dict[str, Any]:
    """The data of one SSE event text."""
    line = next(x for x in sse.split("\n") if x.startswith("data: "))
    return dict(json.loads(line[6:]))


def id_of(sse: str) -> int:
    return int(sse.split("\n")[0].removeprefix("id: "))


async def replay(bus: RedisEventBus, last_id: int) -> tuple[list[str], AsyncGenerator[str, None]]:
    """What a console resuming after ``last_id`` is sent before it is live, and its stream."""
    stream = bus.stream(ADMIN, last_id)
    assert (await anext(stream)).startswith("retry:")
    out = []
    while (text := await asyncio.wait_for(anext(stream), 5)) != ": connected\n\n":
        out.append(text)
    return out, stream


@asynccontextmanager
async def buses(url: str) -> AsyncIterator[Callable[..., RedisEventBus]]:
    """Makes buses (``make(group, **kw)``); stops them and closes their clients at the end."""
    made: list[RedisEventBus] = []

    def make(group: str, client_url: str | None = None, **kw: Any) -> RedisEventBus:
        bus = RedisEventBus(redis.asyncio.from_url(client_url or url), group=group, keep=100, **kw)
        made.append(bus)
        return bus

    try:
        yield make
    finally:
        for bus in made:
            await bus.stop()  # also closes its client


async def test_a_node_restarted_under_its_id_acknowledges_what_it_had_read_and_keeps_each_event_once(
    tmp_path: Path,
) -> None:
    with redis_server(tmp_path) as url:
        raw = redis.asyncio.from_url(url)
        async with buses(url) as make:
            pub, n1 = make("pub"), make("n1")
            await pub.start()
            await n1.start()
            for i in range(3):
                pub.publish("x", {"i": i})
            await until(lambda: _has(n1, 3), what="three events at n1")
            assert (await n1.groups())["n1"] == {
                "pending": 0,
                "lag": 0,
                "last_delivered_id": (await raw.xrevrange(STREAM_KEY, count=1))[0][0].decode(),
                "consumers": 1,
            }
            await n1.stop()
            for i in range(3, 7):
                pub.publish("x", {"i": i})
            await until(lambda: _published(pub, 7), what="seven events in the stream")
            # The node read two of the new entries and died before they reached its buffer: no XACK.
            got = await raw.xreadgroup("n1", "n1", {STREAM_KEY: ">"}, count=2)
            assert len(got[0][1]) == 2
            before = (await pub.groups())["n1"]
            assert (before["pending"], before["lag"]) == (2, 2)

            again = make("n1")  # the same node id, a new process
            await again.start()

            async def settled() -> bool:
                g = (await again.groups())["n1"]
                return (g["pending"], g["lag"]) == (0, 0)

            await until(settled, what="n1's group to have nothing pending and no lag")
            # The two it had read and the two after them were loaded at start: skipped, not delivered twice.
            assert again.skipped == 4 and again.acked == 4
            events, _ = await replay(again, 0)
            assert [data_of(e)["i"] for e in events] == list(range(7))
            third = id_of(events[2])
            resumed, live = await replay(again, third)
            assert [data_of(e)["i"] for e in resumed] == [3, 4, 5, 6]
            pub.publish("x", {"i": 7})
            nxt = await asyncio.wait_for(anext(live), 5)
            assert data_of(nxt)["i"] == 7 and id_of(nxt) > id_of(resumed[-1])
            await live.aclose()
        await raw.aclose()


async def _has(bus: RedisEventBus, n: int) -> bool:
    events, stream = await replay(bus, 0)
    await stream.aclose()
    return len(events) >= n


async def _published(bus: RedisEventBus, n: int) -> bool:
    return bus.published >= n


async def test_an_entry_whose_reply_was_lost_is_read_again(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url, RedisProxy(url) as proxy:
        raw = redis.asyncio.from_url(url)
        async with buses(url) as make:
            pub, n1 = make("pub"), make("n1", client_url=proxy.url)
            n1.pending_check_s = 1.0
            await pub.start()
            await n1.start()
            _, live = await replay(n1, 0)
            pub.publish("x", {"n": "first"})
            assert data_of(await asyncio.wait_for(anext(live), 5))["n"] == "first"
            for attempt in range(5):
                await asyncio.sleep(0.3)  # n1 is in its blocking read (re-issued every second)
                proxy.cut()  # from now on nothing n1 sends or receives gets through
                pub.publish("x", {"n": f"lost-{attempt}"})
                try:
                    # Redis hands the entry to n1's blocked read (pending in n1's group); the reply is swallowed.
                    await until(lambda: _pending(raw, "n1", 1), timeout=2, what="the entry pending at n1")
                    break
                except AssertionError:  # the cut fell between two reads: the entry arrives normally
                    proxy.heal()
                    assert data_of(await asyncio.wait_for(anext(live), 10))["n"] == f"lost-{attempt}"
            else:
                pytest.fail("never caught n1 in a blocking read")
            t0 = time.monotonic()
            proxy.heal()  # n1's connection is reset; its client retries the read with ">", past the entry
            got = data_of(await asyncio.wait_for(anext(live), 15))
            assert got["n"] == f"lost-{attempt}"
            print(f"lost reply: the entry reached n1 {time.monotonic() - t0:.2f} s after the connection came back")
            await until(lambda: _pending(raw, "n1", 0), what="nothing pending at n1")
            pub.publish("x", {"n": "after"})
            assert data_of(await asyncio.wait_for(anext(live), 5))["n"] == "after"  # no duplicate before it
            await live.aclose()
        await raw.aclose()


async def _pending(raw: Any, group: str, n: int) -> bool:
    return int((await raw.xpending(STREAM_KEY, group))["pending"]) == n


async def test_groups_come_back_after_a_redis_restart_and_after_the_stream_is_deleted(tmp_path: Path) -> None:
    with restartable_redis(tmp_path) as server:
        async with buses(server.url) as make:
            a, b = make("a"), make("b")
            await a.start()
            await b.start()
            _, live = await replay(b, 0)
            a.publish("x", {"n": 1})
            first = await asyncio.wait_for(anext(live), 5)
            assert data_of(first)["n"] == 1

            server.stop()  # SIGKILL, no persistence: the stream and both groups are gone
            server.start()
            t0 = time.monotonic()
            a.publish("x", {"n": 2})
            second = await asyncio.wait_for(anext(live), 20)
            print(f"redis restart: events at b again {time.monotonic() - t0:.2f} s after Redis was back")
            assert data_of(second)["n"] == 2 and id_of(second) > id_of(first)
            raw = redis.asyncio.from_url(server.url)

            async def both() -> bool:
                return {"a", "b"} <= set(await a.groups())

            await until(both, what="both groups created again")

            await raw.delete(STREAM_KEY)  # the stream (and the groups) deleted under running nodes: NOGROUP
            a.publish("x", {"n": 3})
            third = await asyncio.wait_for(anext(live), 15)
            assert data_of(third)["n"] == 3 and id_of(third) > id_of(second)
            await until(both, what="both groups created again after the stream was deleted")
            a.publish("x", {"n": 4})
            assert data_of(await asyncio.wait_for(anext(live), 5))["n"] == 4  # each once, in order
            await live.aclose()
            await raw.aclose()


async def test_groups_of_dead_nodes_are_removed_after_the_idle_setting(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        raw = redis.asyncio.from_url(url)
        async with buses(url) as make:
            await raw.xadd(STREAM_KEY, entry_fields("x", {}))
            for g in ("gone", "alive", "never-read"):
                await raw.xgroup_create(STREAM_KEY, g, id="0-0")
            for g in ("gone", "alive"):  # their nodes' last read
                await raw.xreadgroup(g, g, {STREAM_KEY: ">"}, count=1)
            read_at = time.monotonic()
            # "alive" still heartbeats (the key ownership renews); "gone" and "never-read" do not.
            await raw.set("liandong:node:alive", json.dumps({"url": "http://127.0.0.1:2"}), px=60_000)
            n1 = make("n1", group_idle_s=2.0)  # checked every second (a fifth of it, at least 1 s)
            own = CameraOwnership(raw, "n1", "http://127.0.0.1:1")
            n1.heartbeating = own.heartbeating
            started = time.monotonic()
            await n1.start()

            async def removed(name: str) -> bool:
                return name not in await n1.groups()

            await until(lambda: removed("gone"), what="the dead node's group removed")
            gone_after = time.monotonic() - read_at
            assert gone_after > 2.0, gone_after  # not before its consumer was idle that long
            await until(lambda: removed("never-read"), what="the never-read group removed")
            never_after = time.monotonic() - started
            assert never_after > 2.0, never_after  # idle counted from when n1 first saw it without heartbeat
            print(f"dead groups removed {gone_after:.1f} s after the last read / {never_after:.1f} s after n1 started")
            groups = await n1.groups()
            assert set(groups) == {"n1", "alive"}  # the live node's group stays though idle as long
            assert sorted(n1.groups_removed) == ["gone", "never-read"]
        await raw.aclose()
