"""Interest and the background refresher: most-watched first, lapsing interest, bounds; refresh against
the real fixture cameras."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
import time
from pathlib import Path

import pytest

from acl.models import Role
from fixtures.camera_server import FixtureCameraServer
from gateway.settings import load_settings
from snapshot.interest import InterestBoard
from tests.live import live_gateway
from tests.snapshot.helpers import settled_connections


def test_most_watched_first_and_widths() -> None:
    board = InterestBoard(ttl_s=60)
    assert board.report("alice:1", ["a", "b", "b"], 160) == 2
    board.report("bob:2", ["b"])
    board.report("carol:3", ["c", "b"], 320)
    got = board.watched()
    assert [(w.camera_id, w.consoles) for w in got] == [("b", 3), ("a", 1), ("c", 1)]
    assert got[0].widths == (160, 320)  # bob named no width
    board.report("alice:1", ["a"], 160)  # reports add up; repeating one does not count twice
    assert [(w.camera_id, w.consoles) for w in board.watched()] == [("b", 3), ("a", 1), ("c", 1)]
    generation = board.generation
    board.withdraw("carol:3")
    assert [(w.camera_id, w.consoles) for w in board.watched()] == [("b", 2), ("a", 1)]
    board.report("bob:2", ["b", "a"])
    assert board.generation == generation  # nothing newly watched
    board.report("bob:2", ["c"])
    assert board.generation == generation + 1  # c was watched by nobody any more
    assert board.report("dave:4", []) == 0


def test_interest_lapses_and_is_bounded() -> None:
    board = InterestBoard(ttl_s=0.2, max_consoles=2, max_per_console=3)
    board.report("x", ["a", "b", "c", "d", "e"])  # only 3 per console
    assert len(board.watched()) == 3
    board.report("y", ["z"])
    board.report("w", ["q"])  # a third console pushes out the one that lapses first
    assert {w.camera_id for w in board.watched()} == {"z", "q"}
    time.sleep(0.25)
    assert board.watched() == []


@pytest.mark.media
async def test_refresher_pulls_watched_cameras_most_watched_first(tmp_path: Path) -> None:
    # One pull at a time, so the order of the frames' capture times is the refresh order. The interval
    # is long: the refresher must start because cameras nobody watched came on screen, not on a timer.
    settings = load_settings(
        None, data_dir=tmp_path / "d", snapshot={"cold_pool_size": 1, "refresh_interval_s": 60, "cache_ttl_s": 60}
    )
    with FixtureCameraServer(mounts=("h264_360p",)) as cams:
        async with live_gateway(settings) as g:
            admin = await g.add_user("admin", Role.admin)
            other = await g.add_user("other", Role.admin)
            for cid in ("a", "b", "unwatched"):
                await g.add_camera(admin, cid, cams.url("h264_360p"))
            svc = g.ld.snapshots
            before = await settled_connections(cams, "h264_360p")
            await g.client.post("/api/snapshots/interest", json={"camera_ids": ["b"]}, headers=other)
            body = {"camera_ids": ["a", "b"], "width": 160}
            r = await g.client.post("/api/snapshots/interest", json=body, headers=admin)
            assert r.status_code == 200 and r.json()["accepted"] == 2
            assert [(w.camera_id, w.consoles) for w in svc.interest.watched()] == [("b", 2), ("a", 1)]
            async with asyncio.timeout(10):
                while svc.last_taken("a", 160) is None or svc.last_taken("b", 160) is None:
                    await asyncio.sleep(0.1)
            assert await settled_connections(cams, "h264_360p") == before + 2  # one pull per watched camera
            tb, ta = svc.last_taken("b", 160), svc.last_taken("a", 160)
            assert tb is not None and ta is not None and tb < ta  # b (two consoles) before a
            assert svc.last_taken("unwatched", 160) is None
            # Younger than the interval: another pass pulls nothing.
            assert await svc.refresh_once() == 2
            assert await settled_connections(cams, "h264_360p") == before + 2
            # The refreshed thumbnail is what a request gets, from the cache.
            r = await g.client.get("/api/cameras/a/snapshot.jpg?width=160", headers=admin)
            assert r.headers["x-snapshot-source"] == "cache"
            taken = dt.datetime.fromtimestamp(ta, dt.UTC).isoformat(timespec="milliseconds")
            assert r.headers["x-snapshot-taken"] == taken


@pytest.mark.media
async def test_stopping_with_cold_pulls_in_flight_ends_them_and_logs_no_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # One pull at a time, one pull start a second: the refresher's second pull waits for its start
    # when the gateway stops. It must end with the pool, not reach the pool after it is gone.
    caplog.set_level(logging.DEBUG)
    settings = load_settings(
        None, data_dir=tmp_path / "d", snapshot={"cold_pool_size": 1, "refresh_interval_s": 60, "cache_ttl_s": 60}
    )
    with FixtureCameraServer(mounts=("h264_360p",)) as cams:
        async with live_gateway(settings) as g:
            admin = await g.add_user("admin", Role.admin)
            ids = ["a", "b", "c", "d"]
            for cid in ids:
                await g.add_camera(admin, cid, cams.url("h264_360p"))
            r = await g.client.post("/api/snapshots/interest", json={"camera_ids": ids}, headers=admin)
            assert r.json()["accepted"] == 4
            puller = g.ld.snapshots.cold
            async with asyncio.timeout(10):  # the first pull is done, the second waits for its start
                while not (puller.pulls == 1 and puller.active == 0 and puller.waiting == 1):
                    await asyncio.sleep(0.005)
        assert puller.waiting == 0  # every pull ended with the gateway
        started = puller.pulls
        # What the waiting pull would have done next (its start is a second after the first's), then
        # collect: an error nobody retrieved is logged when its task is collected.
        await asyncio.sleep(3)
        gc.collect()
        await asyncio.sleep(0.1)
        assert puller.pulls == started  # no pull started after the stop
    problems = [rec for rec in caplog.records if rec.levelno >= logging.ERROR or rec.exc_info]
    assert not problems, [rec.getMessage() for rec in problems]
    assert "cannot schedule new futures" not in caplog.text
