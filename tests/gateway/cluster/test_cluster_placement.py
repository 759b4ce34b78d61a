"""Placement of cameras nobody pulls yet, against a real redis-server, three nodes in one process:
least-loaded spreads one node's burst of new cameras (a video wall) over the cluster, the node a
camera was placed on takes it without deciding again, a placement nobody takes up lapses, and
``first`` keeps every camera where its first viewer arrived."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
import redis.asyncio

from gateway.cluster.ownership import CameraOwnership, OwnedElsewhere
from tests.redis_server import redis_server


def node(url: str, name: str, **kw: object) -> CameraOwnership:
    return CameraOwnership(
        redis.asyncio.from_url(url), name, f"http://{name}:8000", lease_s=1.0, renew_s=0.2, timeout_s=0.2, **kw
    )


async def open_through(entry: CameraOwnership, nodes: dict[str, CameraOwnership], camera: str) -> tuple[str, bool]:
    """What a viewer does: ask ``entry``; on a redirect, ask the node named (which must take it)."""
    try:
        await entry.claim(camera)
        return entry.node_id, False
    except OwnedElsewhere as e:
        assert e.url == f"http://{e.node_id}:8000"
        await nodes[e.node_id].claim(camera)  # no second decision there: the lease is already its own
        return e.node_id, True


async def test_least_loaded_spreads_a_video_wall_opened_through_one_node(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        nodes = {n: node(url, n) for n in ("a", "b", "c")}
        for n in nodes.values():
            await n.renew_once()  # heartbeats with camera counts (0)
        placed = [await open_through(nodes["a"], nodes, f"wall{i:02d}") for i in range(12)]
        owners = Counter(owner for owner, _ in placed)
        assert sum(owners.values()) == 12
        assert max(owners.values()) - min(owners.values()) <= 2, owners  # within placement_slack
        assert owners["b"] >= 3 and owners["c"] >= 3, owners
        assert [r for _, r in placed[:2]] == [False, False]  # the first cameras stay where they came in
        for cam, (owner, _) in zip((f"wall{i:02d}" for i in range(12)), placed, strict=True):
            assert await nodes["a"].owner_of(cam) == owner  # one owner per camera, as Redis sees it
            assert nodes[owner].owns(cam)
            assert sum(n.owns(cam) for n in nodes.values()) == 1
        for n in nodes.values():
            await n.renew_once()
        # The counts travel with the heartbeats: a fresh node sees them and places accordingly.
        d = node(url, "d")
        await d.renew_once()
        nodes["d"] = d
        await asyncio.sleep(0.25)  # a re-reads the loads at most every renew_s
        again = [await open_through(nodes["a"], nodes, f"more{i}") for i in range(3)]
        assert {owner for owner, _ in again} == {"d"}  # the empty node takes the next ones
        assert nodes["a"].counts["placed_elsewhere"] >= 8
        for n in nodes.values():
            await n.stop()
            await n.r.aclose()


async def test_a_placement_nobody_takes_up_lapses_with_the_lease(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        a, b = node(url, "a"), node(url, "b")
        await b.renew_once()
        for i in range(2):
            await a.claim(f"own{i}")  # a holds 2, b none: the next goes to b
        await a.renew_once()
        with pytest.raises(OwnedElsewhere) as e:
            await a.claim("cam")
        assert e.value.node_id == "b" and await a.owner_of("cam") == "b"
        # The viewer never reaches b; b does not renew what it never took: the lease lapses.
        for _ in range(3):
            await b.renew_once()
        await asyncio.sleep(1.1)
        assert await a.owner_of("cam") is None
        for n in (a, b):
            await n.stop()
            await n.r.aclose()


async def test_first_placement_keeps_cameras_where_their_first_viewer_came(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        nodes = {n: node(url, n, placement="first") for n in ("a", "b", "c")}
        for n in nodes.values():
            await n.renew_once()
        placed = [await open_through(nodes["a"], nodes, f"wall{i:02d}") for i in range(6)]
        assert placed == [("a", False)] * 6
        assert nodes["a"].counts["placed_elsewhere"] == 0
        for n in nodes.values():
            await n.stop()
            await n.r.aclose()


def test_placement_arguments_checked() -> None:
    with pytest.raises(ValueError, match="placement"):
        CameraOwnership(None, "a", "http://a", placement="random")
    with pytest.raises(ValueError, match="placement_slack"):
        CameraOwnership(None, "a", "http://a", placement_slack=0)
