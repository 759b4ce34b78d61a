"""Engine, sessions and schema migrations for the project database (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC that always comes back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base of every Liandong table."""

    metadata = MetaData(naming_convention=_NAMING)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def async_url(url: str) -> str:
    """Accept plain ``sqlite:///`` and ``postgresql://`` URLs and pick the async driver."""
    u = make_url(url)
    driver = {
        "sqlite": "sqlite+aiosqlite",
        "postgresql": "postgresql+psycopg",
        "postgres": "postgresql+psycopg",
    }
    return u.set(drivername=driver.get(u.drivername, u.drivername)).render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    """The synchronous driver URL matching an async one (alembic and Casbin run synchronously)."""
    u = make_url(url)
    driver = {"sqlite+aiosqlite": "sqlite", "postgresql+asyncpg": "postgresql+psycopg"}.get(u.drivername)
    if driver is None and u.drivername in ("postgresql", "postgres"):
        driver = "postgresql+psycopg"
    return u.set(drivername=driver or u.drivername).render_as_string(hide_password=False)


T = TypeVar("T")

# What SQLite and PostgreSQL say when the storage, not the request, is at fault.
_FAILURES = (
    ("full", ("database or disk is full", "no space left", "could not extend file", "disk quota exceeded")),
    ("read-only", ("readonly database", "read-only file system", "read-only transaction")),
    ("io", ("disk i/o error", "unable to open database file")),
    ("busy", ("database is locked", "database table is locked")),
)


def storage_failure(exc: BaseException) -> str | None:
    """``"full"``, ``"read-only"``, ``"io"`` or ``"busy"`` when a database error is the storage's
    fault (a full disk, a read-only data dir...), None for any other error."""
    msg = str(getattr(exc, "orig", None) or exc).lower()
    for kind, needles in _FAILURES:
        if any(n in msg for n in needles):
            return kind
    return None


def run_with_database(url: str, job: Callable[[Database], Awaitable[T]]) -> T:
    """For command-line tools: open the database, bring the schema up to date, run ``job``, close."""

    async def main() -> T:
        db = Database(url)
        try:
            await asyncio.to_thread(db.migrate)
            return await job(db)
        finally:
            await db.close()

    return asyncio.run(main())


class Database:
    """The project database: an async engine, a session factory and the migration entry point."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url = async_url(url)
        u = make_url(url)
        self.is_sqlite = u.get_backend_name() == "sqlite"
        if self.is_sqlite and u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: AsyncEngine = create_async_engine(url, echo=echo, pool_pre_ping=not self.is_sqlite)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        # A Session class of this database's own: session events (e.g. a table kept in step with
        # another in the same transaction) can be attached to one database, not to every Session.
        self.sync_session_class: type[Session] = type("DatabaseSession", (Session,), {})
        self.sessionmaker = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=self.sync_session_class
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on success, rolled back on any error."""
        async with self.sessionmaker() as s, s.begin():
            yield s

    def migrate(self) -> None:
        """Bring the schema to the newest alembic revision (synchronous; call before serving)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", sync_url(self.url).replace("%", "%%"))
        command.upgrade(cfg, "head")

    def sync_engine(self) -> Engine:
        """A new synchronous engine on the same database (for alembic checks and Casbin's adapter)."""
        from sqlalchemy import create_engine

        eng = create_engine(sync_url(self.url))
        if self.is_sqlite:
            event.listen(eng, "connect", _sqlite_pragmas)
        return eng

    async def close(self) -> None:
        """Dispose of every pooled connection."""
        await self.engine.dispose()
