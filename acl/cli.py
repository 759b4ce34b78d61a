"""``liandong audit ...`` and ``liandong policy ...``: the audit chain and policy administration.

Policy commands write through the same store as the admin API (one revision each, audited). Each
committed change is then announced through the notifier the caller gives (``gateway/cli.py``: on
Redis, in a cluster, as a node announces its own, so every node applies it at once); otherwise, or
when it cannot be told (a warning, the change stands), a running gateway notices the new revision
within a second.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from storage.db import run_with_database

if TYPE_CHECKING:
    from acl.audit import AuditLog
    from acl.policy import Applied, PolicyStore
    from storage.db import Database

__all__ = ["AclCli", "ClusterNotifier", "register", "warn_untold"]

T = TypeVar("T")
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file.", envvar="LIANDONG_CONFIG")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why: kept in the policy history.")]

# Announces a committed change (what, its revision or None) to running gateways; returns why that
# failed, or None. Never raises: the change is committed either way.
ClusterNotifier = Callable[[str, int | None], Awaitable[str | None]]


async def _nobody(what: str, revision: int | None) -> str | None:
    return None


@dataclass(frozen=True)
class AclCli:
    """What the audit and policy commands need of the configuration."""

    database_url: str
    data_dir: Path
    tell_cluster: ClusterNotifier = _nobody


CliFrom = Callable[[Path | None], AclCli]


def _with_db(cli: AclCli, job: Callable[[Database], Awaitable[T]]) -> T:
    return run_with_database(cli.database_url, job)


def _audit(cli: AclCli, db: Database) -> AuditLog:
    from acl.audit import AuditLog, audit_key
    from storage.secretbox import SecretBox

    return AuditLog(db, audit_key(SecretBox.from_data_dir(cli.data_dir)))


def _author() -> str:
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (KeyError, OSError):
        return "cli"


def warn_untold(why: str | None) -> None:
    """The warning for a change the other nodes were not told about."""
    if why is not None:
        typer.echo(
            f"warning: the change is committed, but the cluster's nodes could not be told ({why}); "
            "they apply it by their once-a-second revision check",
            err=True,
        )


def _since(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        start = dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("not an ISO date/time", param_hint="--since") from None
    return start.replace(tzinfo=dt.UTC) if start.tzinfo is None else start


def _change(cli: AclCli, what: str, job: Callable[[PolicyStore, str], Awaitable[Applied]]) -> None:
    """Run one policy change, audit it, print its revision; exit 2 with the message on bad input."""
    from acl.policy import PolicyError, PolicyStore

    author = _author()
    untold: list[str | None] = []

    async def run(db: Database) -> Applied:
        applied = await job(PolicyStore(db), author)
        if applied.revision:  # committed: the other nodes first, as the API does (the audit takes a while)
            untold.append(await cli.tell_cluster(what, applied.revision))
        await _audit(cli, db).record(
            "policy_change",
            username=author,
            action=what.split(" ", 1)[0],
            detail=f"revision {applied.revision}: {what}",
        )
        return applied

    try:
        applied = _with_db(cli, run)
    except PolicyError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    ids = applied.rule_ids
    typer.echo(f"{what} (revision {applied.revision}{', rule ' + str(ids[0]) if len(ids) == 1 else ''})")
    for why in untold:
        warn_untold(why)


def register(app: typer.Typer, cli_from: CliFrom) -> None:
    """Add the ``audit`` and ``policy`` command groups (``cli_from``: the configuration of ``--config``)."""
    audit = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
    policy = typer.Typer(
        help="Departments, memberships, groups and grants (the admin API does more).", no_args_is_help=True
    )
    app.add_typer(audit, name="audit")
    app.add_typer(policy, name="policy")
    _audit_commands(audit, cli_from)
    _organisation_commands(policy, cli_from)
    _rule_commands(policy, cli_from)
    _history_commands(policy, cli_from)


def _audit_commands(audit: typer.Typer, cli_from: CliFrom) -> None:
    @audit.command("verify")
    def verify(config: ConfigOpt = None) -> None:
        """Check the hash chain; names the first broken entry (exit code 1)."""
        cli = cli_from(config)
        res = _with_db(cli, lambda db: _audit(cli, db).verify())
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
        if fmt != "csv":
            raise typer.BadParameter("only csv is supported", param_hint="--format")
        start = _since(since)
        cli = cli_from(config)
        sys.stdout.write(_with_db(cli, lambda db: _audit(cli, db).export_csv(start)))


def _organisation_commands(policy: typer.Typer, cli_from: CliFrom) -> None:
    @policy.command("departments")
    def departments(config: ConfigOpt = None) -> None:
        """List the organisation: units, their level, parent and area."""
        from acl.policy import PolicyStore

        st = _with_db(cli_from(config), lambda db: PolicyStore(db).load())
        for d in sorted(st.departments.values(), key=lambda d: (d.level.value, d.id)):
            extra = "".join(f" {k}={v}" for k, v in (("parent", d.parent_id), ("area", d.area)) if v)
            typer.echo(f"{d.id}\t{d.level.value}\t{d.name}{extra}")

    @policy.command("department")
    def department(
        dept_id: Annotated[str, typer.Argument(help="Short id, e.g. police or qibao.")],
        name: Annotated[str, typer.Option(help="Display name.")],
        level: Annotated[str, typer.Option(help="district, subdistrict, station or department.")] = "department",
        parent: Annotated[str | None, typer.Option(help="Parent unit id.")] = None,
        area: Annotated[str | None, typer.Option(help="Sub-district it serves.")] = None,
        ptz_priority: Annotated[
            int | None, typer.Option(help="PTZ priority, 0-1000, higher wins (absent: the default).")
        ] = None,
        reason: ReasonOpt = "",
        config: ConfigOpt = None,
    ) -> None:
        """Create or change a department."""
        _change(
            cli_from(config),
            f"department {dept_id} saved",
            lambda p, a: p.put_department(a, dept_id, name, level, parent, area, reason, ptz_priority=ptz_priority),
        )

    @policy.command("member")
    def member(
        username: Annotated[str, typer.Argument()],
        dept_id: Annotated[str, typer.Argument()],
        role: Annotated[str, typer.Option(help="Role in the department.")] = "member",
        remove: Annotated[bool, typer.Option("--remove", help="Take the user out of the department.")] = False,
        reason: ReasonOpt = "",
        config: ConfigOpt = None,
    ) -> None:
        """Put a user in a department (or take them out with --remove)."""
        from sqlalchemy import select

        from acl.models import User
        from acl.policy import PolicyError

        async def job(p: PolicyStore, a: str) -> Applied:
            async with p.db.session() as s:
                uid = (await s.execute(select(User.id).where(User.username == username))).scalar()
            if uid is None:
                raise PolicyError(f"username: no user '{username}'")
            if remove:
                return await p.remove_membership(a, uid, dept_id, reason)
            return await p.set_membership(a, uid, dept_id, role, reason)

        what = f"membership of {username} in {dept_id} {'removed' if remove else 'set to ' + role}"
        _change(cli_from(config), what, job)

    @policy.command("group")
    def group(
        group_id: Annotated[str, typer.Argument()],
        name: Annotated[str, typer.Option()],
        area: Annotated[list[str] | None, typer.Option(help="Dynamic: cameras in this area (repeatable).")] = None,
        station: Annotated[
            list[str] | None, typer.Option(help="Dynamic: cameras of this neighbourhood station, 居村委 (repeatable).")
        ] = None,
        kind: Annotated[list[str] | None, typer.Option(help="Dynamic: fixed, bus or truck (repeatable).")] = None,
        tag: Annotated[list[str] | None, typer.Option(help="Dynamic: cameras with this tag (repeatable).")] = None,
        owner: Annotated[list[str] | None, typer.Option(help="Dynamic: owning department (repeatable).")] = None,
        camera: Annotated[list[str] | None, typer.Option(help="Static: a camera id (repeatable).")] = None,
        reason: ReasonOpt = "",
        config: ConfigOpt = None,
    ) -> None:
        """Create or replace a camera group: static (--camera) or dynamic (--area/--station/--kind/--tag/--owner)."""
        pairs = (("area", area), ("station", station), ("kind", kind), ("tag", tag), ("department", owner))
        flt = {k: v for k, v in pairs if v}
        _change(
            cli_from(config),
            f"group {group_id} saved",
            lambda p, a: p.put_group(
                a, group_id, name, cameras=camera if camera else None, filter_=flt or None, reason=reason
            ),
        )


def _rule_commands(policy: typer.Typer, cli_from: CliFrom) -> None:
    @policy.command("grant")
    def grant(
        subject: Annotated[str, typer.Argument(help="dept:<id>, role:<name> or *")],
        target: Annotated[str, typer.Argument(help="cam:<id> or group:<id>")],
        action: Annotated[str, typer.Argument(help="view_snapshot, view_live or manage")] = "view_live",
        deny: Annotated[bool, typer.Option("--deny", help="A deny rule instead of a grant.")] = False,
        until: Annotated[str | None, typer.Option(help="ISO time the rule stops applying.")] = None,
        reason: ReasonOpt = "",
        config: ConfigOpt = None,
    ) -> None:
        """Add a grant (or with --deny a deny rule)."""
        from acl.policy import RuleSpec

        not_after = None
        if until:
            try:
                not_after = dt.datetime.fromisoformat(until)
            except ValueError:
                raise typer.BadParameter("not an ISO date/time", param_hint="--until") from None
            not_after = not_after.replace(tzinfo=dt.UTC) if not_after.tzinfo is None else not_after
        spec = RuleSpec(subject, target, action, "deny" if deny else "allow", None, not_after)
        verb = "deny" if deny else "grant"
        _change(cli_from(config), f"{verb} {action} on {target} to {subject}", lambda p, a: p.add_rule(a, spec, reason))

    @policy.command("revoke")
    def revoke(
        rule_id: Annotated[int, typer.Argument(help="The rule's id (see `policy rules`).")],
        reason: ReasonOpt = "",
        config: ConfigOpt = None,
    ) -> None:
        """Remove a grant or deny rule."""
        _change(cli_from(config), f"rule {rule_id} removed", lambda p, a: p.remove_rule(a, rule_id, reason))

    @policy.command("rules")
    def rules(
        subject: Annotated[str | None, typer.Option(help="Only this subject, e.g. dept:police.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
        config: ConfigOpt = None,
    ) -> None:
        """List grant and deny rules."""
        from acl.decider import rule_dict
        from acl.policy import PolicyStore

        st = _with_db(cli_from(config), lambda db: PolicyStore(db).load())
        for r in sorted(st.rules, key=lambda r: r.rule_id or 0):
            if subject is not None and r.sub != subject:
                continue
            d = rule_dict(r)
            if as_json:
                typer.echo(json.dumps(d, ensure_ascii=False))
            else:
                window = f" until {d['not_after']}" if d["not_after"] else ""
                tag = f" [{d['tag']}]" if d["tag"] else ""
                typer.echo(f"{d['id']}\t{d['effect']}\t{d['subject']}\t{d['action']}\t{d['target']}{window}{tag}")


def _history_commands(policy: typer.Typer, cli_from: CliFrom) -> None:
    @policy.command("revisions")
    def revisions(
        limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
        config: ConfigOpt = None,
    ) -> None:
        """The policy history, newest first."""
        from acl.policy import PolicyStore

        revs = _with_db(cli_from(config), lambda db: PolicyStore(db).revisions(limit))
        for r in revs:
            n = len(r.diff.get("changes", []))
            typer.echo(f"{r.id}\t{r.created_at.isoformat(timespec='seconds')}\t{r.author}\t{n} change(s)\t{r.reason}")

    @policy.command("rollback")
    def rollback(
        revision: Annotated[int, typer.Argument(help="Return to how the policy was right after this revision.")],
        reason: ReasonOpt = "",
        config: ConfigOpt = None,
    ) -> None:
        """Undo every change after a revision (recorded as a new revision)."""
        _change(cli_from(config), f"rollback to revision {revision}", lambda p, a: p.rollback(revision, a, reason))
