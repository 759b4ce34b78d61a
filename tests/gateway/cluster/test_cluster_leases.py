"""Camera leases against a real redis-server, node by node in one process (the process tests cover
the same with real gateways): first come takes it, others are told the owner, a dead owner's lease
is waited out, a lost lease is reported, an unreachable Redis pauses instead."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio

from fixtures.camera_server import free_port
from gateway.cluster.ownership import CameraOwnership, OwnedElsewhere
from streams import StreamUnavailable
from tests.redis_server import redis_server


def node(url: str, name: str, lease_s: float = 1.0, **kw: float) -> CameraOwnership:
    return CameraOwnership(
        redis.asyncio.from_url(url), name, f"http://{name}:8000", lease_s=lease_s, renew_s=0.2, timeout_s=0.2, **kw
    )


async def test_first_come_owns_others_learn_the_owner_release_frees(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        a, b = node(url, "a"), node(url, "b")
        await a.renew_once()
        await b.renew_once()
        await a.claim("c1")
        assert a.owns("c1") and await b.owner_of("c1") == "a"
        with pytest.raises(OwnedElsewhere) as e:
            await b.claim("c1")
        assert e.value.node_id == "a" and e.value.url == "http://a:8000"
        assert await a.live_nodes() == {"a": "http://a:8000", "b": "http://b:8000"}
        a.released("c1")
        await asyncio.sleep(0.1)
        assert await b.owner_of("c1") is None
        await b.claim("c1")
        assert b.owns("c1")
        for n in (a, b):
            await n.stop()


async def test_dead_owner_is_waited_out_then_taken(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        a, b = node(url, "a"), node(url, "b")
        await a.renew_once()
        await a.claim("c1")
        await a.r.delete("liandong:node:a")  # a died: its heartbeat lapsed, its lease still runs
        t0 = time.monotonic()
        await b.claim("c1")  # held until the lease (1 s) ran out, then taken
        waited = time.monotonic() - t0
        assert 0.5 < waited < 1.3, waited
        assert await b.owner_of("c1") == "b"
        for n in (a, b):
            await n.r.aclose()


async def test_renewal_keeps_extends_and_reports_a_taken_lease(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        a = node(url, "a")
        lost: list[tuple[str, str]] = []

        async def on_lost(cam: str, why: str) -> None:
            lost.append((cam, why))

        a.on_lost = on_lost
        await a.claim("c1")
        await a.claim("c2")
        await a.renew_once()
        assert 800 < await a.r.pttl("liandong:own:c1") <= 1000
        await a.r.set("liandong:own:c2", "b", px=5000)  # another node has it now
        await a.r.delete("liandong:own:c1")  # Redis lost it (restart without persistence)
        await a.renew_once()
        await asyncio.sleep(0.05)
        assert await a.owner_of("c1") == "a" and a.owns("c1")  # taken again
        assert [c for c, _ in lost] == ["c2"] and not a.owns("c2")
        await a.r.aclose()


async def test_unreachable_redis_pauses_before_the_lease_ends_then_gives_up(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        a = node(url, "a", lease_s=1.0, outage_grace_s=0.5)
        await a.claim("c1")
    # The server is gone now: nothing answers.
    paused: list[str] = []
    lost: list[str] = []

    async def on_lost(cam: str, _why: str) -> None:
        lost.append(cam)

    a.on_suspend = lambda cam, _why: paused.append(cam)
    a.on_lost = on_lost

    async def resume(_cam: str) -> None:
        raise AssertionError("not while Redis is away")

    a.on_resume = resume
    t0 = time.monotonic()
    while not paused and time.monotonic() - t0 < 3:
        await a.renew_once()
        await asyncio.sleep(0.05)
    assert paused == ["c1"] and not a.owns("c1")
    assert time.monotonic() - t0 < 1.0  # well before the 1 s lease could lapse in Redis
    while not lost and time.monotonic() - t0 < 3:
        await a.renew_once()
        await asyncio.sleep(0.05)
    assert lost == ["c1"]
    with pytest.raises(StreamUnavailable):
        await a.claim("c2")
    await a.r.aclose()


async def test_claim_without_redis_is_unavailable_not_a_hang() -> None:
    a = CameraOwnership(redis.asyncio.from_url(f"redis://127.0.0.1:{free_port()}/0"), "a", "http://a")
    t0 = time.monotonic()
    with pytest.raises(StreamUnavailable, match="coordination unavailable"):
        await a.claim("c1")
    assert time.monotonic() - t0 < 2
    await a.r.aclose()
