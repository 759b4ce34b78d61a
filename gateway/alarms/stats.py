"""Case statistics by sub-district, neighbourhood station or department, per day and calendar
month, computed in SQL (one grouped query per table, never loading the cases), with a ranking and
an export to XLSX (openpyxl) or CSV.

Per unit: received (cases opened in the period), dispatched, on site in time % (of the cases whose
on-site deadline passed or that were on site), resolved in time % (likewise), closed, and overdue:
cases that missed a deadline *ever* (on site or resolved after it, or still not by now), so a late
case still counts after it is closed. Months and days are the district's local calendar.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zoneinfo
from collections import namedtuple
from collections.abc import Set
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from gateway.alarms.models import UNSETTLED_SQL, Incident, IncidentStatsRollup
from gateway.alarms.rollup import MEASURES, StatsRollup, local_bounds
from storage.db import Database, utcnow
from storage.spreadsheet import safe_cell

__all__ = ["BY", "COLUMNS", "StatsError", "StatsScope", "StatsService", "month_bounds", "to_csv", "to_xlsx"]

BY = ("subdistrict", "station", "department")
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
COLUMNS = (
    ("unit", "单位"),
    ("received", "受理"),
    ("dispatched", "派遣"),
    ("onsite_in_time_pct", "按时到场率%"),
    ("resolved_in_time_pct", "按时办结率%"),
    ("closed", "结案"),
    ("overdue", "超期（累计）"),
    ("rank", "排名"),
)


class StatsError(ValueError):
    """A bad statistics request (message names the field)."""


@dataclass(frozen=True, slots=True)
class StatsScope:
    """The cases a caller may count: in these sub-districts, at these stations or dispatched to
    these units (``None`` from the policy: every case)."""

    areas: frozenset[str]
    units: frozenset[str]


def month_bounds(month: str, zone: zoneinfo.ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The UTC start and end of a local calendar month ``YYYY-MM`` (or a year ``YYYY``), 2000-2999."""
    if not month[:4].isdigit() or not 2000 <= int(month[:4]) <= 2999:
        raise StatsError("month: YYYY-MM (or a year, YYYY) from 2000 on")
    if re.fullmatch(r"\d{4}", month):
        y = int(month)
        return (
            dt.datetime(y, 1, 1, tzinfo=zone).astimezone(dt.UTC),
            dt.datetime(y + 1, 1, 1, tzinfo=zone).astimezone(dt.UTC),
        )
    m = MONTH.match(month)
    if m is None:
        raise StatsError("month: YYYY-MM (or a year, YYYY)")
    y, mo = int(m.group(1)), int(m.group(2))
    start = dt.datetime(y, mo, 1, tzinfo=zone)
    end = dt.datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


class StatsService:
    """The grouped queries and the table they make."""

    def __init__(self, db: Database, timezone: str, rollup: StatsRollup | None = None) -> None:
        self.db = db
        self.zone = zoneinfo.ZoneInfo(timezone)
        self.rollup = rollup

    def _day(self, dialect: str, start: dt.datetime) -> ColumnElement[Any]:
        """The local day of a case's creation, as ``YYYY-MM-DD`` text."""
        if dialect == "postgresql":
            return func.to_char(func.timezone(self.zone.key, Incident.created_at), "YYYY-MM-DD")
        # SQLite keeps UTC text: shift by the zone's offset in that month (the district's zone has no DST).
        off = start.astimezone(self.zone).utcoffset() or dt.timedelta(0)
        return func.strftime("%Y-%m-%d", Incident.created_at, f"{int(off.total_seconds()):+d} seconds")

    async def table(
        self,
        period: str,
        by: str,
        scope: StatsScope | None,
        *,
        department_ids: Set[str] = frozenset(),
        daily: bool = False,
        now: dt.datetime | None = None,
        use_rollup: bool = True,
    ) -> dict[str, Any]:
        """The statistics of ``period`` (``YYYY-MM`` or ``YYYY``) per unit of kind ``by``, ranked;
        with ``daily``, also per day. ``department_ids``: the units that are departments.

        With a rollup (and no scope: the whole district), the settled cases come from the rollup's
        month or day rows and only the cases still in the field are counted here; otherwise (a
        subtree's scope, ``use_rollup=False``) every case of the period is."""
        if by not in BY:
            raise StatsError(f"by: one of {', '.join(BY)}")
        start, end = month_bounds(period, self.zone)
        now = now or utcnow()
        keys: dict[str, ColumnElement[Any]] = {
            "subdistrict": Incident.area.expression,
            "station": Incident.station.expression,
            "department": Incident.dispatched_to.expression,
        }
        key = keys[by]
        one = literal(1)
        onsite_due = and_(
            Incident.onsite_deadline.is_not(None), or_(Incident.onsite_at.is_not(None), Incident.onsite_deadline < now)
        )
        onsite_ok = and_(Incident.onsite_at.is_not(None), Incident.onsite_at <= Incident.onsite_deadline)
        resolve_due = and_(
            Incident.resolve_deadline.is_not(None),
            or_(Incident.resolved_at.is_not(None), Incident.resolve_deadline < now),
        )
        resolve_ok = and_(Incident.resolved_at.is_not(None), Incident.resolved_at <= Incident.resolve_deadline)
        overdue = or_(
            and_(
                Incident.onsite_deadline.is_not(None), func.coalesce(Incident.onsite_at, now) > Incident.onsite_deadline
            ),
            and_(
                Incident.resolve_deadline.is_not(None),
                func.coalesce(Incident.resolved_at, now) > Incident.resolve_deadline,
            ),
        )

        def n(cond: ColumnElement[bool]) -> ColumnElement[Any]:
            return func.sum(case((cond, one), else_=0)).cast(Integer)

        measures = [
            func.count().label("received"),
            n(Incident.dispatched_at.is_not(None)).label("dispatched"),
            n(onsite_due).label("onsite_due"),
            n(onsite_ok).label("onsite_ok"),
            n(resolve_due).label("resolve_due"),
            n(resolve_ok).label("resolve_ok"),
            n(Incident.state == "closed").label("closed"),
            n(overdue).label("overdue"),
        ]
        where: list[ColumnElement[bool]] = [
            Incident.created_at >= start,
            Incident.created_at < end,
            key.is_not(None),
            key != "",
        ]
        if scope is not None:
            where.append(
                or_(
                    Incident.area.in_(sorted(scope.areas)),
                    Incident.station.in_(sorted(scope.units)),
                    Incident.dispatched_to.in_(sorted(scope.units)),
                )
            )
        rollup = self.rollup is not None and use_rollup and scope is None
        if rollup:
            # The cases in the field only: the partial index ix_incidents_unsettled holds just these.
            where.append(and_(UNSETTLED_SQL))  # parenthesised text: it keeps its OR inside
        async with self.db.session() as s:
            dialect = self.db.engine.dialect.name
            rows: list[Any] = list(
                (await s.execute(select(key.label("unit"), *measures).where(*where).group_by(key))).all()
            )
            days: list[Any] = []
            if daily:
                day = self._day(dialect, start).label("day")
                q = select(day, key.label("unit"), *measures).where(*where).group_by(day, key).order_by(day, key)
                days = list((await s.execute(q)).all())
            if rollup:
                rows = _merged(rows, await _rolled(s, by, period, "month"), ("unit",))
                if daily:
                    days = sorted(
                        _merged(days, await _rolled(s, by, period, "day"), ("day", "unit")),
                        key=lambda r: (r.day, r.unit),
                    )
        if by == "department":  # kept out of the SQL: an IN list would steer SQLite off the covering index
            rows = [r for r in rows if r.unit in department_ids]
            days = [r for r in days if r.unit in department_ids]
        units = [self._row(r) for r in rows]
        units.sort(
            key=lambda u: (-(u["resolved_in_time_pct"] or 0), -(u["onsite_in_time_pct"] or 0), u["overdue"], u["unit"])
        )
        for i, u in enumerate(units, 1):
            u["rank"] = i
        total = self._total(units)
        out: dict[str, Any] = {"period": period, "by": by, "units": units, "total": total}
        if daily:
            out["days"] = [{"day": r.day, **self._row(r)} for r in days]
        return out

    @staticmethod
    def _row(r: Any) -> dict[str, Any]:
        return {
            "unit": r.unit,
            "received": r.received,
            "dispatched": r.dispatched or 0,
            "onsite_due": r.onsite_due or 0,
            "onsite_in_time": r.onsite_ok or 0,
            "onsite_in_time_pct": _pct(r.onsite_ok or 0, r.onsite_due or 0),
            "resolve_due": r.resolve_due or 0,
            "resolved_in_time": r.resolve_ok or 0,
            "resolved_in_time_pct": _pct(r.resolve_ok or 0, r.resolve_due or 0),
            "closed": r.closed or 0,
            "overdue": r.overdue or 0,
        }

    @staticmethod
    def _total(units: list[dict[str, Any]]) -> dict[str, Any]:
        t = {
            k: sum(u[k] for u in units)
            for k in (
                "received",
                "dispatched",
                "onsite_due",
                "onsite_in_time",
                "resolve_due",
                "resolved_in_time",
                "closed",
                "overdue",
            )
        }
        t["onsite_in_time_pct"] = _pct(t["onsite_in_time"], t["onsite_due"])
        t["resolved_in_time_pct"] = _pct(t["resolved_in_time"], t["resolve_due"])
        return t


async def _rolled(s: AsyncSession, by: str, period: str, grain: str) -> list[Any]:
    """The rollup's sums per unit (``month``) or per day and unit (``day``) over a period."""
    r = IncidentStatsRollup
    first, last = local_bounds(period)
    if grain == "month":
        first, last = first[:7], last[:7]
    sums = [func.sum(getattr(r, m)).label(m) for m in MEASURES]
    where = (r.dim == by, r.grain == grain, r.period >= first, r.period <= last)
    if grain == "month":
        q = select(r.unit, *sums).where(*where).group_by(r.unit)
    else:
        q = select(r.period.label("day"), r.unit, *sums).where(*where).group_by(r.period, r.unit)
    return list((await s.execute(q)).all())


_UnitRow = namedtuple("_UnitRow", ["unit", *MEASURES])  # type: ignore[misc]
_DayRow = namedtuple("_DayRow", ["day", "unit", *MEASURES])  # type: ignore[misc]


def _merged(live: list[Any], rolled: list[Any], keys: tuple[str, ...]) -> list[Any]:
    """Live rows and rollup rows (both: the keys, then the measures in :data:`MEASURES` order)
    summed per key, as rows with the measures' names as attributes."""
    n = len(keys)
    out: dict[tuple[Any, ...], list[int]] = {}
    for r in (*live, *rolled):
        k = tuple(r[:n])
        acc = out.get(k)
        if acc is None:
            out[k] = [v or 0 for v in r[n:]]
        else:
            for i, v in enumerate(r[n:]):
                acc[i] += v or 0
    make = _UnitRow if keys == ("unit",) else _DayRow
    return [make(*k, *v) for k, v in out.items() if v[0]]


def _cells(table: dict[str, Any], names: dict[str, str]) -> list[list[Any]]:
    rows: list[list[Any]] = [[label for _, label in COLUMNS]]
    for u in table["units"]:
        rows.append([names.get(u["unit"], u["unit"]) if k == "unit" else u[k] for k, _ in COLUMNS])
    return rows


def to_csv(table: dict[str, Any], names: dict[str, str]) -> bytes:
    """The table as UTF-8 CSV with a byte-order mark (spreadsheets on Windows read the Chinese), its
    text cells safe from formula injection."""
    buf = io.StringIO()
    w = csv.writer(buf)
    for row in _cells(table, names):
        w.writerow([safe_cell(c) for c in row])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def to_xlsx(table: dict[str, Any], names: dict[str, str]) -> bytes:
    """The table as an XLSX workbook: the ranked units, then (when present) the days."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)  # streams rows: a month's days are thousands of them
    ws = wb.create_sheet(f"{table['period']}")
    ws.freeze_panes = "A2"
    for row in _cells(table, names):
        ws.append([safe_cell(c) if c is not None else "" for c in row])
    if "days" in table:
        wd = wb.create_sheet("按日")
        wd.append(["日期", *(label for _, label in COLUMNS[:-1])])
        for d in table["days"]:
            wd.append(
                [d["day"], *((names.get(d["unit"], d["unit"]) if k == "unit" else d[k]) for k, _ in COLUMNS[:-1])]
            )
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
