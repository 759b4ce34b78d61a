"""``liandong alarm-sources ...``: register alarm sources and rotate their secrets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from gateway.settings import Settings

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file.", envvar="LIANDONG_CONFIG")]


def register(app: typer.Typer, settings_from: Callable[[Path | None], Settings]) -> None:
    """Add the ``alarm-sources`` command group."""
    grp = typer.Typer(help="Systems allowed to post alarms (HMAC-signed).", no_args_is_help=True)
    app.add_typer(grp, name="alarm-sources")

    def run(settings: Settings, action: str, name: str) -> str:
        from gateway.alarms.service import AlarmService
        from storage.db import Database, run_with_database
        from storage.secretbox import SecretBox

        box = SecretBox.from_data_dir(settings.data_dir)

        async def job(db: Database) -> str:
            svc = AlarmService(settings.alarms, db, box, None)
            if action == "add":
                return await svc.add_source(name)
            if action == "rotate":
                return await svc.rotate_source(name)
            return "\n".join(f"{s['name']}\t{'active' if s['active'] else 'inactive'}" for s in await svc.sources())

        return run_with_database(settings.database_url, job)

    @grp.command("add")
    def add(name: Annotated[str, typer.Argument(help="Source name, e.g. bus-gps.")], config: ConfigOpt = None) -> None:
        """Register a source and print its secret (shown once)."""
        from gateway.alarms.service import AlarmError

        try:
            secret = run(settings_from(config), "add", name)
        except AlarmError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"source {name} registered; secret (shown once, store it in the sending system):\n{secret}")

    @grp.command("rotate")
    def rotate(name: Annotated[str, typer.Argument()], config: ConfigOpt = None) -> None:
        """Give a source a new secret (printed once); the old one stops working."""
        from gateway.alarms.service import AlarmError

        try:
            secret = run(settings_from(config), "rotate", name)
        except AlarmError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"new secret for {name} (shown once):\n{secret}")

    @grp.command("list")
    def list_(config: ConfigOpt = None) -> None:
        """Registered sources."""
        typer.echo(run(settings_from(config), "list", ""))
