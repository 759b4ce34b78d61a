"""Case statistics benchmark: a year of cases (200,000 by default) over 13 sub-districts, 516
neighbourhood stations and 52 departments in a migrated SQLite database; the month view (by
sub-district, station and department), the year view, and the XLSX export of a month, each timed
as the API computes them (:class:`gateway.alarms.stats.StatsService`, one grouped SQL query).

Prints one JSON line (medians of ``--runs`` runs, ms). Usage:
``python -m bench.case_stats_bench [--cases 200000] [--runs 5] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from gateway.alarms.models import Incident
from gateway.alarms.stats import StatsService, to_xlsx
from storage.db import Database

AREAS = 13
STATIONS = 516
DEPARTMENTS = 52
CATEGORIES = ["road", "noise", "sanitation", "water", "building", "traffic", "market", "green"]


def rows(n: int, year: int, rnd: random.Random) -> list[dict[str, Any]]:
    """``n`` cases spread over ``year`` in every state, a tenth of them late."""
    start = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    span = 365 * 86400
    stations = [(f"st-{i:03d}", f"area-{i % AREAS:02d}") for i in range(STATIONS)]
    depts = [f"dept-{i:02d}" for i in range(DEPARTMENTS)]
    states = ["new", "dispatched", "acknowledged", "on_site", "resolved", "confirmed", "verified", "closed"]
    out = []
    for i in range(n):
        created = start + dt.timedelta(seconds=rnd.randrange(span))
        st, area = rnd.choice(stations)
        state = rnd.choices(states, weights=[1, 1, 1, 1, 1, 1, 1, 30])[0]
        dispatched = None if state == "new" else created + dt.timedelta(minutes=rnd.randrange(5, 60))
        to = rnd.choice(depts) if rnd.random() < 0.3 else st
        late = rnd.random() < 0.1
        onsite = (
            dispatched + dt.timedelta(hours=4 if late else 1)
            if dispatched and state not in ("new", "dispatched", "acknowledged")
            else None
        )
        resolved = onsite + dt.timedelta(hours=20) if onsite and state not in ("on_site",) else None
        out.append(
            {
                "id": f"CASE-{i:07d}",
                "type": rnd.choice(CATEGORIES),
                "category": rnd.choice(CATEGORIES),
                "origin": "hotline",
                "state": state,
                "area": area,
                "station": st,
                "dispatched_to": to if dispatched else None,
                "level": "subdistrict",
                "created_at": created,
                "dispatched_at": dispatched,
                "onsite_deadline": dispatched + dt.timedelta(hours=3) if dispatched else None,
                "resolve_deadline": dispatched + dt.timedelta(hours=168) if dispatched else None,
                "onsite_at": onsite,
                "resolved_at": resolved,
                "closed_at": resolved + dt.timedelta(hours=2) if resolved and state == "closed" else None,
            }
        )
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    rnd = random.Random(18)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'cases.db'}")
        await asyncio.to_thread(db.migrate)
        t0 = time.perf_counter()
        data = rows(args.cases, 2026, rnd)
        for i in range(0, len(data), 10_000):
            async with db.session() as s:
                await s.execute(insert(Incident), data[i : i + 10_000])
        load_s = time.perf_counter() - t0
        stats = StatsService(db, "Asia/Shanghai")
        depts = {f"dept-{i:02d}" for i in range(DEPARTMENTS)}
        now = dt.datetime(2027, 1, 15, tzinfo=dt.UTC)
        res: dict[str, Any] = {"cases": args.cases, "load_s": round(load_s, 1)}

        async def timed(name: str, fn: Any) -> Any:
            times, out = [], None
            for _ in range(args.runs):
                t = time.perf_counter()
                out = await fn()
                times.append((time.perf_counter() - t) * 1000)
            res[name] = round(statistics.median(times), 1)
            return out

        for by in ("subdistrict", "station", "department"):
            await timed(f"month_{by}_ms", lambda by=by: stats.table("2026-06", by, None, department_ids=depts, now=now))
        await timed("month_station_daily_ms", lambda: stats.table("2026-06", "station", None, daily=True, now=now))
        res["load_average"] = [round(x, 1) for x in __import__("os").getloadavg()]
        await timed("year_station_ms", lambda: stats.table("2026", "station", None, now=now))
        await timed("year_subdistrict_ms", lambda: stats.table("2026", "subdistrict", None, now=now))

        async def export(daily: bool) -> int:
            table = await stats.table("2026-06", "station", None, department_ids=depts, daily=daily, now=now)
            return len(to_xlsx(table, {}))

        await timed("month_export_xlsx_ms", lambda: export(False))
        await timed("month_export_xlsx_daily_ms", lambda: export(True))
        await db.close()
    res["machine"] = f"{platform.machine()} {platform.python_version()}"
    return res


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cases", type=int, default=200_000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--out", type=Path)
    result = asyncio.run(main(p.parse_args()))
    line = json.dumps(result)
    print(line)
    if p.parse_args().out:
        p.parse_args().out.write_text(line + "\n")
