"""Anonymous refusals (401s, rejected alarms, failed and throttled logins) against a live gateway:
answered without touching the audit, written in aggregate (a bounded number of entries with exact
counts), and never in front of an authorized action's audit entry."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from acl.audit import AuditEntry
from acl.models import Role
from gateway.refusals import OVERFLOW_ADDRESS, RefusalAudit, refusal_count
from gateway.settings import load_settings
from tests.live import LiveGateway, live_gateway

KINDS = ("unauthenticated", "alarm_rejected", "login_failed", "login_throttled")
WINDOW_S = 3.0


def _burst(g: LiveGateway, n: int) -> list[Any]:
    """n unsigned alarms, n requests with a bad bearer token and n wrong-password logins."""
    c = g.client
    alarms = [c.post("/api/alarms", json={"alarm_id": f"x{i}", "type": "panic"}) for i in range(n)]
    bad_token = [c.get("/api/cameras", headers={"Authorization": f"Bearer ld_bogus{i}"}) for i in range(n)]
    logins = [c.post("/api/auth/token", data={"username": f"nobody{i}", "password": "wrong-pass"}) for i in range(n)]
    return [*alarms, *bad_token, *logins]


async def _rows(g: LiveGateway, after_id: int) -> list[AuditEntry]:
    async with g.ld.db.session() as s:
        q = select(AuditEntry).where(AuditEntry.id > after_id).order_by(AuditEntry.id)
        return list((await s.execute(q)).scalars())


async def _last_id(g: LiveGateway) -> int:
    async with g.ld.db.session() as s:
        return int((await s.execute(select(func.max(AuditEntry.id)))).scalar() or 0)


def _denied(g: LiveGateway) -> float:
    value = g.ld.metrics.registry.get_sample_value("liandong_authz_denied_total", {"policy": "unauthenticated"})
    return float(value or 0)


async def test_a_refusal_burst_is_answered_off_the_audit_and_written_bounded_and_exact(tmp_path: Path) -> None:
    auth = {"refusal_window_s": WINDOW_S, "login_max_failures": 5}
    async with live_gateway(load_settings(None, data_dir=tmp_path / "data", auth=auth)) as g:
        admin = await g.add_user("admin", Role.admin)
        start_id = await _last_id(g)
        n = 70
        # The audit's write lock held (as by a slow disk): the refusals are answered all the same,
        # because nothing on their path waits for the audit.
        async with g.ld.audit._lock:
            t0 = time.monotonic()
            async with asyncio.timeout(15):
                replies = await asyncio.gather(*_burst(g, n))
            burst_s = time.monotonic() - t0
        codes = [r.status_code for r in replies]
        assert codes[:n] == [401] * n and codes[n : 2 * n] == [401] * n
        logins = codes[2 * n :]
        # An attempt counts as failed from its start: exactly login_max_failures were checked.
        assert logins.count(401) == 5 and logins.count(429) == n - 5, logins
        sent = {"alarm_rejected": n, "unauthenticated": n, "login_failed": 5, "login_throttled": n - 5}

        # The background writer writes the first of each kind at once and the counts when the window
        # closes: 4 kinds x 2 entries (x2 if the burst straddled a window), counts exact.
        deadline = time.monotonic() + WINDOW_S + 10
        while True:
            rows = [e for e in await _rows(g, start_id) if e.kind in KINDS]
            counted = {k: sum(refusal_count(e.detail, e.start) for e in rows if e.kind == k) for k in KINDS}
            if counted == sent or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert counted == sent, (counted, sent)
        windows = 1 + int(burst_s // WINDOW_S) + 1
        assert len(rows) <= len(KINDS) * 2 * windows, [(e.kind, e.detail) for e in rows]
        assert all(e.address == "127.0.0.1" for e in rows)
        summaries = [e for e in rows if e.start is not None]
        assert {e.kind for e in summaries} >= {"alarm_rejected", "unauthenticated", "login_throttled"}
        assert all(re.match(r"count=\d+; ", e.detail or "") for e in summaries)
        assert all("1x nobody" in (e.detail or "") for e in summaries if e.kind == "login_failed")
        assert (await g.ld.audit.verify()).ok

        # A second burst while an admin adds a camera (an audited, authorized action): its entry is
        # not queued behind the burst's (before: behind one entry per refusal).
        mark = await _last_id(g)
        seen = _denied(g)
        burst = asyncio.gather(*_burst(g, n))
        async with asyncio.timeout(10):
            while _denied(g) < seen + n // 2:  # the server is in the middle of the burst
                await asyncio.sleep(0.001)
        t0 = time.monotonic()
        body = {"id": "cam-1", "name": "cam-1", "source_url": "rtsp://127.0.0.1:9/x"}
        r = await g.client.post("/api/cameras", json=body, headers=admin)
        action_s = time.monotonic() - t0
        assert r.status_code == 201, r.text
        await burst
        rows = await _rows(g, mark)
        created = next(e for e in rows if e.kind == "camera_created")
        ahead = [e for e in rows if e.id < created.id and e.kind in KINDS]
        # At most a window's first entry and the count of a window closing meanwhile, per kind.
        assert len(ahead) <= 2 * len(KINDS), (len(ahead), action_s)
        print(f"burst {burst_s:.2f} s with the audit locked; {len(ahead)} refusal entries ahead, {action_s:.3f} s")


class _ListAudit:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []

    async def record(self, kind: str, **fields: Any) -> None:
        self.rows.append((kind, fields))


async def test_counts_stay_exact_beyond_the_tracked_addresses() -> None:
    now = [0.0]
    audit = _ListAudit()
    ra = RefusalAudit(audit, window_s=10, max_addresses=3, clock=lambda: now[0])
    for i in range(50):
        for _ in range(i % 4 + 1):
            ra.note("unauthenticated", f"10.0.0.{i}", f"no credentials: GET /p{i % 40}")
    assert await ra.flush() == 3  # the first refusal of each tracked address, in full
    now[0] = 5
    ra.note("unauthenticated", "10.0.0.0", "again")  # a tracked address: into its window
    assert await ra.flush() == 0
    now[0] = 10.5
    assert await ra.flush() > 0  # every window closed: the counts
    total = sum(refusal_count(f.get("detail"), f.get("start")) for _, f in audit.rows)
    assert total == sum(i % 4 + 1 for i in range(50)) + 1
    overflow = [f for _, f in audit.rows if f["address"] == OVERFLOW_ADDRESS]
    assert len(overflow) == 1 and "other" in overflow[0]["detail"]  # more descriptions than kept: "other"
    assert len(audit.rows) == 3 + 3 + 1  # 3 first, 3 counts, 1 overflow count
    # A new window after the old one closed starts with a full entry again.
    ra.note("unauthenticated", "10.0.0.1", "later")
    await ra.close()
    assert audit.rows[-1][1]["address"] == "10.0.0.1" and audit.rows[-1][1].get("start") is None


async def test_close_writes_open_windows_and_nothing_is_lost_on_shutdown(tmp_path: Path) -> None:
    async with live_gateway(load_settings(None, data_dir=tmp_path / "data")) as g:
        for _ in range(5):
            assert (await g.client.get("/api/cameras")).status_code == 401
        ld = g.ld
    # The lifespan ended (the window of 60 s had not): its count was written on the way out.
    from acl.audit import AuditLog
    from storage.db import Database

    db = Database(ld.settings.database_url)
    try:
        rows = await AuditLog(db).query(kind="unauthenticated")
        assert sum(refusal_count(e.detail, e.start) for e in rows) == 5 and len(rows) == 2
    finally:
        await db.close()


def test_refusal_count_reads_entries() -> None:
    assert refusal_count("no credentials path=/x", None) == 1
    assert refusal_count("count=12; more after the first in this window: 12x a;", "2026-01-01T00:00:00+00:00") == 12
