"""Inventory import and export: the telecom operator's camera list as CSV or JSON.

Import upserts by id and reports, per row, created / updated / unchanged / rejected (with the row
number and the reason). A bad row rejects only itself unless ``strict`` is set, in which case
nothing is written when any row is bad. Vehicles and cameras of one import share one transaction,
so a strict import that fails leaves no vehicle behind either. Reasons never contain credentials:
validation messages are built from field names and fixed texts, not from the rejected values.

The CLI (``liandong cameras import``) and the API (``POST /api/cameras/import``) both call
:func:`import_inventory`.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from camera_registry.models import Camera, Vehicle
from camera_registry.schemas import CAMERA_FIELDS, VEHICLE_FIELDS, CameraIn, VehicleIn
from camera_registry.store import CameraStore
from camera_registry.url_secrets import CameraSecrets
from storage.spreadsheet import safe_cell, unquote_cell

__all__ = [
    "CAMERA_FIELDS",
    "MAX_FILE_BYTES",
    "VEHICLE_FIELDS",
    "Format",
    "ImportReport",
    "InventoryError",
    "InventoryReport",
    "RowResult",
    "detect_format",
    "export_cameras",
    "export_vehicles",
    "import_cameras",
    "import_inventory",
    "import_vehicles",
    "parse_bundle",
    "parse_records",
]

MAX_ROWS = 200_000
MAX_FILE_BYTES = 64 * 1024 * 1024
Format = Literal["csv", "json"]
_SAFE_ID = re.compile(r"^[\w.:-]{1,64}$")
_SAFE_KEY = re.compile(r"^[\w.-]{1,40}$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_BATCH = 200  # rows between progress callbacks


class _Abort(Exception):
    """Internal: roll back a strict import."""


class InventoryError(ValueError):
    """The file as a whole cannot be read (encoding, syntax, size); nothing was written."""


@dataclass(frozen=True, slots=True)
class _BadRow:
    """A row the CSV reader could not parse (e.g. a field over the size limit); rejected alone."""

    reason: str


@dataclass(frozen=True, slots=True)
class RowResult:
    """The outcome of one row. ``row`` is 1-based: the data row number (CSV header not counted)."""

    row: int
    id: str | None
    outcome: str
    reason: str | None = None


@dataclass
class ImportReport:
    """What an import did."""

    rows: list[RowResult] = field(default_factory=list)
    written: bool = False

    def count(self, outcome: str) -> int:
        """Rows with this outcome."""
        return sum(1 for r in self.rows if r.outcome == outcome)

    @property
    def rejected(self) -> list[RowResult]:
        """Rejected rows."""
        return [r for r in self.rows if r.outcome == "rejected"]

    def summary(self) -> dict[str, Any]:
        """Counts and rejected rows, JSON-ready."""
        return {
            "created": self.count("created"),
            "updated": self.count("updated"),
            "unchanged": self.count("unchanged"),
            "rejected": self.count("rejected"),
            "written": self.written,
            "errors": [{"row": r.row, "id": r.id, "reason": r.reason} for r in self.rejected],
        }


@dataclass
class InventoryReport:
    """The reports of one import: vehicles (when given) and cameras."""

    cameras: ImportReport
    vehicles: ImportReport | None = None

    @property
    def written(self) -> bool:
        """Whether the import was committed."""
        return self.cameras.written

    @property
    def changed(self) -> bool:
        """Whether anything was created or updated (and committed)."""
        reps = [self.cameras] + ([self.vehicles] if self.vehicles else [])
        return self.written and any(r.count("created") + r.count("updated") for r in reps)

    def rejected_count(self) -> int:
        """Rejected rows in both reports."""
        return len(self.cameras.rejected) + (len(self.vehicles.rejected) if self.vehicles else 0)

    def summary(self) -> dict[str, Any]:
        """The camera report's summary, with the vehicle report's under ``vehicles`` when there is one."""
        out = self.cameras.summary()
        if self.vehicles is not None:
            out["vehicles"] = self.vehicles.summary()
        return out


def detect_format(name: str, data: bytes) -> Format:
    """``json`` or ``csv`` from the file name (or content type), else from the first non-blank byte."""
    lower = name.lower()
    if lower.endswith((".json", "/json")):
        return "json"
    if lower.endswith((".csv", "/csv")):
        return "csv"
    head = data.lstrip()[:1]
    return "json" if head in (b"[", b"{") else "csv"


def _decode(data: bytes) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise InventoryError(f"file: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InventoryError(f"file: not valid UTF-8 (line {line}, byte {e.start})") from None


def _csv_rows(text: str) -> list[Any]:
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames
    except csv.Error as e:
        raise InventoryError(f"file: invalid CSV header ({e})") from None
    if not header:
        raise InventoryError("file: empty CSV (no header)")
    if "id" not in header:
        raise InventoryError("file: CSV header must contain 'id'")
    rows: list[Any] = []
    while len(rows) <= MAX_ROWS:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            if "field limit" not in str(e):  # e.g. an unterminated quote: the rest cannot be trusted
                raise InventoryError(f"file: invalid CSV near line {reader.line_num} ({e})") from None
            rows.append(_BadRow(f"row: a field is longer than {csv.field_size_limit()} characters"))
            continue
        if None in row:  # more values than header columns
            rows.append(_BadRow("row: more values than header columns"))
            continue
        rows.append({k: unquote_cell(v) if isinstance(v, str) else v for k, v in row.items()})  # our export's
    return rows


def parse_records(data: bytes, fmt: Format, *, key: str = "cameras") -> list[Any]:
    """Rows of a CSV or JSON inventory as dicts (values untyped; validation comes later).

    A JSON document is a list of records or an object holding one under ``key`` (or ``items``).
    Raises :class:`InventoryError` when the file as a whole cannot be read.
    """
    text = _decode(data)
    if fmt == "json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise InventoryError(f"file: invalid JSON at line {e.lineno} column {e.colno}") from None
        except RecursionError:
            raise InventoryError("file: JSON nested too deeply") from None
        if isinstance(doc, dict):
            doc = doc.get(key, doc.get("items"))
        if not isinstance(doc, list):
            raise InventoryError(f"file: JSON must be a list of records (or {{'{key}': [...]}})")
        rows = doc
    else:
        rows = _csv_rows(text)
    if len(rows) > MAX_ROWS:
        raise InventoryError(f"file: more than {MAX_ROWS} rows")
    return rows


def parse_bundle(data: bytes, fmt: Format, what: str = "cameras") -> tuple[list[Any], list[Any] | None]:
    """(camera records, vehicle records or None) of an import body.

    A JSON object may hold ``cameras`` and ``vehicles`` lists (imported together); a JSON list or a
    CSV file holds ``what`` (``cameras`` or ``vehicles``).
    """
    if fmt == "json" and data.lstrip()[:1] == b"{":
        text = _decode(data)
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise InventoryError(f"file: invalid JSON at line {e.lineno} column {e.colno}") from None
        except RecursionError:
            raise InventoryError("file: JSON nested too deeply") from None
        if not isinstance(doc, dict) or not doc or set(doc) - {"cameras", "vehicles"}:
            raise InventoryError("file: a JSON object must hold only 'cameras' and/or 'vehicles' lists")
        cams, vehs = doc.get("cameras", []), doc.get("vehicles")
        if not isinstance(cams, list) or not (vehs is None or isinstance(vehs, list)):
            raise InventoryError("file: 'cameras' and 'vehicles' must be lists")
        if len(cams) + len(vehs or []) > MAX_ROWS:
            raise InventoryError(f"file: more than {MAX_ROWS} rows")
        return cams, vehs
    records = parse_records(data, fmt, key=what)
    return ([], records) if what == "vehicles" else (records, None)


def _unknown_fields(row: dict[Any, Any], known: Sequence[str]) -> None:
    extra = sorted(str(k) for k in set(row) - set(known))
    if extra:
        name = extra[0] if _SAFE_KEY.match(extra[0]) else "?"
        raise ValueError(f"{name}: unknown field")


def _normalise_camera(raw: Any, substitutions: dict[str, str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError("row: must be an object")
    _unknown_fields(raw, CAMERA_FIELDS)
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if isinstance(v, str):
            v = v.strip()
            if v == "" and k not in ("area", "station", "department"):
                continue
        out[k] = v
    if isinstance(out.get("tags"), str):
        out["tags"] = [t.strip() for t in out["tags"].split(";") if t.strip()]
    for key in ("lat", "lon"):
        if isinstance(out.get(key), str):
            try:
                out[key] = float(out[key])
            except ValueError:
                raise ValueError(f"{key}: not a number") from None
    url = out.get("source_url")
    if isinstance(url, str) and substitutions:
        out["source_url"] = _PLACEHOLDER.sub(lambda m: substitutions.get(m.group(1), m.group(0)), url)
    return out


def _vehicle(raw: Any) -> VehicleIn:
    if not isinstance(raw, dict):
        raise ValueError("row: must be an object")
    _unknown_fields(raw, VEHICLE_FIELDS)
    clean = {k: (v.strip() or None) if isinstance(v, str) else v for k, v in raw.items()}
    clean["home_district"] = clean.get("home_district") or ""
    return VehicleIn.model_validate(clean)


def _reason(e: ValidationError | ValueError) -> str:
    """A reason naming the field, never the rejected value."""
    if isinstance(e, ValidationError):
        parts = []
        for err in e.errors(include_input=False, include_url=False)[:3]:
            loc = ".".join(str(p) for p in err["loc"]) or "row"
            msg = str(err["msg"]).removeprefix("Value error, ")
            parts.append(f"{loc}: {msg}")
        return "; ".join(parts)
    return str(e)


def _row_id(raw: Any) -> str | None:
    """The row's id for the report, only when it looks like an id (a hostile value is not echoed)."""
    rid = raw.get("id") if isinstance(raw, dict) else None
    return rid.strip() if isinstance(rid, str) and _SAFE_ID.match(rid.strip()) else None


ProgressFn = Callable[[int], None]
Row = TypeVar("Row", CameraIn, VehicleIn)


def _validate(records: Iterable[Any], parse: Callable[[Any], Row]) -> tuple[ImportReport, list[tuple[int, Row]]]:
    """Parse every row; rejected rows (bad fields, repeated ids) go in the report with their reason."""
    report = ImportReport()
    seen: set[str] = set()
    valid: list[tuple[int, Row]] = []
    for n, raw in enumerate(records, start=1):
        if isinstance(raw, _BadRow):
            report.rows.append(RowResult(n, None, "rejected", raw.reason))
            continue
        try:
            row = parse(raw)
        except (ValidationError, ValueError) as e:
            report.rows.append(RowResult(n, _row_id(raw), "rejected", _reason(e)))
            continue
        if row.id in seen:
            report.rows.append(RowResult(n, row.id, "rejected", "id: duplicate of an earlier row in this file"))
            continue
        seen.add(row.id)
        valid.append((n, row))
    return report, valid


async def _write_vehicles(
    store: CameraStore, s: AsyncSession, report: ImportReport, valid: Sequence[tuple[int, VehicleIn]]
) -> None:
    for start in range(0, len(valid), _BATCH):
        batch = valid[start : start + _BATCH]
        outcomes = await store.upsert_vehicles(s, [v for _, v in batch])
        report.rows += [RowResult(n, v.id, o) for (n, v), o in zip(batch, outcomes, strict=True)]


async def _write_cameras(
    store: CameraStore,
    s: AsyncSession,
    report: ImportReport,
    valid: Sequence[tuple[int, CameraIn]],
    progress: ProgressFn | None,
) -> None:
    vehicles = set((await s.execute(select(Vehicle.id))).scalars())
    pending = len(report.rows)  # rows rejected by validation count as progress too
    for start in range(0, len(valid), _BATCH):
        batch = []
        for n, cam in valid[start : start + _BATCH]:
            refused = store.networks.refusal(cam.source_url)
            if refused is not None:
                report.rows.append(RowResult(n, cam.id, "rejected", refused))
            elif cam.vehicle_id and cam.vehicle_id not in vehicles:
                report.rows.append(RowResult(n, cam.id, "rejected", "vehicle_id: vehicle not found"))
            else:
                batch.append((n, cam))
        results = await store.upsert_many(s, [cam for _, cam in batch])
        report.rows += [RowResult(n, cam.id, res.outcome) for (n, cam), res in zip(batch, results, strict=True)]
        pending += len(valid[start : start + _BATCH])
        if progress:
            progress(pending)
            pending = 0
    if progress and pending:
        progress(pending)


def _finish(report: ImportReport, *, written: bool) -> ImportReport:
    if not written:
        # Nothing was written: rows that would have been created/updated/unchanged say so.
        report.rows = [r if r.outcome == "rejected" else RowResult(r.row, r.id, "not_written") for r in report.rows]
    report.written = written
    report.rows.sort(key=lambda r: r.row)
    return report


async def import_inventory(
    store: CameraStore,
    cameras: Iterable[Any],
    vehicles: Iterable[Any] | None = None,
    *,
    strict: bool = False,
    substitutions: dict[str, str] | None = None,
    progress: ProgressFn | None = None,
) -> InventoryReport:
    """Validate and upsert vehicles (first) and cameras in one transaction; see the module docstring.

    ``substitutions`` fill ``{KEY}`` placeholders in source URLs. ``progress(n)`` is called with the
    number of camera rows handled since its last call.
    """
    subs = substitutions or {}
    # Validation is CPU work (~17 us a row): off the event loop, so a large import does not stall it.
    vrep, vvalid = await asyncio.to_thread(_validate, vehicles, _vehicle) if vehicles is not None else (None, [])
    crep, cvalid = await asyncio.to_thread(
        _validate, cameras, lambda raw: CameraIn.model_validate(_normalise_camera(raw, subs))
    )
    out = InventoryReport(crep, vrep)
    if strict and out.rejected_count():
        for rep, valid in ((crep, cvalid), (vrep, vvalid)):
            if rep is not None:
                rep.rows += [RowResult(n, row.id, "not_written") for n, row in valid]
                _finish(rep, written=False)
        return out
    try:
        async with store.db.session() as s:
            if vrep is not None:
                await _write_vehicles(store, s, vrep, vvalid)
            await _write_cameras(store, s, crep, cvalid, progress)
            if strict and out.rejected_count():
                raise _Abort  # rolls the whole transaction back
    except _Abort:
        store.invalidate()
        for rep in (crep, vrep):
            if rep is not None:
                _finish(rep, written=False)
        return out
    store.invalidate()
    for rep in (crep, vrep):
        if rep is not None:
            _finish(rep, written=True)
    return out


async def import_cameras(
    store: CameraStore,
    records: Iterable[Any],
    *,
    strict: bool = False,
    substitutions: dict[str, str] | None = None,
    progress: ProgressFn | None = None,
) -> ImportReport:
    """Validate and upsert camera records in one transaction."""
    rep = await import_inventory(store, records, strict=strict, substitutions=substitutions, progress=progress)
    return rep.cameras


async def import_vehicles(store: CameraStore, records: Iterable[Any], *, strict: bool = False) -> ImportReport:
    """Validate and upsert vehicle records in one transaction."""
    rep = await import_inventory(store, [], records, strict=strict)
    assert rep.vehicles is not None
    return rep.vehicles


def _dump(records: list[dict[str, Any]], fields: Sequence[str], fmt: Format) -> str:
    if fmt == "json":
        return json.dumps(records, ensure_ascii=False, indent=1) + "\n"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    w.writeheader()
    for r in _flatten(records):
        w.writerow(r)
    return buf.getvalue()


def _flatten(records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """CSV cells: tags joined by ';', None as an empty cell, no text a spreadsheet would run."""
    for r in records:
        yield {k: safe_cell(";".join(v) if isinstance(v, list) else ("" if v is None else v)) for k, v in r.items()}


async def export_cameras(store: CameraStore, fmt: Format, *, with_credentials_: bool = False) -> str:
    """The inventory in the import format (credentials only when asked for explicitly)."""
    async with store.db.session() as s:
        cams = list((await s.execute(select(Camera).order_by(Camera.id))).scalars())
    records = []
    for c in cams:
        url = c.source_url
        if with_credentials_ and c.credentials_enc:
            url = CameraSecrets.loads(store.box.decrypt(c.credentials_enc)).open_url(url)
        records.append(
            {
                "id": c.id,
                "name": c.name,
                "kind": c.kind.value,
                "source_url": url,
                "area": c.area,
                "station": c.station,
                "department": c.department,
                "lat": c.lat,
                "lon": c.lon,
                "vehicle_id": c.vehicle_id,
                "vehicle_position": c.vehicle_position,
                "tags": list(c.tags or []),
            }
        )
    return _dump(records, CAMERA_FIELDS, fmt)


async def export_vehicles(store: CameraStore, fmt: Format) -> str:
    """The vehicles in the import format."""
    records = [{k: getattr(v, k) for k in VEHICLE_FIELDS} for v in await store.vehicles()]
    for r in records:
        r["kind"] = r["kind"].value
    return _dump(records, VEHICLE_FIELDS, fmt)
