"""``liandong evidence verify``: is a clip what the gateway exported, is a camera's chain of segments whole."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["EvidenceCli", "register"]

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file.", envvar="LIANDONG_CONFIG")]


@dataclass(frozen=True, slots=True)
class EvidenceCli:
    """What the commands need of the configuration: the database, the recordings and the keys."""

    database_url: str
    recordings: Path
    keys_dir: Path


def register(app: typer.Typer, cli_from: Callable[[Path | None], EvidenceCli]) -> None:
    """Add the ``evidence`` command group."""
    grp = typer.Typer(help="Recorded evidence: verify exports and the recordings' hash chains.", no_args_is_help=True)
    app.add_typer(grp, name="evidence")

    @grp.command("verify")
    def verify(
        clip: Annotated[Path | None, typer.Argument(help="An exported clip (export.mp4).")] = None,
        manifest: Annotated[Path | None, typer.Argument(help="Its manifest (export.json).")] = None,
        camera: Annotated[str | None, typer.Option(help="Check this camera's chain of segments instead.")] = None,
        since: Annotated[str | None, typer.Option(help="With --camera: from this ISO 8601 time on.")] = None,
        key: Annotated[
            str | None, typer.Option(help="Trust this public key (base64) instead of the gateway's own.")
        ] = None,
        config: ConfigOpt = None,
    ) -> None:
        """Exit 0 when the clip is what the gateway recorded (or the chain is whole), 1 naming what differs."""
        from recording.verify import verify_clip

        if camera is not None:
            problems, count = _chain(cli_from(config), camera, since)
            for p in problems:
                typer.echo(p)
            if problems:
                raise typer.Exit(1)
            typer.echo(f"camera {camera}: {count} segment(s), chain whole, every file matches its hash")
            return
        if clip is None or manifest is None:
            typer.echo("error: give CLIP and MANIFEST, or --camera", err=True)
            raise typer.Exit(2)
        try:
            doc = json.loads(manifest.read_text())
        except (OSError, ValueError) as e:
            typer.echo(f"manifest: unreadable ({e})")
            raise typer.Exit(1) from None
        trusted = key
        if trusted is None:
            own = _own_key(cli_from, config)
            trusted = own
        problems = verify_clip(clip, doc, trusted)
        for p in problems:
            typer.echo(p)
        if problems:
            raise typer.Exit(1)
        typer.echo(f"ok: {clip.name} is the clip of camera {doc.get('camera_id')} {doc['clip']['start']} .. "
                   f"{doc['clip']['end']} exported by {doc.get('exported_by')}")  # fmt: skip


def _own_key(cli_from: Callable[[Path | None], EvidenceCli], config: Path | None) -> str | None:
    """The gateway's public key when its data dir is here (else the manifest's own key is checked)."""
    from recording.signing import KEY_FILE, EvidenceKey

    try:
        cli = cli_from(config)
    except typer.Exit:
        return None
    if not (cli.keys_dir / KEY_FILE).exists():
        return None
    return EvidenceKey(cli.keys_dir).public_b64()


def _chain(cli: EvidenceCli, camera: str, since: str | None) -> tuple[list[str], int]:
    from recording.index import RecordingIndex
    from recording.verify import verify_chain
    from storage.db import Database, run_with_database
    from storage.times import parse_zoned

    t = parse_zoned(since).timestamp() if since else 0.0

    async def job(db: Database) -> tuple[list[str], int]:
        rows = await RecordingIndex(db, cli.recordings, "").chain(camera, t)
        return verify_chain(rows, cli.recordings), len(rows)

    return run_with_database(cli.database_url, job)
