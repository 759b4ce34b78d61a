"""``liandong cameras ...``: import, export and probe the inventory."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from camera_registry.inventory import (
    ImportReport,
    InventoryError,
    detect_format,
    export_cameras,
    import_cameras,
    import_vehicles,
    parse_records,
)

if TYPE_CHECKING:
    from camera_registry.store import CameraStore
    from gateway.settings import Settings

__all__ = ["register"]

T = TypeVar("T")
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file.", envvar="LIANDONG_CONFIG")]


def _run(settings: Settings, job: Callable[[CameraStore], Awaitable[T]]) -> T:
    """Migrate, open the store, run ``job``, close."""
    from camera_registry.store import CameraStore
    from storage.db import run_with_database
    from storage.secretbox import SecretBox

    box = SecretBox.from_data_dir(settings.data_dir)
    return run_with_database(settings.database_url, lambda db: job(CameraStore(db, box)))


def _parse_subs(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        key, sep, val = v.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {v!r}", param_hint="--substitute")
        out[key] = val
    return out


def _print_report(console: Console, report: ImportReport, what: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report.summary(), ensure_ascii=False))
        return
    t = Table(title=f"{what} import", show_header=True)
    for col in ("created", "updated", "unchanged", "rejected"):
        t.add_column(col, justify="right")
    t.add_row(*(str(report.count(c)) for c in ("created", "updated", "unchanged", "rejected")))
    console.print(t)
    for r in report.rejected:
        console.print(f"  row {r.row} ({r.id or '?'}): {r.reason}", markup=False)
    if not report.written:
        console.print("nothing was written (--strict and some rows were rejected)", style="bold red")


def register(app: typer.Typer, settings_from: Callable[[Path | None], Settings]) -> None:
    """Add the ``cameras`` command group to the CLI."""
    cams = typer.Typer(help="The camera inventory: import, export, probe.", no_args_is_help=True)
    app.add_typer(cams, name="cameras")

    @cams.command("import")
    def import_(
        file: Annotated[Path, typer.Argument(help="CSV or JSON inventory (UTF-8).", exists=True, dir_okay=False)],
        strict: Annotated[bool, typer.Option("--strict", help="Write nothing if any row is bad.")] = False,
        vehicles: Annotated[
            Path | None, typer.Option("--vehicles", help="Vehicles file (JSON/CSV), imported first.", exists=True)
        ] = None,
        substitute: Annotated[
            list[str] | None, typer.Option("--substitute", "-s", help="Fill {KEY} in source URLs: KEY=VALUE.")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
        config: ConfigOpt = None,
    ) -> None:
        """Upsert cameras by id from the telecom's inventory and print a report."""
        settings = settings_from(config)
        subs = _parse_subs(substitute or [])
        console = Console(stderr=as_json)
        try:
            data = file.read_bytes()
            records = parse_records(data, detect_format(file.name, data))
            vrecords = None
            if vehicles is not None:
                vdata = vehicles.read_bytes()
                vrecords = parse_records(vdata, detect_format(vehicles.name, vdata))
        except InventoryError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None

        async def job(store: CameraStore) -> tuple[ImportReport | None, ImportReport]:
            vrep = await import_vehicles(store, vrecords, strict=strict) if vrecords is not None else None
            if vrep is not None and strict and not vrep.written:
                return vrep, ImportReport()
            with Progress(
                TextColumn("importing"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
                disable=len(records) < 500,
            ) as bar:
                task = bar.add_task("cameras", total=len(records))
                rep = await import_cameras(
                    store,
                    records,
                    strict=strict,
                    substitutions=subs,
                    progress=lambda n: bar.advance(task, n),
                )
            return vrep, rep

        vrep, rep = _run(settings, job)
        if vrep is not None:
            _print_report(console, vrep, "vehicle", as_json)
        _print_report(console, rep, "camera", as_json)
        bad = rep.count("rejected") + (vrep.count("rejected") if vrep else 0)
        raise typer.Exit(1 if bad else 0)

    @cams.command("export")
    def export(
        fmt: Annotated[str, typer.Option("--format", "-f", help="json or csv.")] = "json",
        output: Annotated[Path | None, typer.Option("--output", "-o", help="File (default: stdout).")] = None,
        with_credentials: Annotated[
            bool, typer.Option("--with-credentials", help="Include RTSP user:password in URLs.")
        ] = False,
        config: ConfigOpt = None,
    ) -> None:
        """Write the inventory in the import format (no credentials unless asked)."""
        if fmt not in ("json", "csv"):
            raise typer.BadParameter("must be json or csv", param_hint="--format")
        settings = settings_from(config)
        text = _run(settings, lambda store: export_cameras(store, fmt, with_credentials_=with_credentials))  # type: ignore[arg-type]
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8")
            if with_credentials:
                output.chmod(0o600)
            typer.echo(f"wrote {output}", err=True)

    @cams.command("probe")
    def probe(
        ids: Annotated[list[str] | None, typer.Argument(help="Camera ids (or --all).")] = None,
        all_: Annotated[bool, typer.Option("--all", help="Probe every camera.")] = False,
        concurrency: Annotated[int, typer.Option(min=1, max=64, help="Cameras probed at once.")] = 4,
        timeout: Annotated[float, typer.Option(min=0.5, max=60, help="Seconds per camera.")] = 5.0,
        as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
        config: ConfigOpt = None,
    ) -> None:
        """Check each camera's source and record codec, resolution and status."""
        from camera_registry.probe import ProbeResult, probe_cameras
        from camera_registry.store import NotFound

        if not ids and not all_:
            raise typer.BadParameter("give camera ids or --all")
        settings = settings_from(config)
        console = Console(stderr=as_json)

        async def job(store: CameraStore) -> list[ProbeResult]:
            targets = await store.all_ids() if all_ else list(dict.fromkeys(ids or []))
            for cid in targets:
                try:
                    await store.get(cid)
                except NotFound as e:
                    raise typer.BadParameter(str(e)) from None
            with Progress(
                TextColumn("probing"), BarColumn(), MofNCompleteColumn(), console=console, transient=True
            ) as bar:
                task = bar.add_task("probe", total=len(targets))
                return await probe_cameras(
                    store,
                    targets,
                    concurrency=concurrency,
                    timeout_s=timeout,
                    on_result=lambda _r: bar.advance(task),
                )

        results = _run(settings, job)
        if as_json:
            typer.echo(json.dumps([_result_dict(r) for r in results], ensure_ascii=False))
        else:
            t = Table(title="probe")
            for col in ("camera", "status", "codec", "size", "fps", "reason"):
                t.add_column(col)
            for r in results:
                size = f"{r.width}x{r.height}" if r.width else ""
                t.add_row(r.camera_id, r.status.value, r.codec or "", size, str(r.fps or ""), r.reason or "")
            console.print(t)
        online = sum(1 for r in results if r.status.value == "online")
        console.print(f"{online} online, {len(results) - online} not online, of {len(results)}")


def _result_dict(r: Any) -> dict[str, Any]:
    return {
        "camera_id": r.camera_id,
        "status": r.status.value,
        "reason": r.reason,
        "codec": r.codec,
        "width": r.width,
        "height": r.height,
        "fps": r.fps,
        "elapsed_s": round(r.elapsed_s, 3),
    }
