"""Case notifications: the outbox delivered through the real HTTP senders to a real local HTTP
receiver that refuses, is down, answers too late and answers slowly, and recovers; every notice is
acted on once per idempotency key, none is lost when the worker dies and a new one takes over, and
the delivery state is kept on each notice."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from gateway.alarms.delivery import SmsGatewaySender, WebhookSender
from gateway.alarms.hmac_auth import sign
from gateway.alarms.models import Incident, Notice
from gateway.alarms.notices import NoticeWorker, Outbox
from gateway.alarms.settings import DEFAULT_SMS_TEMPLATES, NotifySettings
from storage.db import Database, utcnow

SECRET = "webhook-secret"
TIMEOUT_S = 0.5


class Receiver:
    """A webhook and SMS gateway on loopback that honours ``Idempotency-Key``; ``plan`` says how to
    treat the next requests (``fail``: 503, ``late``: act, then answer after the sender gave up,
    ``slow``: answer slowly but in time)."""

    def __init__(self) -> None:
        self.plan: list[str] = []
        self.acted: dict[str, int] = {}  # notice (case, phone, channel) -> times acted on (must stay 1)
        self.deliveries: dict[str, int] = {}  # key -> requests that arrived
        self.bodies: dict[str, Any] = {}
        self.bad: list[str] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        key = request.headers.get("Idempotency-Key", "")
        self.deliveries[key] = self.deliveries.get(key, 0) + 1
        mode = self.plan.pop(0) if self.plan else "ok"
        if mode == "fail":
            return web.Response(status=503, text="busy")
        if request.path == "/hook":
            ts = request.headers.get("X-Liandong-Timestamp", "")
            if request.headers.get("X-Liandong-Signature") != sign(SECRET, ts, raw):
                self.bad.append(key)
                return web.Response(status=401)
        else:
            auth = request.headers.get("Authorization", "")
            if auth != "Basic " + base64.b64encode(b"ld:sms-password").decode():
                self.bad.append(key)
                return web.Response(status=401)
        if key not in self.bodies:  # honour the key: act once per key, answer every repeat alike
            body = json.loads(raw)
            self.bodies[key] = body
            # What was acted on: a notice sent again under a new key would count twice here.
            what = json.dumps([body.get("incident_id") or body.get("msgid", "").split(":")[0], body.get("to")])
            what += request.path
            self.acted[what] = self.acted.get(what, 0) + 1
        if mode == "late":
            await asyncio.sleep(TIMEOUT_S * 3)
        elif mode == "slow":
            await asyncio.sleep(TIMEOUT_S / 3)
        return web.json_response({"ok": True})

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        app.router.add_post("/sms", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.port = port or site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    d = Database(f"sqlite:///{tmp_path / 'n.db'}")
    await asyncio.to_thread(d.migrate)
    yield d
    await d.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


def settings(port: int) -> NotifySettings:
    return NotifySettings(
        webhook_url=f"http://127.0.0.1:{port}/hook",
        sms_url=f"http://127.0.0.1:{port}/sms",
        sms_account="ld",
        contacts={"qb-xz": ["13900000001", "13900000002"]},
        timeout_s=TIMEOUT_S,
        retry_base_s=0.05,
        retry_max_s=0.2,
        poll_s=0.05,
    )


async def write_cases(db: Database, outbox: Outbox, n: int) -> set[str]:
    """``n`` dispatched cases, each writing its notices in the dispatch's transaction; their keys."""
    async with db.session() as s:
        for i in range(n):
            inc = Incident(
                id=f"CASE-T-{i}",
                type="road",
                category="road",
                origin="hotline",
                area="七宝镇",
                address=f"富强街{i}号",
                dispatched_to="qb-xz",
                onsite_deadline=utcnow(),
                resolve_deadline=utcnow(),
            )
            s.add(inc)
            outbox.add(s, inc, "dispatched", "qb-xz", f"{inc.id}:dispatched:1:qb-xz")
    async with db.session() as s:
        from sqlalchemy import select

        return set((await s.execute(select(Notice.key))).scalars())


async def wait_until(cond: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def worker_for(cfg: NotifySettings, db: Database, client: httpx.AsyncClient) -> NoticeWorker:
    senders = {
        "webhook": WebhookSender(cfg.webhook_url, SECRET, client),
        "sms": SmsGatewaySender(cfg.sms_url, cfg.sms_account, "sms-password", cfg.sms_templates, client),
    }
    return NoticeWorker(cfg, db, senders)


async def test_failing_late_and_down_receiver_gets_each_notice_once(db: Database, receiver: Receiver) -> None:
    cfg = settings(receiver.port)
    outbox = Outbox(cfg, {"webhook", "sms"}, {"qb-xz": "新镇居委"})
    keys = await write_cases(db, outbox, 6)
    assert len(keys) == 18  # per case: the webhook and one SMS per contact of the station
    receiver.plan = ["fail", "fail", "late", "slow", "fail", "late", "slow", "slow"]
    async with httpx.AsyncClient() as client:
        worker = worker_for(cfg, db, client)
        task = asyncio.create_task(worker.run())
        try:
            await wait_until(lambda: _acted(receiver, 6), "the first deliveries")
            # The receiver goes down for a while (connection refused), then comes back on its port.
            port = receiver.port
            await receiver.stop()
            more = await write_cases_more(db, outbox)
            keys |= more
            worker.wake()
            await asyncio.sleep(0.5)
            await receiver.start(port)
            await wait_until(lambda: _all_sent(db, len(keys)), "every notice sent")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert set(receiver.bodies) == keys  # none lost
    assert len(receiver.acted) == len(keys) and set(receiver.acted.values()) == {1}  # each acted on once
    assert receiver.bad == []  # signed webhooks, authenticated SMS
    assert any(v > 1 for v in receiver.deliveries.values())  # a late answer was retried: the key mattered
    async with db.session() as s:
        from sqlalchemy import select

        rows = list((await s.execute(select(Notice))).scalars())
    assert all(r.state == "sent" and r.sent_at for r in rows)
    assert any(r.attempts > 1 and r.last_error == "" for r in rows)
    sms = next(b for k, b in receiver.bodies.items() if k.endswith(":sms:13900000002") and "T-0" in k)
    assert sms["to"] == "13900000002" and sms["text"].startswith(
        "【联动】案件CASE-T-0（road）已派至新镇居委：富强街0号"
    )
    hook = next(b for k, b in receiver.bodies.items() if k.endswith(":webhook") and "T-1:" in k)
    assert hook["kind"] == "dispatched" and hook["data"]["unit_name"] == "新镇居委"


async def write_cases_more(db: Database, outbox: Outbox) -> set[str]:
    async with db.session() as s:
        inc = Incident(id="CASE-T-DOWN", type="road", category="road", area="七宝镇", dispatched_to="qb-xz")
        s.add(inc)
        outbox.add(s, inc, "dispatched", "qb-xz", "CASE-T-DOWN:dispatched:1:qb-xz")
    return {f"CASE-T-DOWN:dispatched:1:qb-xz:{c}" for c in ("webhook", "sms:13900000001", "sms:13900000002")}


async def _acted(receiver: Receiver, n: int) -> bool:
    return len(receiver.bodies) >= n


async def _all_sent(db: Database, n: int) -> bool:
    async with db.session() as s:
        from sqlalchemy import func, select

        sent = (await s.execute(select(func.count()).where(Notice.state == "sent"))).scalar_one()
    return bool(sent == n)


async def test_a_worker_that_dies_loses_nothing(db: Database, receiver: Receiver) -> None:
    cfg = settings(receiver.port)
    outbox = Outbox(cfg, {"webhook"})
    keys = await write_cases(db, outbox, 5)
    receiver.plan = ["late"] * 5  # the first worker dies while its requests are in flight
    async with httpx.AsyncClient() as client:
        first = asyncio.create_task(worker_for(cfg, db, client).run())
        await wait_until(lambda: _arrived(receiver, 5), "the first deliveries to arrive")
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        async with db.session() as s:
            from sqlalchemy import select

            assert {r.state for r in (await s.execute(select(Notice))).scalars()} == {"pending"}
        second = asyncio.create_task(worker_for(cfg, db, client).run())  # a new worker (after a restart)
        try:
            await wait_until(lambda: _all_sent(db, len(keys)), "every notice sent by the new worker")
        finally:
            second.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await second
    assert set(receiver.bodies) == keys
    assert len(receiver.acted) == len(keys) and set(receiver.acted.values()) == {1}


async def _arrived(receiver: Receiver, n: int) -> bool:
    return sum(receiver.deliveries.values()) >= n


def test_sms_templates_cover_every_notice_kind() -> None:
    assert set(DEFAULT_SMS_TEMPLATES) == {"dispatched", "deadline_soon", "deadline_passed"}
