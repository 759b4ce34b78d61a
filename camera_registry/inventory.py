"""Inventory import and export: the telecom operator's camera list as CSV or JSON.

Import upserts by id and reports, per row, created / updated / unchanged / rejected (with the row
number and the reason). A bad row rejects only itself unless ``strict`` is set, in which case
nothing is written when any row is bad. Reasons never contain credentials: validation messages are
built from field names and fixed texts, not from the rejected values.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import ValidationError
from sqlalchemy import select

from camera_registry.models import Camera, Vehicle
from camera_registry.schemas import CameraIn, VehicleIn
from camera_registry.store import CameraStore
from camera_registry.urls import with_credentials

__all__ = [
    "CAMERA_FIELDS",
    "VEHICLE_FIELDS",
    "ImportReport",
    "InventoryError",
    "RowResult",
    "export_cameras",
    "import_cameras",
    "import_vehicles",
    "parse_records",
]

CAMERA_FIELDS = (
    "id",
    "name",
    "kind",
    "source_url",
    "area",
    "department",
    "lat",
    "lon",
    "vehicle_id",
    "vehicle_position",
    "tags",
)
VEHICLE_FIELDS = ("id", "kind", "plate", "line", "cargo", "home_district", "contact")
MAX_ROWS = 200_000
MAX_FILE_BYTES = 64 * 1024 * 1024
Format = Literal["csv", "json"]


class _Abort(Exception):
    """Internal: roll back a strict import."""


class InventoryError(ValueError):
    """The file as a whole cannot be read (encoding, syntax, size); nothing was written."""


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


def detect_format(name: str, data: bytes) -> Format:
    """``json`` or ``csv`` from the file name, else from the first non-blank byte."""
    lower = name.lower()
    if lower.endswith((".json", ".ndjson")):
        return "json"
    if lower.endswith(".csv"):
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


def parse_records(data: bytes, fmt: Format) -> list[dict[str, Any]]:
    """Rows of a CSV or JSON inventory as dicts (values untyped; validation comes later)."""
    text = _decode(data)
    if fmt == "json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise InventoryError(f"file: invalid JSON at line {e.lineno} column {e.colno}") from None
        if isinstance(doc, dict):
            doc = doc.get("cameras", doc.get("vehicles", doc.get("items")))
        if not isinstance(doc, list):
            raise InventoryError("file: JSON must be a list of records (or {'cameras': [...]})")
        rows = doc
    else:
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""))
            rows = list(reader)
        except csv.Error as e:
            raise InventoryError(f"file: invalid CSV ({e})") from None
        if reader.fieldnames is None:
            raise InventoryError("file: empty CSV (no header)")
        if "id" not in reader.fieldnames:
            raise InventoryError("file: CSV header must contain 'id'")
    if len(rows) > MAX_ROWS:
        raise InventoryError(f"file: more than {MAX_ROWS} rows")
    return rows


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _normalise_camera(raw: Any, substitutions: dict[str, str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError("row: must be an object")
    row = {k: v for k, v in raw.items() if k is not None}
    extra = set(row) - set(CAMERA_FIELDS)
    if extra:
        raise ValueError(f"{sorted(extra)[0]}: unknown field")
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, str):
            v = v.strip()
            if v == "" and k not in ("area", "department"):
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


def _reason(e: ValidationError | ValueError) -> str:
    """A reason naming the field, never the rejected value."""
    if isinstance(e, ValidationError):
        parts = []
        for err in e.errors()[:3]:
            loc = ".".join(str(p) for p in err["loc"]) or "row"
            msg = str(err["msg"]).removeprefix("Value error, ")
            parts.append(f"{loc}: {msg}")
        return "; ".join(parts)
    return str(e)


ProgressFn = Callable[[int], None]
Row = TypeVar("Row", CameraIn, VehicleIn)


def _validate(records: Iterable[Any], parse: Callable[[Any], Row]) -> tuple[ImportReport, list[tuple[int, Row]]]:
    """Parse every row; rejected rows (bad fields, repeated ids) go in the report with their reason."""
    report = ImportReport()
    seen: set[str] = set()
    valid: list[tuple[int, Row]] = []
    for n, raw in enumerate(records, start=1):
        rid = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
        try:
            row = parse(raw)
        except (ValidationError, ValueError) as e:
            report.rows.append(RowResult(n, rid[:64] if rid else None, "rejected", _reason(e)))
            continue
        if row.id in seen:
            report.rows.append(RowResult(n, row.id, "rejected", "id: duplicate of an earlier row in this file"))
            continue
        seen.add(row.id)
        valid.append((n, row))
    return report, valid


def _not_written(report: ImportReport, valid: Sequence[tuple[int, CameraIn | VehicleIn]]) -> ImportReport:
    """A strict import with bad rows: the good ones are reported as not written."""
    report.rows += [RowResult(n, row.id, "not_written") for n, row in valid]
    report.rows.sort(key=lambda r: r.row)
    return report


def _vehicle(raw: Any) -> VehicleIn:
    if not isinstance(raw, dict):
        raise ValueError("row: must be an object")
    clean = {k: (v.strip() or None) if isinstance(v, str) else v for k, v in raw.items()}
    clean["home_district"] = clean.get("home_district") or ""
    return VehicleIn.model_validate(clean)


async def import_cameras(
    store: CameraStore,
    records: Iterable[Any],
    *,
    strict: bool = False,
    substitutions: dict[str, str] | None = None,
    progress: ProgressFn | None = None,
) -> ImportReport:
    """Validate and upsert camera records in one transaction; see the module docstring."""
    subs = substitutions or {}
    report, valid = _validate(records, lambda raw: CameraIn.model_validate(_normalise_camera(raw, subs)))
    if strict and report.rejected:
        return _not_written(report, valid)
    try:
        async with store.db.session() as s:
            vehicles = set((await s.execute(select(Vehicle.id))).scalars())
            done = 0
            for n, cam in valid:
                if cam.vehicle_id and cam.vehicle_id not in vehicles:
                    report.rows.append(RowResult(n, cam.id, "rejected", "vehicle_id: vehicle not found"))
                    continue
                result = await store.upsert(s, cam)
                report.rows.append(RowResult(n, cam.id, result.outcome))
                done += 1
                if progress and done % 200 == 0:
                    progress(200)
            if strict and report.rejected:
                raise _Abort  # rolls the whole transaction back
            if progress:
                progress(done % 200)
    except _Abort:
        # Nothing was written: report created/updated rows as what they would have been.
        report.rows = [r if r.outcome == "rejected" else RowResult(r.row, r.id, "not_written") for r in report.rows]
        report.rows.sort(key=lambda r: r.row)
        return report
    report.written = True
    report.rows.sort(key=lambda r: r.row)
    return report


async def import_vehicles(store: CameraStore, records: Iterable[Any], *, strict: bool = False) -> ImportReport:
    """Validate and upsert vehicle records in one transaction."""
    report, valid = _validate(records, _vehicle)
    if strict and report.rejected:
        return _not_written(report, valid)
    async with store.db.session() as s:
        for n, v in valid:
            report.rows.append(RowResult(n, v.id, await store.upsert_vehicle(s, v)))
    report.written = True
    report.rows.sort(key=lambda r: r.row)
    return report


async def export_cameras(store: CameraStore, fmt: Format, *, with_credentials_: bool = False) -> str:
    """The inventory in the import format (credentials only when asked for explicitly)."""
    async with store.db.session() as s:
        cams = list((await s.execute(select(Camera).order_by(Camera.id))).scalars())
    records = []
    for c in cams:
        url = c.source_url
        if with_credentials_ and c.credentials_enc:
            url = with_credentials(url, store.box.decrypt(c.credentials_enc))
        records.append(
            {
                "id": c.id,
                "name": c.name,
                "kind": c.kind.value,
                "source_url": url,
                "area": c.area,
                "department": c.department,
                "lat": c.lat,
                "lon": c.lon,
                "vehicle_id": c.vehicle_id,
                "vehicle_position": c.vehicle_position,
                "tags": list(c.tags or []),
            }
        )
    if fmt == "json":
        return json.dumps(records, ensure_ascii=False, indent=1) + "\n"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CAMERA_FIELDS), lineterminator="\n")
    w.writeheader()
    for r in _csv_rows(records):
        w.writerow(r)
    return buf.getvalue()


def _csv_rows(records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for r in records:
        yield {**r, "tags": ";".join(r["tags"]), **{k: "" for k in ("lat", "lon") if r[k] is None}}
