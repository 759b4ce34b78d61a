"""Alembic environment: one schema history for every Liandong package."""

from __future__ import annotations

import importlib

from alembic import context
from sqlalchemy import engine_from_config, pool

from storage.db import Base

# Every module that declares tables; the migration history covers all of them.
MODEL_MODULES = (
    "camera_registry.models",
    "acl.models",
    "acl.policy_models",
    "acl.audit",
    "gateway.alarms.models",
    "snapshot.models",
    "recording.models",
    "camera_registry.ptz_endpoints",
)
for name in MODEL_MODULES:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        if not (e.name and name.startswith(e.name)):
            raise

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    """Emit SQL for the configured URL without connecting."""
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate through a live connection (batch mode so SQLite can alter tables)."""
    engine = engine_from_config(
        config.get_section(config.config_ini_section) or {}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
