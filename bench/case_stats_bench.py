"""Case statistics benchmark: a year of cases (200,000 by default) over 13 sub-districts, 516
neighbourhood stations and 52 departments in a migrated SQLite database; the month view (by
sub-district, station and department, and per day), the year view, and the XLSX export of a month,
each timed as the API computes them (:class:`gateway.alarms.stats.StatsService`). Each view is timed
both ways in the same run, alternated: counting every case of the period (old) and the rollup of the
settled cases plus the cases still in the field (new, :mod:`gateway.alarms.rollup`); the answers
must be equal.

Prints one JSON line (medians of ``--runs`` runs, ms; ``ratio`` = old / new). Usage:
``python -m bench.case_stats_bench [--cases 200000] [--runs 5] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import statistics
import tempfile
import time
import zoneinfo
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from gateway.alarms.models import Incident
from gateway.alarms.rollup import StatsRollup
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
        t0 = time.perf_counter()
        rollup = StatsRollup(db, zoneinfo.ZoneInfo("Asia/Shanghai"))
        await rollup.check()  # the bulk insert went around the ORM: the start-up check rebuilds
        res_build = time.perf_counter() - t0
        stats = StatsService(db, "Asia/Shanghai", rollup)
        depts = {f"dept-{i:02d}" for i in range(DEPARTMENTS)}
        now = dt.datetime(2027, 1, 15, tzinfo=dt.UTC)
        res: dict[str, Any] = {"cases": args.cases, "load_s": round(load_s, 1), "rollup_build_s": round(res_build, 1)}

        async def timed(name: str, fn: Any) -> Any:
            times, out = [], None
            for _ in range(args.runs):
                t = time.perf_counter()
                out = await fn()
                times.append((time.perf_counter() - t) * 1000)
            res[name] = round(statistics.median(times), 1)
            return out

        async def side_by_side(name: str, period: str, by: str, daily: bool = False) -> None:
            """The full count (old) and the rollup (new) of one view, alternated run by run."""
            times: dict[bool, list[float]] = {False: [], True: []}
            answers = {}
            for _ in range(args.runs):
                for fast in (False, True):
                    t = time.perf_counter()
                    answers[fast] = await stats.table(
                        period, by, None, department_ids=depts, daily=daily, now=now, use_rollup=fast
                    )
                    times[fast].append((time.perf_counter() - t) * 1000)
            if answers[False] != answers[True]:
                raise SystemExit(f"{name}: the rollup's answer differs from the full count")
            old, new = statistics.median(times[False]), statistics.median(times[True])
            res[name] = {"old_ms": round(old, 1), "new_ms": round(new, 1), "ratio": round(old / new, 1)}

        await side_by_side("year_station", "2026", "station")
        await side_by_side("year_subdistrict", "2026", "subdistrict")
        await side_by_side("year_department", "2026", "department")
        for by in ("subdistrict", "station", "department"):
            await side_by_side(f"month_{by}", "2026-06", by)
        await side_by_side("month_station_daily", "2026-06", "station", daily=True)
        res["load_average"] = [round(x, 1) for x in os.getloadavg()]

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
