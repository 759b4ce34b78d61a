"""The alembic history creates exactly the schema the models declare, and upgrades are repeatable."""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from storage.db import Base, Database


def _load_models() -> None:
    env = (Path(__file__).resolve().parents[2] / "storage" / "migrations" / "env.py").read_text()
    start = env.index("MODEL_MODULES = (")
    names = env[start : env.index(")", start)].split("(", 1)[1]
    for name in [n.strip().strip('"') for n in names.split(",") if n.strip()]:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if not (e.name and name.startswith(e.name)):
                raise


def test_migrations_match_models(tmp_path: Path) -> None:
    _load_models()
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    db.migrate()
    db.migrate()  # idempotent
    eng = db.sync_engine()
    with eng.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
        tables = set(inspect(conn).get_table_names())
    eng.dispose()
    assert diff == [], f"models and migrations differ; run scripts/new_migration.py: {diff}"
    assert {"cameras", "vehicles", "users", "api_tokens", "alembic_version"} <= tables
