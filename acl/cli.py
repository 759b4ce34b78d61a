"""``liandong audit ...`` and ``liandong policy ...``: the audit chain and policy administration."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from storage.db import run_with_database

if TYPE_CHECKING:
    from gateway.settings import Settings
    from storage.db import Database

__all__ = ["register"]

T = TypeVar("T")
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file.", envvar="LIANDONG_CONFIG")]


def _with_db(settings: Settings, job: Callable[[Database], Awaitable[T]]) -> T:
    return run_with_database(settings.database_url, job)


def register(app: typer.Typer, settings_from: Callable[[Path | None], Settings]) -> None:
    """Add the ``audit`` and ``policy`` command groups."""
    audit = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
    policy = typer.Typer(help="Departments, memberships and grants (the admin API does more).", no_args_is_help=True)
    app.add_typer(audit, name="audit")
    app.add_typer(policy, name="policy")

    @audit.command("verify")
    def verify(config: ConfigOpt = None) -> None:
        """Check the hash chain; names the first broken entry (exit code 1)."""
        from acl.audit import AuditLog

        res = _with_db(settings_from(config), lambda db: AuditLog(db).verify())
        if res.ok:
            typer.echo(f"audit chain intact: {res.checked} entries")
            return
        typer.echo(f"audit chain BROKEN: first broken entry id={res.first_broken_id}: {res.problem}")
        raise typer.Exit(1)

    @audit.command("export")
    def export(
        since: Annotated[str | None, typer.Option(help="ISO date or time, e.g. 2026-11-01.")] = None,
        fmt: Annotated[str, typer.Option("--format", help="csv")] = "csv",
        config: ConfigOpt = None,
    ) -> None:
        """Write audit entries since a time to stdout."""
        from acl.audit import AuditLog

        if fmt != "csv":
            raise typer.BadParameter("only csv is supported", param_hint="--format")
        start = None
        if since:
            try:
                start = dt.datetime.fromisoformat(since)
            except ValueError:
                raise typer.BadParameter("not an ISO date/time", param_hint="--since") from None
            if start.tzinfo is None:
                start = start.replace(tzinfo=dt.UTC)
        sys.stdout.write(_with_db(settings_from(config), lambda db: AuditLog(db).export_csv(start)))

    @policy.command("department")
    def department(
        dept_id: Annotated[str, typer.Argument(help="Short id, e.g. police or qibao.")],
        name: Annotated[str, typer.Option(help="Display name.")],
        level: Annotated[str, typer.Option(help="district, subdistrict, station or department.")] = "department",
        parent: Annotated[str | None, typer.Option(help="Parent unit id.")] = None,
        area: Annotated[str | None, typer.Option(help="Sub-district it serves.")] = None,
        config: ConfigOpt = None,
    ) -> None:
        """Create or change a department."""
        from acl.policy import PolicyError, PolicyStore

        try:
            rev = _with_db(
                settings_from(config),
                lambda db: PolicyStore(db).put_department("cli", dept_id, name, level, parent, area),
            )
        except PolicyError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"department {dept_id} saved (revision {rev})")

    @policy.command("member")
    def member(
        username: Annotated[str, typer.Argument()],
        dept_id: Annotated[str, typer.Argument()],
        role: Annotated[str, typer.Option(help="Role in the department.")] = "member",
        config: ConfigOpt = None,
    ) -> None:
        """Put a user in a department."""
        from sqlalchemy import select

        from acl.models import User
        from acl.policy import PolicyError, PolicyStore

        async def job(db: Database) -> int:
            async with db.session() as s:
                uid = (await s.execute(select(User.id).where(User.username == username))).scalar()
            if uid is None:
                raise PolicyError(f"username: no user '{username}'")
            return await PolicyStore(db).set_membership("cli", uid, dept_id, role)

        try:
            rev = _with_db(settings_from(config), job)
        except PolicyError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"{username} is in {dept_id} (revision {rev})")

    @policy.command("group")
    def group(
        group_id: Annotated[str, typer.Argument()],
        name: Annotated[str, typer.Option()],
        area: Annotated[list[str] | None, typer.Option(help="Dynamic: cameras in this area (repeatable).")] = None,
        kind: Annotated[list[str] | None, typer.Option(help="Dynamic: fixed, bus or truck (repeatable).")] = None,
        camera: Annotated[list[str] | None, typer.Option(help="Static: a camera id (repeatable).")] = None,
        config: ConfigOpt = None,
    ) -> None:
        """Create or replace a camera group."""
        from acl.policy import PolicyError, PolicyStore

        flt = {k: v for k, v in (("area", area), ("kind", kind)) if v}
        try:
            rev = _with_db(
                settings_from(config),
                lambda db: PolicyStore(db).put_group(
                    "cli", group_id, name, cameras=camera if camera else None, filter_=flt or None
                ),
            )
        except PolicyError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"group {group_id} saved (revision {rev})")

    @policy.command("grant")
    def grant(
        subject: Annotated[str, typer.Argument(help="dept:<id>, role:<name> or *")],
        target: Annotated[str, typer.Argument(help="cam:<id> or group:<id>")],
        action: Annotated[str, typer.Argument(help="view_snapshot, view_live or manage")] = "view_live",
        deny: Annotated[bool, typer.Option("--deny", help="A deny rule instead of a grant.")] = False,
        config: ConfigOpt = None,
    ) -> None:
        """Add a grant (or with --deny a deny rule)."""
        from acl.policy import PolicyError, PolicyStore, RuleSpec

        spec = RuleSpec(subject, target, action, "deny" if deny else "allow")
        try:
            rid, rev = _with_db(settings_from(config), lambda db: PolicyStore(db).add_rule("cli", spec))
        except PolicyError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"rule {rid} added (revision {rev})")
