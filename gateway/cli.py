"""The ``liandong`` command line."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer

from acl import cli as acl_cli
from acl.cli import AclCli, warn_untold
from camera_registry import cli as camera_cli
from camera_registry.cli import CameraCli
from gateway.alarms import cli as alarm_cli
from gateway.settings import Settings, SettingsError, load_settings
from recording import cli as evidence_cli
from recording.cli import EvidenceCli

app = typer.Typer(
    help="Liandong (联动): video-surveillance gateway and permissioned stream proxy.", no_args_is_help=True
)
users_app = typer.Typer(help="Users and their roles.", no_args_is_help=True)
app.add_typer(users_app, name="users")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file.", envvar="LIANDONG_CONFIG")]


def settings_from(config: Path | None, **overrides: object) -> Settings:
    """Load settings (``overrides`` from command-line options) or exit with a readable error."""
    try:
        return load_settings(config, **overrides)
    except (SettingsError, ValueError) as e:
        typer.echo(f"error: invalid settings: {e}", err=True)
        raise typer.Exit(2) from None


def acl_cli_from(config: Path | None) -> AclCli:
    """What ``liandong audit|policy ...`` need: the database, the data dir, and the cluster to tell."""
    from functools import partial

    # Loaded now (it pulls in the cluster package), not between a commit and its announcement.
    from gateway.cluster.announce import tell_cluster

    settings = settings_from(config)
    return AclCli(settings.database_url, settings.data_dir, partial(tell_cluster, settings))


def camera_cli_from(config: Path | None) -> CameraCli:
    """What ``liandong cameras ...`` need: the database, the data dir, the allowed camera networks."""
    settings = settings_from(config)
    return CameraCli(settings.database_url, settings.data_dir, list(settings.cameras.allowed_networks))


def evidence_cli_from(config: Path | None) -> EvidenceCli:
    """What ``liandong evidence ...`` need: the database, the recordings directory, the keys."""
    settings = settings_from(config)
    return EvidenceCli(settings.database_url, settings.recording.root(settings.data_dir), settings.data_dir / "keys")


def _register_subcommands() -> None:
    # Each package owns its commands; they plug in here with what they need of the configuration.
    acl_cli.register(app, acl_cli_from)
    from gateway.ptz.cli import onvif_importer, register_discover

    cams = camera_cli.register(app, camera_cli_from, onvif=onvif_importer)
    register_discover(cams, camera_cli_from, lambda config: settings_from(config).ptz)
    alarm_cli.register(app, settings_from)
    evidence_cli.register(app, evidence_cli_from)


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Listen address (default from settings: 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default from settings: 8000).")] = None,
    ssl_certfile: Annotated[Path | None, typer.Option(help="PEM certificate for HTTPS (with --ssl-keyfile).")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="PEM private key of --ssl-certfile.")] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Listen beyond loopback without TLS anyway (logins in clear).")
    ] = False,
) -> None:
    """Run the gateway HTTP server (HTTPS with --ssl-certfile/--ssl-keyfile; beyond loopback only with TLS)."""
    import uvicorn

    from gateway.logs import configure_logging
    from gateway.server import uvicorn_options
    from gateway.wiring import create_app

    given = {"host": host, "port": port, "ssl_certfile": ssl_certfile, "ssl_keyfile": ssl_keyfile}
    server = {k: v for k, v in given.items() if v is not None} | ({"insecure": True} if insecure else {})
    settings = settings_from(config, **({"server": server} if server else {}))
    configure_logging(settings.log.level, settings.log.format)
    _check_exposure(settings)
    _check_data_dir(settings.data_dir)
    app_ = create_app(settings)
    srv = settings.server
    uvicorn.run(
        app_,
        host=srv.host,
        port=srv.port,
        **uvicorn_options(srv),
        ssl_certfile=str(srv.ssl_certfile) if srv.ssl_certfile else None,
        ssl_keyfile=str(srv.ssl_keyfile) if srv.ssl_keyfile else None,
    )


def _check_exposure(settings: Settings) -> None:
    """Refuse plain HTTP beyond loopback (unless --insecure, then warn loudly); mark the data dir as
    serve's, so the demo never seeds its public passwords into it (and warn if the demo did)."""
    import logging

    from gateway.datadir import mark, used_by
    from gateway.listen import ListenRefused, check_listen

    s = settings.server
    try:
        warning = check_listen(s.host, tls=s.tls, insecure=s.insecure)
    except ListenRefused as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if warning:
        typer.echo(f"\n{'!' * 72}\n{warning}\n{'!' * 72}\n", err=True)
        logging.getLogger("gateway.serve").warning(warning)
    if used_by(settings.data_dir) == "demo":
        typer.echo(
            f"WARNING: data dir {settings.data_dir} was seeded by the demo: its users have public passwords "
            "(admin / liandong-admin ...). Change them or start from an empty data dir.",
            err=True,
        )
    try:
        mark(settings.data_dir, "serve")
    except OSError:
        pass  # a read-only data dir is reported by _check_data_dir


def _check_data_dir(path: Path) -> None:
    """Exit with a readable error when the data dir cannot be written (read-only, no permission)."""
    import errno
    import tempfile

    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        why = "is read-only" if e.errno == errno.EROFS else f"cannot be written ({e.strerror})"
        if e.errno == errno.ENOSPC:
            why = "has no space left"
        typer.echo(f"error: data dir {path.resolve()} {why}; the gateway needs to write its database there", err=True)
        raise typer.Exit(2) from None


@app.command("migrate")
def migrate(config: ConfigOpt = None) -> None:
    """Create or upgrade the database schema."""
    from storage.db import Database

    settings = settings_from(config)
    db = Database(settings.database_url)
    db.migrate()
    asyncio.run(db.close())
    typer.echo("database is at the newest schema")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="operator, security_admin, auditor or admin.")] = "operator",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
    display_name: Annotated[str, typer.Option(help="Shown in the console.")] = "",
    update: Annotated[bool, typer.Option("--update", help="Change the password/role if the user exists.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Create a user (the password is hashed with argon2)."""
    from acl.models import Role
    from acl.users import UserError, create_user

    settings = settings_from(config)
    try:
        role_ = Role(role)
    except ValueError:
        typer.echo(f"error: role: must be one of {', '.join(r.value for r in Role)}", err=True)
        raise typer.Exit(2) from None
    if not password_stdin:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        outcome = asyncio.run(
            create_user(settings.database_url, name, password, role_, display_name=display_name, update=update)
        )
    except UserError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"user {name} {outcome} (role {role_.value})")
    # A user's role is part of the policy: the nodes reload it now (a node has no revision to check for it).
    from gateway.cluster.announce import tell_cluster

    warn_untold(asyncio.run(tell_cluster(settings, f"user {name} {outcome} ({role_.value})", None)))


_register_subcommands()


def main() -> None:
    """Entry point."""
    app()


if __name__ == "__main__":
    main()
