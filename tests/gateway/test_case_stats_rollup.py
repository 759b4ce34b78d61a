"""The statistics' rollup (settled cases per local day and month, kept in the same transaction as
every case change) answers exactly what counting every case answers: after cases are opened,
dispatched late and in time, resolved, closed, reopened, rolled back and deleted through the ORM;
and after rows written around it (a bulk insert), which the start-up check finds and rebuilds."""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select

from bench.case_stats_bench import rows as bench_rows
from gateway.alarms.models import Incident, IncidentStatsRollup
from gateway.alarms.rollup import StatsRollup
from gateway.alarms.stats import StatsService
from storage.db import Database

ZONE = "Asia/Shanghai"
NOW = dt.datetime(2026, 7, 10, 12, tzinfo=dt.UTC)
DEPTS = {f"dept-{i:02d}" for i in range(52)}


@pytest.fixture
async def db(tmp_path: Path) -> Any:
    d = Database(f"sqlite:///{tmp_path / 'stats.db'}")
    d.migrate()
    yield d
    await d.close()


async def same(stats: StatsService, periods: tuple[str, ...] = ("2026-06", "2026-07", "2026")) -> int:
    """Assert the rollup and the full count agree for every view; the number of views compared."""
    n = 0
    for period in periods:
        for by in ("subdistrict", "station", "department"):
            for daily in (False, True) if len(period) == 7 else (False,):  # a year's days: the same rows
                kw: dict[str, Any] = {"department_ids": DEPTS, "daily": daily, "now": NOW}
                fast = await stats.table(period, by, None, **kw)
                full = await stats.table(period, by, None, use_rollup=False, **kw)
                assert fast == full, (period, by, daily)
                n += 1
    return n


async def test_the_rollup_follows_every_change_made_through_the_orm(db: Database) -> None:
    rollup = StatsRollup(db, zoneinfo.ZoneInfo(ZONE))
    stats = StatsService(db, ZONE, rollup)
    rnd = random.Random(7)
    data = bench_rows(400, 2026, rnd)
    for r in data:  # around the two months compared, with "now" inside July: some still in the field
        r["created_at"] = dt.datetime(2026, 6, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=rnd.randrange(60 * 24 * 45))
        for k in ("dispatched_at", "onsite_deadline", "resolve_deadline", "onsite_at", "resolved_at", "closed_at"):
            if r[k] is not None:
                r[k] = r["created_at"] + (r[k] - dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) % dt.timedelta(days=9)
    async with db.session() as s:
        s.add_all(Incident(**r) for r in data)
    assert len(await _rollup_rows(db)) > 0
    assert await same(stats) == 15

    # Steps change the cases: late and in-time arrivals, resolutions, closes, a reopen, a re-dispatch.
    async with db.session() as s:
        cases = list((await s.execute(select(Incident).order_by(Incident.id))).scalars())
        for inc in cases[:60]:
            if inc.onsite_deadline is not None and inc.onsite_at is None:
                inc.onsite_at = inc.onsite_deadline + dt.timedelta(hours=rnd.choice([-1, 2]))
            elif inc.resolve_deadline is not None and inc.resolved_at is None:
                inc.resolved_at = inc.resolve_deadline - dt.timedelta(hours=1)
            elif inc.state == "closed":
                inc.state = "on_site"  # reopened
            elif inc.dispatched_to:
                inc.dispatched_to = "dept-07"
                inc.area = "area-99"
    assert await same(stats) == 15
    # A step that fails leaves the rollup as it was (the same transaction).
    before = await _rollup_rows(db)
    with pytest.raises(RuntimeError):
        async with db.session() as s:
            inc = await s.get(Incident, cases[100].id)
            assert inc is not None
            inc.state = "closed" if inc.state != "closed" else "verified"
            await s.flush()
            raise RuntimeError("the step failed after its flush")
    assert await _rollup_rows(db) == before
    async with db.session() as s:  # deleted cases leave it too
        for c in cases[200:230]:
            await s.delete(await s.get(Incident, c.id))
    assert await same(stats) == 15
    assert await rollup.check() is True  # nothing to rebuild


async def test_rows_written_around_the_orm_are_found_at_start_and_rebuilt(db: Database) -> None:
    rollup = StatsRollup(db, zoneinfo.ZoneInfo(ZONE))
    stats = StatsService(db, ZONE, rollup)
    async with db.session() as s:
        await s.execute(insert(Incident), bench_rows(300, 2026, random.Random(3)))
    assert await rollup.check() is False  # it rebuilt
    assert await rollup.check() is True
    assert await same(stats, ("2026-03", "2026")) == 9
    async with db.session() as s:  # a bulk delete around the ORM as well
        await s.execute(delete(Incident).where(Incident.station == "st-001"))
    assert await rollup.check() is False
    assert await same(stats, ("2026",)) == 3
    # Another time zone: the local days move, so the rollup is rebuilt for it.
    other = StatsRollup(db, zoneinfo.ZoneInfo("Asia/Tokyo"))
    assert await other.check() is False


async def _rollup_rows(db: Database) -> list[tuple[Any, ...]]:
    r = IncidentStatsRollup
    async with db.session() as s:
        q = select(r.dim, r.grain, r.period, r.unit, r.received, r.closed, r.overdue).order_by(
            r.dim, r.grain, r.period, r.unit
        )
        return [tuple(row) for row in (await s.execute(q)).all()]
