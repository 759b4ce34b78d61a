"""Redis restarts (no persistence: every key is gone): the nodes keep their viewers connected (the
pull pauses once the lease cannot be proven, and resumes), take their leases again, resubscribe,
and policy messages flow again."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from fixtures.camera_server import FixtureCameraServer, free_port
from tests.cluster_nodes import Cluster, open_viewer
from tests.redis_server import redis_argv
from tests.server_process import wait_for_port

pytestmark = [pytest.mark.media, pytest.mark.timeout(240)]


class Restartable:
    """A redis-server on a fixed loopback port that the test stops and starts again by PID."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(redis_argv(self.port, self.tmp), stdout=subprocess.DEVNULL)
        wait_for_port(self.proc, self.port, "redis-server", timeout_s=10, poll_s=0.02)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


@contextmanager
def restartable_redis(tmp: Path) -> Iterator[Restartable]:
    r = Restartable(tmp)
    r.start()
    try:
        yield r
    finally:
        r.stop()


async def test_redis_restart_keeps_viewers_and_resynchronises(tmp_path: Path) -> None:
    with (
        FixtureCameraServer(mounts=("h264",)) as cams,
        restartable_redis(tmp_path) as redis,
        Cluster(tmp_path, redis.url, n=2) as c,
    ):
        c.prepare({"cam1": cams.url("h264") + "?cam=cam1"}, {"admin": "admin", "op": "operator"})
        c.start_all()
        n1, n2 = c.nodes
        admin = await asyncio.to_thread(c.token, "admin")
        v = await open_viewer(n1.url, "cam1", admin)
        await v.frames(3)

        arrivals: list[float] = []

        async def consume() -> None:
            while True:
                await v.track.recv()
                arrivals.append(time.monotonic())

        consumer = asyncio.create_task(consume())
        redis.stop()  # SIGKILL: every lease, heartbeat and subscription is gone
        down = time.monotonic()
        # n1 can no longer prove it owns the camera: it pauses the pull, the viewer stays connected.
        assert await asyncio.to_thread(cams.wait_clients, "h264", 0, 5)
        paused_after = time.monotonic() - down
        assert 0.5 < paused_after < 2.5  # played on while the lease held, stopped before it could lapse
        await asyncio.sleep(max(0.0, 4.0 - (time.monotonic() - down)))  # a 4 s outage, longer than a lease
        assert arrivals and arrivals[-1] - down < 2.5  # no frames while paused
        redis.start()
        back = time.monotonic()
        deadline = back + 8
        while not (arrivals and arrivals[-1] > back) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        consumer.cancel()
        assert arrivals[-1] > back, "the viewer did not play again"
        resumed_after = next(t for t in arrivals if t > back) - back
        print(f"redis restart: paused after {paused_after:.2f} s, playing {resumed_after:.2f} s after Redis was back")
        assert resumed_after < 5.0

        async def settled() -> dict:
            deadline = time.monotonic() + 10
            while True:
                st = await asyncio.to_thread(c.status, n2, ["cam1"])
                if st["owners"]["cam1"] == "n1" and set(st["nodes"]) == {"n1", "n2"}:
                    return st
                assert time.monotonic() < deadline, st
                await asyncio.sleep(0.1)

        await settled()  # n1 took its lease again, both heartbeats are back
        await asyncio.to_thread(cams.sync)
        assert cams.clients("h264") == 1
        # A second viewer through n2 is redirected to n1 again.
        v2 = await open_viewer(n2.url, "cam1", admin)
        assert v2.redirected and v2.served_by == n1.url
        await v2.frames(1)
        # The control channel is back: a policy change on n2 reaches n1 at once.
        async with httpx.AsyncClient(timeout=10, headers=admin) as a:
            await asyncio.sleep(1.0)  # the listener's reconnect backoff
            r = await a.put(f"{n2.url}/api/admin/departments/after-restart", json={"name": "x"})
            assert r.status_code == 200, r.text
            rev = r.json()["revision"]
            t0 = time.perf_counter()
            while (await a.get(f"{n1.url}/api/cluster")).json()["policy_revision"] < rev:
                assert time.perf_counter() - t0 < 1.0
                await asyncio.sleep(0.01)
        for x in (v, v2):
            await x.close()
