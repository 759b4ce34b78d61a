"""The event bus: audience filtering, resume with Last-Event-ID, reset, slow consoles, logout."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

from acl.identity import Subject
from acl.models import Role
from gateway.events import Audience, LocalEventBus, Viewer

ALICE = Subject(1, "alice", Role.operator, frozenset({"police"}), token_id=11)
ADMIN = Subject(2, "root", Role.admin, token_id=12)


def viewer(subject: Subject, cams: set[str]) -> Viewer:
    return Viewer(subject, lambda _s, c: c in cams)


def parse(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in text.strip().splitlines():
        key, _, value = line.partition(": ")
        out[key] = json.loads(value) if key == "data" else value
    return out


async def take(gen: AsyncGenerator[str, None], n: int) -> list[dict[str, Any]]:
    """The next ``n`` events (comments and the retry line skipped)."""
    out: list[dict[str, Any]] = []
    while len(out) < n:
        text = await asyncio.wait_for(gen.__anext__(), 2)
        if not text.startswith((":", "retry:")):
            out.append(parse(text))
    return out


async def test_audience_and_camera_lists_are_filtered() -> None:
    bus = LocalEventBus(keep=100)
    gen = bus.stream(viewer(ALICE, {"a", "b"}), last_id=None)
    admin = bus.stream(viewer(ADMIN, set()), last_id=None)
    first = asyncio.ensure_future(take(gen, 3))
    first_admin = asyncio.ensure_future(take(admin, 4))
    await asyncio.sleep(0.01)
    bus.publish("incident.opened", {"incident_id": "X", "cameras": ["a", "c"]}, cameras=["a", "c"])
    bus.publish("incident.opened", {"incident_id": "Y", "cameras": ["c"]}, cameras=["c"])  # not for alice
    bus.publish("incident.updated", {"incident_id": "Z", "cameras": ["c"]}, cameras=["c"], departments=["police"])
    bus.publish("system.notice", {"text": "no audience"})  # administrators only
    bus.publish("incident.cameras", {"incident_id": "X", "cameras": ["b"], "nearby": ["b", "c"]}, cameras=["b"])
    got = await first
    assert [(e["event"], e["data"]["incident_id"]) for e in got] == [
        ("incident.opened", "X"),
        ("incident.updated", "Z"),  # by department, with no camera she may view
        ("incident.cameras", "X"),
    ]
    assert got[0]["data"]["cameras"] == ["a"] and got[1]["data"]["cameras"] == []
    assert got[2]["data"]["nearby"] == ["b"]
    assert [e["event"] for e in await first_admin] == [
        "incident.opened",
        "incident.opened",
        "incident.updated",
        "system.notice",
    ]
    await gen.aclose()
    await admin.aclose()


async def test_resume_after_last_event_id_and_reset_when_too_old() -> None:
    bus = LocalEventBus(keep=3)
    ids = [bus.publish("e", {"n": i}, cameras=["a"]).id for i in range(5)]  # the first two are gone
    gen = bus.stream(viewer(ALICE, {"a"}), last_id=ids[2])
    assert [e["data"]["n"] for e in await take(gen, 2)] == [3, 4]
    await gen.aclose()
    gen = bus.stream(viewer(ALICE, {"a"}), last_id=ids[0])  # missed ids[1], which is no longer kept
    got = await take(gen, 4)
    assert got[0]["event"] == "reset" and "id" not in got[0]
    assert [e["data"]["n"] for e in got[1:]] == [2, 3, 4]
    live = asyncio.ensure_future(take(gen, 1))
    await asyncio.sleep(0.01)
    ev = bus.publish("e", {"n": 5}, cameras=["a"])
    assert (await live)[0]["id"] == str(ev.id) and int(ev.id) == ids[-1] + 1
    await gen.aclose()


async def test_slow_console_is_cut_off_and_login_end_closes() -> None:
    bus = LocalEventBus(keep=100, queue=10)
    slow = bus.stream(viewer(ALICE, {"a"}))
    await take(slow, 0)
    assert (await slow.__anext__()).startswith("retry:")
    assert (await slow.__anext__()).startswith(": connected")
    for i in range(11):  # one more than its queue holds
        bus.publish("e", {"n": i}, cameras=["a"])
    got = await take(slow, 1)
    assert got[0]["event"] == "end" and "behind" in got[0]["data"]["reason"]
    assert bus.streams_of(ALICE.user_id) == 0
    gen = bus.stream(viewer(ALICE, {"a"}))
    await gen.__anext__()
    await gen.__anext__()
    assert bus.streams_of(ALICE.user_id) == 1
    await bus.end_for_token(99)  # someone else's login
    await bus.end_for_token(ALICE.token_id or 0)
    assert (await take(gen, 1))[0]["data"]["reason"] == "login ended"


async def test_revalidation_ends_the_stream_and_refreshes_departments() -> None:
    bus = LocalEventBus(keep=100, heartbeat_s=0.05)
    current: dict[str, Subject | None] = {"s": ALICE}

    async def revalidate(_s: Subject) -> Subject | None:
        return current["s"]

    gen = bus.stream(Viewer(ALICE, lambda _s, _c: False, revalidate))
    await gen.__anext__()
    await gen.__anext__()
    current["s"] = Subject(1, "alice", Role.operator, frozenset({"fire"}), token_id=11)  # moved to another unit
    got = asyncio.ensure_future(take(gen, 1))
    await asyncio.sleep(0.15)  # a few heartbeats: the login is re-checked
    bus.publish("e", {"n": 1}, departments=["police"])
    bus.publish("e", {"n": 2}, departments=["fire"])
    assert [e["data"]["n"] for e in await got] == [2]
    current["s"] = None  # logged out elsewhere, or deactivated
    assert (await take(gen, 1))[0] == {"event": "end", "data": {"reason": "login ended"}}


def test_an_audience_survives_the_stream_fields() -> None:
    # The cluster bus writes the audience into a Redis Stream entry and reads it back on every node.
    full = Audience(("a", "b"), ("police",), (3, 7), ("auditor",), everyone=True)
    fields = full.to_fields()
    assert all(isinstance(v, str) for v in fields.values())
    assert Audience.from_fields(fields) == full
    assert Audience.from_fields(Audience().to_fields()) == Audience()
    assert Audience.from_fields({}) == Audience()  # an entry without them: administrators only
