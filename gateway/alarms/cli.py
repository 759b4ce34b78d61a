"""``liandong alarm-sources ...``: register alarm sources and rotate their secrets;
``liandong notify seal``: seal a notification credential for the settings file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from gateway.settings import Settings

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file.", envvar="LIANDONG_CONFIG")]


def register(app: typer.Typer, settings_from: Callable[[Path | None], Settings]) -> None:
    """Add the ``alarm-sources`` and ``notify`` command groups."""
    notify = typer.Typer(help="Case notifications (webhook, SMS gateway).", no_args_is_help=True)
    app.add_typer(notify, name="notify")

    @notify.command("seal")
    def seal(config: ConfigOpt = None) -> None:
        """Read a secret (the webhook's HMAC secret, the SMS gateway's password) from standard input
        and print it sealed with the data dir's key, for ``alarms.notify.*_sealed``."""
        import sys

        from storage.secretbox import SecretBox

        secret = sys.stdin.readline().rstrip("\n")
        if not secret:
            typer.echo("error: give the secret on standard input", err=True)
            raise typer.Exit(2)
        typer.echo(SecretBox.from_data_dir(settings_from(config).data_dir).encrypt(secret))

    grp = typer.Typer(help="Systems allowed to post alarms (HMAC-signed).", no_args_is_help=True)
    app.add_typer(grp, name="alarm-sources")

    def run(settings: Settings, action: str, name: str) -> str:
        from gateway.alarms.hmac_auth import SourceRegistry
        from storage.db import Database, run_with_database
        from storage.secretbox import SecretBox

        box = SecretBox.from_data_dir(settings.data_dir)

        async def job(db: Database) -> str:
            reg = SourceRegistry(db, box, settings.alarms.signature_window_s)
            if action == "add":
                return await reg.add(name)
            if action == "rotate":
                return await reg.rotate(name)
            if action in ("enable", "disable"):
                await reg.set_active(name, action == "enable")
                return f"source {name} {action}d"
            return "\n".join(f"{s['name']}\t{'active' if s['active'] else 'inactive'}" for s in await reg.list())

        return run_with_database(settings.database_url, job)

    def fail(e: Exception) -> typer.Exit:
        typer.echo(f"error: {str(e).strip(chr(39))}", err=True)
        return typer.Exit(2)

    @grp.command("add")
    def add(name: Annotated[str, typer.Argument(help="Source name, e.g. bus-gps.")], config: ConfigOpt = None) -> None:
        """Register a source and print its secret (shown once)."""
        from gateway.alarms.hmac_auth import SourceError

        try:
            secret = run(settings_from(config), "add", name)
        except SourceError as e:
            raise fail(e) from None
        typer.echo(f"source {name} registered; secret (shown once, store it in the sending system):\n{secret}")

    @grp.command("rotate")
    def rotate(name: Annotated[str, typer.Argument()], config: ConfigOpt = None) -> None:
        """Give a source a new secret (printed once); the old one stops working."""
        try:
            secret = run(settings_from(config), "rotate", name)
        except LookupError as e:
            raise fail(e) from None
        typer.echo(f"new secret for {name} (shown once):\n{secret}")

    @grp.command("disable")
    def disable(name: Annotated[str, typer.Argument()], config: ConfigOpt = None) -> None:
        """Refuse a source's alarms from now on (its secret is kept; ``enable`` undoes it)."""
        try:
            typer.echo(run(settings_from(config), "disable", name))
        except LookupError as e:
            raise fail(e) from None

    @grp.command("enable")
    def enable(name: Annotated[str, typer.Argument()], config: ConfigOpt = None) -> None:
        """Accept a disabled source's alarms again."""
        try:
            typer.echo(run(settings_from(config), "enable", name))
        except LookupError as e:
            raise fail(e) from None

    @grp.command("list")
    def list_(config: ConfigOpt = None) -> None:
        """Registered sources."""
        typer.echo(run(settings_from(config), "list", ""))
