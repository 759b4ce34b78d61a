"""``liandong cameras discover`` and ``liandong cameras import --onvif``: ONVIF devices found by
WS-Discovery (unicast to listed addresses, multicast only on the one interface the admin named)
and imported through the inventory import."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from camera_registry.cli import CameraCli, OnvifRequest
from camera_registry.egress import CameraNetworks
from camera_registry.inventory import InventoryReport
from camera_registry.ptz_endpoints import PtzEndpoints
from camera_registry.store import CameraStore
from gateway.ptz.onvif_import import import_onvif, known, registry_hosts
from gateway.ptz.settings import PtzSettings
from ptz.onvif import probe
from ptz.ports import PtzError
from storage.db import Database, run_with_database
from storage.secretbox import SecretBox

__all__ = ["onvif_importer", "register_discover"]

IMPORT_TIMEOUT_S = 5.0


def _stores(cli: CameraCli, db: Database) -> tuple[CameraStore, PtzEndpoints]:
    box = SecretBox.from_data_dir(cli.data_dir)
    networks = CameraNetworks(cli.allowed_networks)
    return CameraStore(db, box, networks), PtzEndpoints(db, box, networks)


def onvif_importer(cli: CameraCli, req: OnvifRequest) -> tuple[InventoryReport, dict[str, Any]]:
    """``cameras import --onvif``: read the device and import it (exit 2 when it cannot be read)."""

    async def job(db: Database) -> tuple[InventoryReport, dict[str, Any]]:
        store, endpoints = _stores(cli, db)
        try:
            found = await import_onvif(
                store,
                endpoints,
                req.url,
                req.username,
                req.password,
                camera_id=req.camera_id,
                area=req.area,
                timeout_s=IMPORT_TIMEOUT_S,
            )
        except (PtzError, ValueError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        out = found.summary()
        return found.report, {
            k: out[k] for k in ("camera_id", "model", "profiles", "sub_stream", "snapshot_uri", "ptz")
        }

    return run_with_database(cli.database_url, job)


def _target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise typer.BadParameter(f"expected HOST:PORT, got {text!r}", param_hint="--target")
    return host, int(port)


def register_discover(
    cams: typer.Typer, cli_from: Callable[[Path | None], CameraCli], ptz_from: Callable[[Path | None], PtzSettings]
) -> None:
    """Add ``cameras discover`` to the ``cameras`` group."""

    @cams.command("discover")
    def discover(
        target: Annotated[
            list[str] | None, typer.Option("--target", "-t", help="HOST:PORT to probe by unicast (repeatable).")
        ] = None,
        interface: Annotated[
            str | None,
            typer.Option("--interface", help="IPv4 address of the one interface to multicast a probe on."),
        ] = None,
        wait: Annotated[float, typer.Option("--wait", min=0.1, max=30, help="Seconds to wait for answers.")] = 2.0,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON line per device.")] = False,
        config: Annotated[Path | None, typer.Option("--config", "-c", envvar="LIANDONG_CONFIG")] = None,
    ) -> None:
        """List ONVIF devices (WS-Discovery) with model, name, address and whether the registry has them.

        Probes go by unicast to --target addresses (and ptz.discovery_targets), and by multicast only
        on the interface named by --interface (or ptz.discovery_interface), never on any other."""
        cli, settings = cli_from(config), ptz_from(config)
        targets = [_target(t) for t in [*(target or []), *settings.discovery_targets]]
        iface = interface or settings.discovery_interface
        if not targets and iface is None:
            raise typer.BadParameter("name --target addresses or an --interface", param_hint="--target")
        found = asyncio.run(probe(targets, interface=iface, wait_s=wait))

        async def hosts(db: Database) -> dict[str, str]:
            return await registry_hosts(_stores(cli, db)[0])

        have = run_with_database(cli.database_url, hosts)
        rows: list[dict[str, Any]] = [
            {
                "xaddrs": list(d.xaddrs),
                "name": d.scope("name"),
                "model": d.scope("hardware"),
                "ptz": any(s.endswith("/type/ptz") for s in d.scopes),
                "in_registry": known(d, have),
            }
            for d in found
        ]
        if as_json:
            for r in rows:
                typer.echo(json.dumps(r, ensure_ascii=False))
            return
        table = Table("address", "name", "model", "PTZ", "in registry")
        for r in rows:
            table.add_row(
                " ".join(r["xaddrs"]),
                str(r["name"]),
                str(r["model"]),
                "yes" if r["ptz"] else "",
                str(r["in_registry"] or ""),
            )
        Console().print(table)
