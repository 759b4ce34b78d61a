"""Inventory import/export through the CLI and the library: good, bad and hostile rows."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from camera_registry.inventory import InventoryError, parse_records
from gateway.cli import app

SECRET = "Zq9-very-secret-pw"
GOOD = [
    {
        "id": "cam-qb-001",
        "name": "七宝老街东口",
        "kind": "fixed",
        "source_url": f"rtsp://admin:{SECRET}@127.0.0.1:8554/h264",
        "area": "七宝镇",
        "department": "police",
        "lat": 31.155,
        "lon": 121.35,
        "tags": ["路口", "商业"],
    },
    {
        "id": "cam-xz-002",
        "name": "莘庄地铁站北广场",
        "kind": "fixed",
        "source_url": "rtsp://127.0.0.1:8554/h264_360p",
        "area": "莘庄镇",
        "department": "transport",
        "lat": 31.11,
        "lon": 121.385,
    },
]
VEHICLES = [{"id": "bus-1", "kind": "bus", "plate": "沪A12345", "line": "闵行12路", "home_district": "闵行区"}]
BUS_CAM = {
    "id": "cam-bus-1-front",
    "name": "闵行12路 前",
    "kind": "bus",
    "source_url": "rtsp://127.0.0.1:{port}/h264",
    "area": "",
    "department": "transport",
    "vehicle_id": "bus-1",
    "vehicle_position": "front",
}
HOSTILE = [
    {"id": "h1", "name": "file", "source_url": "file:///etc/passwd"},
    {"id": "h2", "name": "concat", "source_url": "concat:rtsp://a/b|file:///etc/passwd"},
    {"id": "h3", "name": "http", "source_url": "http://169.254.169.254/latest/meta-data"},
    {"id": "h4", "name": "bad lat", "source_url": "rtsp://h/p", "lat": 123.0, "lon": 1.0},
    {"id": "h5", "name": "x" * 5000, "source_url": "rtsp://h/p"},
    {"id": "h6", "name": "pipe", "source_url": "pipe:0"},
    {"id": "h7", "name": "only lat", "source_url": "rtsp://h/p", "lat": 31.0},
    {"id": "../etc", "name": "bad id", "source_url": "rtsp://h/p"},
    {"id": "h9", "name": "unknown field", "source_url": "rtsp://h/p", "evil": 1},
    {"id": "h10", "name": "creds in bad url", "source_url": f"ftp://u:{SECRET}@h/p"},
]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LIANDONG_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, list(args))
    return r.exit_code, r.output


def write_json(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


def test_import_json_then_reimport_unchanged_then_update(env: Path) -> None:
    f = write_json(env / "inv.json", GOOD)
    code, out = run("cameras", "import", str(f), "--json")
    assert code == 0, out
    rep = json.loads(out.strip().splitlines()[-1])
    assert (rep["created"], rep["rejected"], rep["written"]) == (2, 0, True)
    code, out = run("cameras", "import", str(f), "--json")
    assert json.loads(out.strip().splitlines()[-1])["unchanged"] == 2
    changed = [dict(GOOD[0], name="七宝老街东口（新）"), GOOD[1]]
    code, out = run("cameras", "import", str(write_json(env / "inv2.json", changed)), "--json")
    rep = json.loads(out.strip().splitlines()[-1])
    assert (rep["updated"], rep["unchanged"]) == (1, 1)
    # A changed password is an update too, and is never printed.
    pw_changed = [dict(GOOD[0], source_url="rtsp://admin:other-pw@127.0.0.1:8554/h264")]
    code, out = run("cameras", "import", str(write_json(env / "inv3.json", pw_changed)), "--json")
    assert json.loads(out.strip().splitlines()[-1])["updated"] == 1
    assert "other-pw" not in out


def test_hostile_rows_rejected_alone_with_reasons(env: Path) -> None:
    f = write_json(env / "inv.json", GOOD + HOSTILE)
    code, out = run("cameras", "import", str(f), "--json")
    assert code == 1
    rep = json.loads(out.strip().splitlines()[-1])
    assert rep["created"] == 2
    assert rep["rejected"] == len(HOSTILE)
    reasons = {e["id"]: e["reason"] for e in rep["errors"]}
    assert "scheme 'file' not allowed" in reasons["h1"]
    assert "scheme 'concat' not allowed" in reasons["h2"]
    assert "scheme 'http' not allowed" in reasons["h3"]
    assert reasons["h4"].startswith("lat:")
    assert reasons["h5"].startswith("name:")
    assert "scheme 'pipe' not allowed" in reasons["h6"]
    assert "lat and lon" in reasons["h7"]
    assert reasons["../etc"].startswith("id:")
    assert reasons["h9"].startswith("evil:")
    assert SECRET not in out
    assert "/etc/passwd" not in out
    # Row numbers are 1-based positions in the file.
    rows = {e["id"]: e["row"] for e in rep["errors"]}
    assert rows["h1"] == 3


def test_strict_writes_nothing(env: Path) -> None:
    f = write_json(env / "inv.json", GOOD + HOSTILE[:1])
    code, out = run("cameras", "import", str(f), "--strict", "--json")
    assert code == 1
    rep = json.loads(out.strip().splitlines()[-1])
    assert rep["written"] is False
    code, out = run("cameras", "export", "--format", "json")
    assert json.loads(out) == []


def test_duplicate_ids_later_row_rejected(env: Path) -> None:
    rows = [GOOD[0], dict(GOOD[0], name="dup")]
    _code, out = run("cameras", "import", str(write_json(env / "d.json", rows)), "--json")
    rep = json.loads(out.strip().splitlines()[-1])
    assert rep["created"] == 1
    assert rep["errors"] == [{"row": 2, "id": "cam-qb-001", "reason": "id: duplicate of an earlier row in this file"}]


def test_broken_encoding_is_a_clear_error(env: Path) -> None:
    f = env / "bad.csv"
    f.write_bytes("id,name,source_url\nc1,七宝,rtsp://h/p\n".encode() + b"c2,\xff\xfe,rtsp://h/p\n")
    code, out = run("cameras", "import", str(f))
    assert code == 2
    assert "not valid UTF-8 (line 3" in out
    with pytest.raises(InventoryError, match="invalid JSON"):
        parse_records(b"[{", "json")
    with pytest.raises(InventoryError, match="list of records"):
        parse_records(b'"x"', "json")


def test_csv_with_vehicles_and_substitution(env: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(
        buf,
        fieldnames=[
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
        ],
    )
    w.writeheader()
    for r in [*GOOD, BUS_CAM]:
        w.writerow({**r, "tags": ";".join(r.get("tags", []))})  # type: ignore[arg-type]
    f = env / "inv.csv"
    f.write_text(buf.getvalue(), encoding="utf-8")
    code, out = run("cameras", "import", str(f), "--json")
    rep = json.loads(out.strip().splitlines()[-1])
    assert rep["errors"] == [
        {"row": 3, "id": "cam-bus-1-front", "reason": "source_url: malformed URL (bad host or port)"}
    ]
    code, out = run("cameras", "import", str(f), "-s", "port=9554", "--json")
    rep = json.loads(out.strip().splitlines()[-1])
    assert rep["errors"] == [{"row": 3, "id": "cam-bus-1-front", "reason": "vehicle_id: vehicle not found"}]
    v = write_json(env / "veh.json", VEHICLES)
    code, out = run("cameras", "import", str(f), "--vehicles", str(v), "-s", "port=9554", "--json")
    assert code == 0, out
    code, out = run("cameras", "export", "--format", "json")
    exported = {c["id"]: c for c in json.loads(out)}
    assert exported["cam-bus-1-front"]["source_url"] == "rtsp://127.0.0.1:9554/h264"
    assert exported["cam-qb-001"]["tags"] == sorted(["路口", "商业"])
    assert exported["cam-qb-001"]["name"] == "七宝老街东口"


def test_export_roundtrip_without_and_with_credentials(env: Path) -> None:
    run("cameras", "import", str(write_json(env / "inv.json", GOOD)))
    code, out = run("cameras", "export", "--format", "csv")
    assert code == 0
    assert SECRET not in out
    assert "rtsp://127.0.0.1:8554/h264" in out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["id"] for r in rows] == ["cam-qb-001", "cam-xz-002"]
    secret_file = env / "full.json"
    code, _ = run("cameras", "export", "--format", "json", "--with-credentials", "-o", str(secret_file))
    assert code == 0
    full = json.loads(secret_file.read_text(encoding="utf-8"))
    assert full[0]["source_url"] == f"rtsp://admin:{SECRET}@127.0.0.1:8554/h264"
    assert oct(secret_file.stat().st_mode & 0o777) == "0o600"
    # Re-importing the full export into a fresh data dir reproduces the cameras unchanged.
    code, out = run("cameras", "import", str(secret_file), "--json")
    assert json.loads(out.strip().splitlines()[-1])["unchanged"] == 2


def test_credentials_are_encrypted_at_rest(env: Path) -> None:
    run("cameras", "import", str(write_json(env / "inv.json", GOOD)))
    db = (env / "data" / "liandong.db").read_bytes()
    assert SECRET.encode() not in db
    assert b"cam-qb-001" in db
