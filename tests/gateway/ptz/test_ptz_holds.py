"""PTZ holds: the same arbitration in one process and on a real redis-server shared by two nodes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio

from gateway.cluster.ptz_holds import RedisPtzHolds
from gateway.ptz.holds import Holder, LocalPtzHolds, PtzHolds, PtzLock
from tests.redis_server import redis_server


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as url:
        yield url


@pytest.fixture(params=["local", "redis"])
async def holds(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[PtzHolds]:
    if request.param == "local":
        yield LocalPtzHolds()
        return
    client = redis.asyncio.from_url(redis_url)
    await client.flushdb()
    try:
        yield RedisPtzHolds(client)
    finally:
        await client.aclose()


def who(uid: int, priority: int, unit: str = "qibao") -> Holder:
    return Holder(uid, f"u{uid}", priority, unit, f"{unit}-name", token_id=uid * 10)


async def wait_until(cond: object, deadline_s: float = 15.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if await cond():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_take_over_equal_waits_idle_release(holds: PtzHolds) -> None:
    r = await holds.claim("cam", who(1, 50), idle_s=60)
    assert r.granted and r.previous is None and r.holder.user_id == 1 and r.holder.last > 0
    again = await holds.claim("cam", who(1, 50), idle_s=60)
    assert again.granted and again.previous is None and again.holder.since == pytest.approx(r.holder.since)
    equal = await holds.claim("cam", who(2, 50), idle_s=60)
    assert not equal.granted and equal.holder.user_id == 1 and 50 < equal.seconds_left <= 60
    lower = await holds.claim("cam", who(3, 20), idle_s=60)
    assert not lower.granted
    higher = await holds.claim("cam", who(4, 100, "police"), idle_s=60)
    assert higher.granted and higher.took_over and higher.previous is not None
    assert higher.previous.user_id == 1 and higher.previous.unit_name == "qibao-name"
    held = await holds.holder("cam", 60)
    assert held is not None and held[0].user_id == 4 and held[0].token_id == 40
    # The holder falls idle: an equal (or lower) priority gets the camera.
    # (The idle time is each claim's own: refusals are asked with a long one, so load cannot free the camera.)
    r = await holds.claim("cam2", who(1, 50), idle_s=60)
    assert not (await holds.claim("cam2", who(2, 50), idle_s=60)).granted

    async def free() -> bool:
        return (await holds.claim("cam2", who(2, 50), idle_s=0.3)).granted

    await wait_until(free)
    assert (await holds.holder("cam2", 0.3) or (None,))[0] is not None
    # Release: only by its holder.
    assert await holds.release("cam", 1) is None
    ended = await holds.release("cam", 4)
    assert ended is not None and ended.user_id == 4
    assert await holds.holder("cam", 60) is None


async def test_incident_locks(holds: PtzHolds) -> None:
    lock = PtzLock("inc-1", ("police", "qibao"), time.time() + 60, "qb-op")
    await holds.lock("cam", lock)
    got = await holds.lock_of("cam")
    assert got is not None and got.incident_id == "inc-1" and got.departments == ("police", "qibao")
    assert not await holds.unlock("cam", "inc-2")  # another incident's lock stays
    assert await holds.unlock("cam", "inc-1")
    assert await holds.lock_of("cam") is None
    await holds.lock("cam", PtzLock("inc-3", ("police",), time.time() + 0.2))

    async def gone() -> bool:
        return await holds.lock_of("cam") is None

    await wait_until(gone)


async def test_two_nodes_one_holder(redis_url: str) -> None:
    """Two nodes (two clients) race for a free camera with equal priorities: exactly one wins."""
    a, b = redis.asyncio.from_url(redis_url), redis.asyncio.from_url(redis_url)
    try:
        await a.flushdb()
        node_a, node_b = RedisPtzHolds(a), RedisPtzHolds(b)
        for round_ in range(5):
            cam = f"race-{round_}"
            claims = [(node_a if i % 2 else node_b).claim(cam, who(100 + i, 50), idle_s=60) for i in range(20)]
            results = await asyncio.gather(*claims)
            winners = [r.holder.user_id for r in results if r.granted]
            assert len(winners) == 1
            assert all(r.holder.user_id == winners[0] for r in results)
        # A higher priority on the other node takes over, and both nodes see the same holder.
        r = await node_a.claim("race-0", who(7, 100, "police"), idle_s=60)
        assert r.took_over
        seen_a, seen_b = await node_a.holder("race-0", 60), await node_b.holder("race-0", 60)
        assert seen_a is not None and seen_b is not None and seen_a[0] == seen_b[0] and seen_a[0].user_id == 7
    finally:
        await a.aclose()
        await b.aclose()
