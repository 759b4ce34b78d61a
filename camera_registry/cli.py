"""``liandong cameras ...``: import, export and probe the inventory."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from camera_registry.inventory import (
    ImportReport,
    InventoryError,
    InventoryReport,
    detect_format,
    export_cameras,
    export_vehicles,
    import_inventory,
    parse_records,
)

if TYPE_CHECKING:
    from camera_registry.probe import ProbeResult
    from camera_registry.store import CameraStore

__all__ = ["CameraCli", "OnvifImporter", "OnvifRequest", "register"]

T = TypeVar("T")
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file.", envvar="LIANDONG_CONFIG")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the report as one JSON line (tables go to stderr).")]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Write nothing at all if any row is rejected.")]
PROGRESS_MIN_ROWS = 500  # smaller files finish before a bar is worth drawing


@dataclass(frozen=True, slots=True)
class CameraCli:
    """What the camera commands need of the configuration."""

    database_url: str
    data_dir: Path
    allowed_networks: list[str]


def _run(settings: CameraCli, job: Callable[[CameraStore], Awaitable[T]]) -> T:
    """Migrate, open the store, run ``job``, close."""
    from camera_registry.egress import CameraNetworks
    from camera_registry.store import CameraStore
    from storage.db import run_with_database
    from storage.secretbox import SecretBox

    box = SecretBox.from_data_dir(settings.data_dir)
    networks = CameraNetworks(settings.allowed_networks)
    return run_with_database(settings.database_url, lambda db: job(CameraStore(db, box, networks)))


def _parse_subs(values: list[str], port: int | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        key, sep, val = v.partition("=")
        if not sep or not key.isidentifier():
            raise typer.BadParameter(f"expected KEY=VALUE, got {v!r}", param_hint="--substitute")
        out[key] = val
    if port is not None:
        out["port"] = str(port)
    return out


def _read(path: Path, key: str) -> list[Any]:
    """Records of an inventory file; a file that cannot be read at all exits with code 2."""
    try:
        data = path.read_bytes()
        return parse_records(data, detect_format(path.name, data), key=key)
    except InventoryError as e:
        typer.echo(f"error: {path.name}: {e}", err=True)
        raise typer.Exit(2) from None
    except OSError as e:
        typer.echo(f"error: {path.name}: cannot read ({e.strerror})", err=True)
        raise typer.Exit(2) from None


def _print_report(console: Console, report: ImportReport, what: str) -> None:
    t = Table(title=f"{what} import", show_header=True)
    cols = ("created", "updated", "unchanged", "rejected") + (("not_written",) if not report.written else ())
    for col in cols:
        t.add_column(col.replace("_", " "), justify="right")
    t.add_row(*(str(report.count(c)) for c in cols))
    console.print(t)
    for r in report.rejected:
        console.print(f"  row {r.row} ({r.id or '?'}): {r.reason}", markup=False, highlight=False)
    if not report.written:
        console.print("nothing was written (--strict and some rows were rejected)", style="bold red")


def _finish(console: Console, rep: InventoryReport, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(rep.summary(), ensure_ascii=False))
    else:
        if rep.vehicles is not None:
            _print_report(console, rep.vehicles, "vehicle")
        if rep.cameras.rows or rep.vehicles is None:
            _print_report(console, rep.cameras, "camera")
    raise typer.Exit(1 if rep.rejected_count() else 0)


def _bar(label: str, *, disable: bool = False) -> Progress:
    """A transient progress bar on stderr (stdout stays for reports and exports)."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=disable,
    )


SettingsFrom = Callable[[Path | None], CameraCli]


@dataclass(frozen=True, slots=True)
class OnvifRequest:
    """``cameras import --onvif``: which device, signed in as whom, imported as what."""

    url: str
    username: str
    password: str
    camera_id: str | None
    area: str


# Reads an ONVIF device and imports it (the gateway provides it: this package speaks no ONVIF);
# returns the import's report and a JSON-ready summary of what the device offered.
OnvifImporter = Callable[[CameraCli, OnvifRequest], tuple[InventoryReport, dict[str, Any]]]


def register(app: typer.Typer, settings_from: SettingsFrom, onvif: OnvifImporter | None = None) -> typer.Typer:
    """Add the ``cameras`` command group to the CLI (``import --onvif`` when ``onvif`` is given);
    the group, for commands other packages add."""
    cams = typer.Typer(help="The camera inventory: import, export, probe.", no_args_is_help=True)
    app.add_typer(cams, name="cameras")
    _add_import(cams, settings_from, onvif)
    for add in (_add_import_vehicles, _add_export, _add_probe):
        add(cams, settings_from)
    return cams


def _import_onvif(settings: CameraCli, onvif: OnvifImporter | None, req: OnvifRequest, as_json: bool) -> None:
    if onvif is None:
        raise typer.BadParameter("ONVIF import is not available here", param_hint="--onvif")
    rep, found = onvif(settings, req)
    if as_json:
        typer.echo(json.dumps({**rep.summary(), "device": found}, ensure_ascii=False))
        raise typer.Exit(1 if rep.rejected_count() else 0)
    console = Console()
    console.print(
        f"ONVIF {found.get('model', '')}: profiles "
        + ", ".join(f"{p['token']} {p['width']}x{p['height']}" for p in found.get("profiles", []))
        + f"; PTZ {'yes' if found.get('ptz') else 'no'}"
    )
    _finish(console, rep, False)


def _add_import(cams: typer.Typer, settings_from: SettingsFrom, onvif: OnvifImporter | None = None) -> None:
    @cams.command("import")
    def import_(
        file: Annotated[
            Path | None, typer.Argument(help="CSV or JSON inventory (UTF-8).", exists=True, dir_okay=False)
        ] = None,
        onvif_url: Annotated[
            str | None, typer.Option("--onvif", help="Import one ONVIF device: its device service URL.")
        ] = None,
        user: Annotated[str, typer.Option("--user", help="ONVIF user (with --onvif).")] = "",
        password_stdin: Annotated[
            bool, typer.Option("--password-stdin", help="Read the ONVIF password from stdin (with --onvif).")
        ] = False,
        camera_id: Annotated[str | None, typer.Option("--id", help="The camera's id (with --onvif).")] = None,
        area: Annotated[str, typer.Option("--area", help="The camera's sub-district (with --onvif).")] = "",
        strict: StrictOpt = False,
        vehicles: Annotated[
            Path | None,
            typer.Option(
                "--vehicles", help="Vehicles file (CSV/JSON), imported first in the same transaction.", exists=True
            ),
        ] = None,
        substitute: Annotated[
            list[str] | None,
            typer.Option("--substitute", "-s", help="Fill {KEY} in source URLs: KEY=VALUE (repeatable)."),
        ] = None,
        set_port: Annotated[
            int | None, typer.Option("--set-port", min=1, max=65535, help="Same as --substitute port=N.")
        ] = None,
        as_json: JsonOpt = False,
        config: ConfigOpt = None,
    ) -> None:
        """Upsert cameras by id from the telecom's inventory (or one ONVIF device with --onvif) and print a report.

        Each row is created, updated, unchanged or rejected (with its row number and the reason).

        A rejected row does not stop the others unless --strict.

        Bus and truck cameras name a vehicle: import vehicles with --vehicles (or first with import-vehicles).

        A URL without credentials keeps the stored ones for the same host and port.

        Exit code: 0 all rows accepted, 1 some rows rejected, 2 the file cannot be read.
        """
        settings = settings_from(config)
        if onvif_url is not None:
            password = sys.stdin.readline().rstrip("\r\n") if password_stdin else ""
            _import_onvif(settings, onvif, OnvifRequest(onvif_url, user, password, camera_id, area), as_json)
            return
        if file is None:
            raise typer.BadParameter("give an inventory file or --onvif URL", param_hint="FILE")
        subs = _parse_subs(substitute or [], set_port)
        console = Console(stderr=as_json)
        records = _read(file, "cameras")
        vrecords = _read(vehicles, "vehicles") if vehicles is not None else None

        async def job(store: CameraStore) -> InventoryReport:
            with _bar("importing", disable=len(records) < PROGRESS_MIN_ROWS) as bar:
                task = bar.add_task("cameras", total=len(records))
                return await import_inventory(
                    store,
                    records,
                    vrecords,
                    strict=strict,
                    substitutions=subs,
                    progress=lambda n: bar.advance(task, n),
                )

        _finish(console, _run(settings, job), as_json)


def _add_import_vehicles(cams: typer.Typer, settings_from: SettingsFrom) -> None:
    @cams.command("import-vehicles")
    def import_vehicles_(
        file: Annotated[Path, typer.Argument(help="CSV or JSON vehicle list (UTF-8).", exists=True, dir_okay=False)],
        strict: StrictOpt = False,
        as_json: JsonOpt = False,
        config: ConfigOpt = None,
    ) -> None:
        """Upsert buses and trucks by id (fields: id, kind, plate, line, cargo, home_district, contact).

        Exit code: 0 all rows accepted, 1 some rows rejected, 2 the file cannot be read.
        """
        settings = settings_from(config)
        records = _read(file, "vehicles")
        rep = _run(settings, lambda store: import_inventory(store, [], records, strict=strict))
        _finish(Console(stderr=as_json), rep, as_json)


def _add_export(cams: typer.Typer, settings_from: SettingsFrom) -> None:
    @cams.command("export")
    def export(
        fmt: Annotated[str, typer.Option("--format", "-f", help="json or csv.")] = "json",
        output: Annotated[Path | None, typer.Option("--output", "-o", help="File (default: stdout).")] = None,
        with_credentials: Annotated[
            bool, typer.Option("--with-credentials", help="Include RTSP user:password in URLs (file mode 0600).")
        ] = False,
        vehicles: Annotated[bool, typer.Option("--vehicles", help="Export the vehicles instead.")] = False,
        config: ConfigOpt = None,
    ) -> None:
        """Write the inventory in the import format (no credentials unless asked)."""
        if fmt not in ("json", "csv"):
            raise typer.BadParameter("must be json or csv", param_hint="--format")
        settings = settings_from(config)
        if vehicles:
            text = _run(settings, lambda store: export_vehicles(store, fmt))  # type: ignore[arg-type]
        else:
            text = _run(settings, lambda store: export_cameras(store, fmt, with_credentials_=with_credentials))  # type: ignore[arg-type]
        if output is None:
            sys.stdout.write(text)
            return
        if with_credentials:
            # Created 0600 before anything is written (a chmod afterwards leaves a window).
            output.unlink(missing_ok=True)
            output.touch(mode=0o600)
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


def _add_probe(cams: typer.Typer, settings_from: SettingsFrom) -> None:
    @cams.command("probe")
    def probe(
        ids: Annotated[list[str] | None, typer.Argument(help="Camera ids (or --all).")] = None,
        all_: Annotated[bool, typer.Option("--all", help="Probe every camera.")] = False,
        concurrency: Annotated[int, typer.Option(min=1, max=64, help="Cameras probed at once.")] = 4,
        timeout: Annotated[float, typer.Option(min=0.5, max=60, help="Seconds per camera.")] = 5.0,
        as_json: Annotated[bool, typer.Option("--json", help="Print results as one JSON line.")] = False,
        config: ConfigOpt = None,
    ) -> None:
        """Check each camera's source (RTSP DESCRIBE over TCP) and record codec, size, fps and status."""
        from camera_registry.probe import probe_cameras
        from camera_registry.store import NotFound

        if not ids and not all_:
            raise typer.BadParameter("give camera ids or --all")
        settings = settings_from(config)

        async def job(store: CameraStore) -> list[ProbeResult]:
            targets = await store.all_ids() if all_ else list(dict.fromkeys(ids or []))
            for cid in targets:
                try:
                    await store.get(cid)
                except NotFound as e:
                    raise typer.BadParameter(str(e)) from None
            with _bar("probing") as bar:
                task = bar.add_task("probe", total=len(targets))
                return await probe_cameras(
                    store,
                    targets,
                    concurrency=concurrency,
                    timeout_s=timeout,
                    on_result=lambda _r: bar.advance(task),
                )

        _print_probe(Console(stderr=as_json), _run(settings, job), as_json)


def _print_probe(console: Console, results: list[ProbeResult], as_json: bool) -> None:
    """The probe results (a table, or one JSON line on stdout) and a one-line count by status."""
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in results], ensure_ascii=False))
    else:
        t = Table(title="probe")
        for col in ("camera", "status", "codec", "size", "fps", "reason"):
            t.add_column(col)
        for r in results:
            size = f"{r.width}x{r.height}" if r.width else ""
            t.add_row(r.camera_id, r.status.value, r.codec or "", size, str(r.fps or ""), r.reason or "")
        console.print(t)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing"
    console.print(f"probed {len(results)}: {summary}", markup=False, highlight=False)
