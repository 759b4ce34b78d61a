"""Policy changes made with the ``liandong`` CLI in a cluster: announced on Redis once committed
(the API's ``policy`` control message, and ``policy.changed`` for the consoles), so running nodes
apply them at once instead of at their next once-a-second revision check; when Redis cannot be
reached the change stands (a warning) and the nodes still find it by that check."""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from fixtures.camera_server import free_port
from gateway.cluster.events import STREAM_KEY
from tests.cluster_nodes import PASSWORD, ROOT, Cluster, Node
from tests.gateway.test_events_live import read_events
from tests.redis_server import redis_server

pytestmark = [pytest.mark.timeout(240)]


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``liandong`` (the module) with ``env``; the caller checks the outcome."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        input=stdin,
        text=True,
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )


def revision_of(out: str) -> int:
    m = re.search(r"\(revision (\d+)", out)
    assert m, out
    return int(m.group(1))


def control_messages(sub: Any, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The control messages that arrive within ``timeout`` (at least one is waited for)."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = sub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if m is not None and m["type"] == "message":
            out.append(json.loads(m["data"]))
        elif out:
            break
    return out


def test_cli_changes_are_announced_once_committed_and_stand_when_redis_is_away(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with redis_server(tmp_path) as url:
        env = {**os.environ, "LIANDONG_DATA_DIR": str(data), "LIANDONG_CLUSTER__REDIS_URL": url}
        assert cli(env, "migrate").returncode == 0
        r = redis.Redis.from_url(url)
        sub = r.pubsub()
        sub.subscribe("liandong:control")
        try:
            assert sub.get_message(timeout=2)["type"] == "subscribe"
            done = cli(env, "policy", "department", "d1", "--name", "District 1")
            assert done.returncode == 0 and done.stderr == "", done.stderr
            rev = revision_of(done.stdout)
            msgs = control_messages(sub)
            assert len(msgs) == 1 and msgs[0]["op"] == "policy" and msgs[0]["what"] == "department d1 saved"
            assert msgs[0]["from"].startswith("cli:")  # never a node id: every node applies it
            (sid, fields), *_ = r.xrevrange(STREAM_KEY, count=1)
            assert fields[b"type"] == b"policy.changed" and json.loads(fields[b"data"]) == {"revision": rev}
            assert fields[b"everyone"] == b"1" and fields[b"rev"] == str(rev).encode()

            # A user's role is policy too (it has no revision: no console event, the nodes reload).
            done = cli(env, "users", "add", "u1", "--role", "operator", "--password-stdin", stdin=PASSWORD + "\n")
            assert done.returncode == 0 and done.stderr == "", done.stderr
            msgs = control_messages(sub)
            assert [(m["op"], m["what"]) for m in msgs] == [("policy", "user u1 created (operator)")]
            assert r.xrevrange(STREAM_KEY, count=1)[0][0] == sid

            # Bad input: nothing is committed, nothing announced.
            done = cli(env, "policy", "grant", "dept:nope", "cam:nope")
            assert done.returncode == 2 and "error:" in done.stderr
            assert control_messages(sub, timeout=1.0) == []

            # Redis unreachable: the change is committed all the same, with a warning.
            away = {**env, "LIANDONG_CLUSTER__REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
            t0 = time.monotonic()
            done = cli(away, "policy", "department", "d2", "--name", "District 2")
            took = time.monotonic() - t0
            assert done.returncode == 0, done.stderr
            assert revision_of(done.stdout) == rev + 1
            assert "warning: the change is committed, but the cluster's nodes could not be told" in done.stderr
            assert "revision check" in done.stderr
            assert "d2" in cli(env, "policy", "departments").stdout
            assert control_messages(sub, timeout=1.0) == []
            print(f"CLI with Redis away: committed and warned in {took:.1f} s (process start included)")

            # A single node (no cluster): nothing to tell, no warning.
            single = {k: v for k, v in env.items() if k != "LIANDONG_CLUSTER__REDIS_URL"}
            done = cli(single, "policy", "department", "d3", "--name", "District 3")
            assert done.returncode == 0 and done.stderr == "", done.stderr
            assert control_messages(sub, timeout=1.0) == []
        finally:
            sub.close()
            r.close()


async def _allowed(client: httpx.AsyncClient, node: Node, headers: dict[str, str]) -> bool:
    # A bad offer: 400 once the policy lets the user in (nothing is opened), 403 while it does not.
    r = await client.post(
        f"{node.url}/api/cameras/cam1/whep", content="v=0\r\n", headers={**headers, "Content-Type": "application/sdp"}
    )
    assert r.status_code in (400, 403), r.text
    return r.status_code == 400


async def test_a_cli_grant_reaches_running_nodes_well_within_a_second(tmp_path: Path) -> None:
    from acl.policy import PolicyStore
    from gateway.settings import load_settings
    from storage.db import Database

    with redis_server(tmp_path) as url, Cluster(tmp_path, url, n=2) as c:
        c.prepare(
            [{"id": "cam1", "name": "cam1", "source_url": "rtsp://127.0.0.1:9/x"}], {"admin": "admin", "op": "operator"}
        )
        env = {**c.base_env}
        assert cli(env, "policy", "department", "d1", "--name", "District 1").returncode == 0
        assert cli(env, "policy", "member", "op", "d1").returncode == 0
        c.start_all()
        admin = await asyncio.to_thread(c.token, "admin")
        op = await asyncio.to_thread(c.token, "op")
        db = Database(load_settings(None, data_dir=c.data).database_url)
        store = PolicyStore(db)

        async def committed_at(revision: int) -> float:
            rows = await store.revisions(limit=5)
            return next(r.created_at.timestamp() for r in rows if r.id == revision)

        async def applied(client: httpx.AsyncClient, revision: int, want: bool) -> list[float]:
            """Seconds from the revision's commit until each node applied it (its own time stamp of
            the reload the message caused); then each node must answer as the new policy says."""
            at = await committed_at(revision)
            out = []
            for node in c.nodes:
                deadline = time.monotonic() + 3
                while (st := (await client.get(f"{node.url}/api/cluster", headers=admin)).json())[
                    "policy_revision"
                ] < revision:
                    assert time.monotonic() < deadline, f"{node.node_id} never applied revision {revision}"
                    await asyncio.sleep(0.01)
                # Set by the reload a control message caused (the revision check does not set it):
                # older than the commit means the message did not do it.
                assert st["policy_loaded_at"] >= at, (node.node_id, st["policy_loaded_at"], at)
                out.append(st["policy_loaded_at"] - at)
                assert await _allowed(client, node, op) == want
            return out

        async def watch(node: Node, above: int) -> tuple[int, float]:
            """Poll a node every 20 ms (while the CLI runs) until its revision passes ``above``:
            (that revision, wall clock when seen). The deadline covers the CLI's own run too (its start
            and its failed Redis connect took over 15 s on a loaded machine); the speed is judged from
            the commit below."""
            async with httpx.AsyncClient(timeout=5) as w:
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline:
                    rev = (await w.get(f"{node.url}/api/cluster", headers=admin)).json()["policy_revision"]
                    if rev > above:
                        return rev, time.time()
                    await asyncio.sleep(0.02)
            raise AssertionError(f"{node.node_id} never passed revision {above}")

        async def by_check_alone(args: list[str], env_: dict[str, str], above: int) -> tuple[str, list[float]]:
            """Run a CLI change that cannot reach Redis; seconds from its commit until each node had it."""
            watchers = [asyncio.create_task(watch(n, above)) for n in c.nodes]
            done = await asyncio.to_thread(cli, env_, *args)
            assert done.returncode == 0 and "warning:" in done.stderr, done.stderr
            rev = revision_of(done.stdout)
            at = await committed_at(rev)
            out = []
            for got, when in await asyncio.gather(*watchers):
                assert got == rev
                out.append(when - at)
            return done.stdout, out

        timings: list[float] = []
        revisions: list[int] = []
        async with (
            httpx.AsyncClient(timeout=10) as client,
            client.stream("GET", f"{c.nodes[1].url}/api/events", headers=admin) as console,
        ):
            assert console.status_code == 200
            for _ in range(3):
                done = await asyncio.to_thread(cli, env, "policy", "grant", "dept:d1", "cam:cam1")
                assert done.returncode == 0 and done.stderr == "", done.stderr
                rev = revision_of(done.stdout)
                rule = int(re.search(r"rule (\d+)", done.stdout).group(1))  # type: ignore[union-attr]
                timings += await applied(client, rev, True)
                revisions.append(rev)
                done = await asyncio.to_thread(cli, env, "policy", "revoke", str(rule))
                assert done.returncode == 0 and done.stderr == "", done.stderr
                rev = revision_of(done.stdout)
                timings += await applied(client, rev, False)
                revisions.append(rev)

            # The same with Redis out of the CLI's reach: committed, and the nodes' revision check finds it.
            away = {**env, "LIANDONG_CLUSTER__REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
            by_check: list[float] = []
            for _ in range(2):
                out, took = await by_check_alone(["policy", "grant", "dept:d1", "cam:cam1"], away, revisions[-1])
                by_check += took
                revisions.append(revision_of(out))
                for node in c.nodes:
                    assert await _allowed(client, node, op)
                rule = int(re.search(r"rule (\d+)", out).group(1))  # type: ignore[union-attr]
                out, took = await by_check_alone(["policy", "revoke", str(rule)], away, revisions[-1])
                by_check += took
                revisions.append(revision_of(out))
                for node in c.nodes:
                    assert not await _allowed(client, node, op)

            events = await read_events(console, 100, timeout=3.0, skip=())
        await db.close()
        changed = {e["data"]["revision"] for e in events if e["event"] == "policy.changed"}
        assert set(revisions) <= changed, (revisions, changed)  # the consoles heard of each CLI change
        logs = "".join(n.log.read_text(errors="replace") for n in c.nodes if n.log is not None)
        assert "after a change on node cli:" in logs
        assert max(by_check) < 3.0, by_check  # the revision check: once a second, plus the reload (a busy box)
        med = statistics.median(timings)
        print(
            f"CLI change -> node applied (from the commit): median {med * 1000:.0f} ms,"
            f" max {max(timings) * 1000:.0f} ms over {len(timings)};"
            f" by the revision check alone (Redis out of the CLI's reach): median"
            f" {statistics.median(by_check) * 1000:.0f} ms, max {max(by_check) * 1000:.0f} ms"
        )
        # Each reload was caused by the control message (policy_loaded_at above); the bound only says the
        # message path is not the once-a-second poll (whose median would be ~0.5 s plus the reload).
        # The speed itself is the cluster bench's: CI measured a 0.32 s median here under its load.
        assert med < 0.5 and max(timings) < 1.0, timings
