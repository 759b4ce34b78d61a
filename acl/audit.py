"""The append-only, hash-chained audit log.

Each entry's ``hash`` is HMAC-SHA-256, keyed with a secret derived from the gateway's key file
(not stored in the database), over the previous entry's hash and the entry's canonical JSON. So
editing, inserting or deleting a row breaks the chain from that row on, and someone who can write
the database but lacks the key cannot recompute a consistent chain; :meth:`AuditLog.verify` names
the first broken entry. ``prev_hash`` is unique: two writers (gateway nodes, the CLI) can never
fork the chain, the later one retries on the new head. The product offers no way to edit or
delete entries.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, String, Text, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Mapped, mapped_column

from acl.identity import Subject
from storage.db import Base, Database, UtcDateTime, storage_failure, utcnow
from storage.secretbox import SecretBox
from storage.spreadsheet import safe_cell

__all__ = ["AuditEntry", "AuditLog", "VerifyResult", "audit_key"]

log = logging.getLogger(__name__)
GENESIS = "0" * 64
FIELDS = (
    "kind",
    "user_id",
    "username",
    "camera_id",
    "action",
    "address",
    "session_id",
    "incident_id",
    "detail",
    "start",
    "end",
)


class AuditEntry(Base):
    """One audited event."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)
    username: Mapped[str | None] = mapped_column(String(64), default=None)
    camera_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    action: Mapped[str | None] = mapped_column(String(64), default=None)
    address: Mapped[str | None] = mapped_column(String(64), default=None)
    session_id: Mapped[str | None] = mapped_column(String(64), default=None)
    incident_id: Mapped[str | None] = mapped_column(String(64), default=None)
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    start: Mapped[str | None] = mapped_column(String(40), default=None)
    end: Mapped[str | None] = mapped_column(String(40), default=None)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64))

    def canonical(self) -> str:
        """The hashed content of the entry."""
        body = {f: getattr(self, f) for f in FIELDS}
        body["ts"] = self.ts.astimezone(dt.UTC).isoformat(timespec="microseconds")
        body["id"] = self.id
        return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    def as_dict(self) -> dict[str, Any]:
        """The entry for the API and exports."""
        d: dict[str, Any] = {"id": self.id, "ts": self.ts.isoformat()}
        d.update({f: getattr(self, f) for f in FIELDS})
        d["hash"] = self.hash
        return d


def audit_key(box: SecretBox) -> bytes:
    """The chain's key, derived from the gateway's key file."""
    return box.derive_key("audit-chain")


def _filtered(
    q: Any,
    *,
    kind: str | None = None,
    user_id: int | None = None,
    camera_id: str | None = None,
    incident_id: str | None = None,
    until: dt.datetime | None = None,
) -> Any:
    """``q`` narrowed by the audit viewer's filters."""
    if incident_id:
        q = q.where(AuditEntry.incident_id == incident_id)
    if kind:
        q = q.where(AuditEntry.kind == kind)
    if user_id is not None:
        q = q.where(AuditEntry.user_id == user_id)
    if camera_id:
        q = q.where(AuditEntry.camera_id == camera_id)
    if until:
        q = q.where(AuditEntry.ts < until)
    return q


def _cell(v: Any) -> str:
    """A CSV cell that spreadsheets will not run as a formula (usernames and details are user input)."""
    return str(safe_cell("" if v is None else str(v)))


def _digest(key: bytes | None, prev: str, canonical: str) -> str:
    data = (prev + "\n" + canonical).encode("utf-8")
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of a chain check."""

    ok: bool
    checked: int
    first_broken_id: int | None = None
    problem: str | None = None


class AuditLog:
    """Appends and verifies audit entries.

    ``key`` keys the chain (see the module docstring); without one the chain is plain SHA-256,
    which shows accidental edits but not a forger who recomputes it.
    """

    # Another process appending at the same moment makes an append fail (the chain's unique
    # prev_hash, or SQLite's stale snapshot); it is tried again until this deadline. A count of 8
    # quick retries lost entries when two writers met on a loaded machine.
    RETRY_FOR_S = 5.0

    def __init__(self, db: Database, key: bytes | None = None) -> None:
        self.db = db
        self._key = key
        self._lock = asyncio.Lock()  # writers in this process queue here instead of colliding

    async def record(self, kind: str, **fields: Any) -> None:
        """Append one event; never raises into the caller's request (failures are logged)."""
        subject = fields.pop("subject", None)
        if isinstance(subject, Subject):
            fields.setdefault("user_id", subject.user_id)
            fields.setdefault("username", subject.username)
        values = {f: fields.get(f) for f in FIELDS if f != "kind"}
        extra = [f"{k}={v}" for k, v in fields.items() if k not in FIELDS and v is not None]
        if extra:  # e.g. the path of a denied request: kept, in the detail column
            values["detail"] = " ".join([*([str(values["detail"])] if values["detail"] else []), *extra])
        for k, v in list(values.items()):
            if v is not None and k != "user_id":
                values[k] = str(v)[: 4000 if k == "detail" else 64]
        error: BaseException | None = None
        async with self._lock:
            deadline = time.monotonic() + self.RETRY_FOR_S
            attempt = 0
            while True:
                attempt += 1
                try:
                    await self._append(kind, values)
                    return
                except (IntegrityError, OperationalError) as e:
                    error = e
                    if storage_failure(e) in ("full", "read-only", "io"):
                        break  # retrying cannot help; the request's own write fails the same way
                    # Another process appended first (unique prev_hash, or SQLite's stale snapshot).
                    if time.monotonic() >= deadline:
                        break
                    await asyncio.sleep(min(0.005 * attempt, 0.05) * (0.5 + random.random()))
                except Exception as e:  # the audit must not take the request down; it is loud in the logs
                    error = e
                    break
        if error is not None and storage_failure(error):
            log.error("audit write failed for %s: %s", kind, getattr(error, "orig", error))
        else:
            log.error("audit write failed for %s", kind, exc_info=error)

    async def _append(self, kind: str, values: dict[str, Any]) -> None:
        async with self.db.session() as s:
            last = (await s.execute(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1))).scalar()
            prev = last or GENESIS
            entry = AuditEntry(kind=kind[:32], prev_hash=prev, hash="", ts=utcnow(), **values)
            s.add(entry)
            await s.flush()
            entry.hash = _digest(self._key, prev, entry.canonical())

    async def verify(self) -> VerifyResult:
        """Walk the chain; report the first entry whose hash or link does not match."""
        prev = GENESIS
        n = 0
        async for e in self._iter():
            n += 1
            if e.prev_hash != prev:
                return VerifyResult(False, n, e.id, "link to the previous entry is broken (entry removed or inserted)")
            if _digest(self._key, prev, e.canonical()) != e.hash:
                return VerifyResult(False, n, e.id, "entry content does not match its hash (entry edited)")
            prev = e.hash
        return VerifyResult(True, n)

    async def _iter(self, since: dt.datetime | None = None, **filters: Any) -> AsyncIterator[AuditEntry]:
        last_id = 0
        while True:
            async with self.db.session() as s:
                q = select(AuditEntry).where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(2000)
                if since is not None:
                    q = q.where(AuditEntry.ts >= since)
                q = _filtered(q, **filters)
                rows = list((await s.execute(q)).scalars())
            if not rows:
                return
            for r in rows:
                yield r
            last_id = rows[-1].id

    async def query(
        self,
        *,
        kind: str | None = None,
        user_id: int | None = None,
        camera_id: str | None = None,
        incident_id: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Entries, newest first, filtered."""
        q = select(AuditEntry).order_by(AuditEntry.id.desc())
        if since:
            q = q.where(AuditEntry.ts >= since)
        q = _filtered(q, kind=kind, user_id=user_id, camera_id=camera_id, incident_id=incident_id, until=until)
        async with self.db.session() as s:
            return list((await s.execute(q.offset(offset).limit(limit))).scalars())

    async def export_csv(
        self,
        since: dt.datetime | None = None,
        *,
        kind: str | None = None,
        user_id: int | None = None,
        camera_id: str | None = None,
        incident_id: str | None = None,
        until: dt.datetime | None = None,
    ) -> str:
        """Entries since a time (and matching the filters of :meth:`query`) as CSV, oldest first."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["id", "ts", *FIELDS, "hash"])
        filters = {"kind": kind, "user_id": user_id, "camera_id": camera_id, "incident_id": incident_id}
        async for e in self._iter(since, until=until, **filters):
            d = e.as_dict()
            w.writerow([d["id"], d["ts"], *(_cell(d[f]) for f in FIELDS), d["hash"]])
        return buf.getvalue()
