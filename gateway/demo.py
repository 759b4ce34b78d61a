"""``make demo``: fixture cameras, the sample district, demo users, and the gateway, in one process tree.

Ctrl-C stops the gateway and the fixture camera server it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from gateway.datadir import DataDirInUse, check_demo_may_seed, mark
from gateway.listen import ListenRefused, check_listen

ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA_DIR = Path("var/demo")  # never `var`, where `liandong serve` keeps its data by default
INVENTORY = ROOT / "fixtures" / "inventory"
DEMO_USERS: list[tuple[str, str, str, list[str], str]] = [
    # username, password, role, departments, what they see
    ("admin", "liandong-admin", "admin", [], "everything (system administrator)"),
    ("secadmin", "liandong-secadmin", "security_admin", [], "edits policies, sees no video by role"),
    ("auditor", "liandong-auditor", "auditor", [], "reads the audit log"),
    ("police", "liandong-police", "operator", ["police"], "every fixed camera and every bus"),
    ("qibao", "liandong-qibao", "operator", ["qibao"], "only cameras in 七宝镇"),
    ("transport", "liandong-transport", "operator", ["transport"], "buses, and trucks (own ones anywhere)"),
]
DEPARTMENTS: list[tuple[str, str, str, str | None, str | None]] = [
    ("district", "区联动中心", "district", None, None),
    ("qibao", "七宝镇分中心", "subdistrict", "district", "七宝镇"),
    ("police", "公安分局", "department", None, None),
    ("transport", "交通委", "department", None, None),
]
GROUPS = [
    ("fixed", "全部固定摄像机", {"kind": ["fixed"]}),
    ("buses", "全部公交摄像机", {"kind": ["bus"]}),
    ("trucks", "全部危化品车摄像机", {"kind": ["truck"]}),
    ("area-qibao", "七宝镇全部摄像机", {"area": ["七宝镇"]}),
]
GRANTS = [
    ("dept:district", "group:fixed", "view_live"),
    ("dept:police", "group:fixed", "view_live"),
    ("dept:police", "group:buses", "view_live"),
    ("dept:qibao", "group:area-qibao", "view_live"),
    ("dept:transport", "group:buses", "view_live"),
    ("dept:transport", "group:trucks", "view_live"),
]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def seed(settings: object, camera_port: int) -> None:
    """Import the sample district and create demo users and policies (idempotent); only into the
    demo's own data dir (:class:`DataDirInUse` otherwise)."""
    check_demo_may_seed(settings.data_dir)  # type: ignore[attr-defined]
    from acl.models import Role
    from acl.policy import PolicyError, PolicyStore, RuleSpec
    from acl.users import upsert_user
    from camera_registry.inventory import import_cameras, import_vehicles
    from camera_registry.store import CameraStore
    from storage.db import Database
    from storage.secretbox import SecretBox

    db = Database(settings.database_url)  # type: ignore[attr-defined]
    try:
        await asyncio.to_thread(db.migrate)
        store = CameraStore(db, SecretBox.from_data_dir(settings.data_dir))  # type: ignore[attr-defined]
        vehicles = json.loads((INVENTORY / "sample_vehicles.json").read_text(encoding="utf-8"))
        cameras = json.loads((INVENTORY / "sample_cameras.json").read_text(encoding="utf-8"))
        await import_vehicles(store, vehicles)
        rep = await import_cameras(store, cameras, substitutions={"port": str(camera_port)})
        print(
            f"sample inventory: {rep.summary()['created']} created, {rep.summary()['updated']} updated, "
            f"{rep.summary()['unchanged']} unchanged, {rep.summary()['rejected']} rejected"
        )
        policy = PolicyStore(db)
        ids: dict[str, int] = {}
        async with db.session() as s:
            for name, pw, role, _depts, _ in DEMO_USERS:
                user, _ = await upsert_user(s, name, pw, Role(role), update=True)
                ids[name] = user.id
        if not await policy.revisions(limit=2):
            for dept in DEPARTMENTS:
                await policy.put_department("demo", *dept)
            for gid, name, flt in GROUPS:
                await policy.put_group("demo", gid, name, filter_=flt)
            for sub, obj, act in GRANTS:
                await policy.add_rule("demo", RuleSpec(sub, obj, act), "demo grants")
        for name, _, _, depts, _ in DEMO_USERS:
            for d in depts:
                try:
                    await policy.set_membership("demo", ids[name], d)
                except PolicyError:
                    pass  # already a member
    finally:
        await db.close()


GPS = ROOT / "fixtures" / "gps"
REPLAY_EVERY_S = 2.0  # one recorded fix (15 s apart) every 2 s: vehicles visibly move on the map


def replay_plan(vehicles: list[dict[str, object]]) -> dict[str, list[tuple[float, float]]]:
    """A route per sample vehicle: the recorded bus and truck traces, shifted a little for each
    vehicle (bus-01 and truck-05 drive exactly as recorded; truck-05 crosses the district border)."""
    traces = {}
    for kind, name in (("bus", "bus_trace.ndjson"), ("truck", "truck_crossing.ndjson")):
        lines = (GPS / name).read_text(encoding="utf-8").splitlines()
        traces[kind] = [(float(d["lat"]), float(d["lon"])) for d in map(json.loads, lines) if d]
    plan = {}
    for i, v in enumerate(vehicles):
        route = traces["truck" if v["kind"] == "truck" else "bus"]
        exact = v["id"] in ("bus-01", "truck-05")
        dlat, dlon = (0.0, 0.0) if exact else (((i * 37) % 9 - 4) * 0.012, ((i * 53) % 9 - 4) * 0.012)
        start = 0 if exact else (i * 17) % len(route)
        plan[str(v["id"])] = [(lat + dlat, lon + dlon) for lat, lon in route[start:] + route[:start]]
    return plan


def gps_replay(ld: Any) -> Any:
    """A startup for the app: feed the replayed positions as a tracking system would, until shutdown."""

    async def start(_ld: Any) -> Any:
        vehicles = json.loads((INVENTORY / "sample_vehicles.json").read_text(encoding="utf-8"))
        plan = replay_plan(vehicles)

        async def run() -> None:
            step = 0
            while True:
                now = time.time()
                fixes = [
                    {"vehicle_id": vid, "lat": r[step % len(r)][0], "lon": r[step % len(r)][1], "time": now}
                    for vid, r in plan.items()
                ]
                try:
                    await ld.positions.ingest(fixes)
                except Exception:  # the demo keeps driving
                    logging.getLogger(__name__).exception("demo GPS replay failed")
                step += 1
                await asyncio.sleep(REPLAY_EVERY_S)

        task = asyncio.create_task(run(), name="demo-gps-replay")

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        return stop

    return start


def check_demo_start(settings: Any, host: str, insecure: bool) -> str | None:
    """Refuse to seed a data dir that is not the demo's own or to listen beyond loopback (no TLS
    here) unless ``insecure``; mark the data dir as the demo's. Returns a warning to show loudly."""
    if settings.database.url:
        raise DataDirInUse(
            "the demo seeds public passwords and runs only on its own SQLite database in its data dir: "
            "remove database.url from its settings"
        )
    warning = check_listen(host, tls=False, insecure=insecure)
    check_demo_may_seed(settings.data_dir)
    mark(settings.data_dir, "demo")
    return warning


def main() -> None:
    """Run the demo in the foreground."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--camera-port", type=int, default=8554)
    ap.add_argument("--config", default=None)
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=DEMO_DATA_DIR,
        help="the demo's own data dir (default var/demo); never one `liandong serve` runs on",
    )
    ap.add_argument("--insecure", action="store_true", help="allow listening beyond loopback (no TLS here)")
    args = ap.parse_args()

    import uvicorn

    from fixtures.camera_server import FixtureCameraServer
    from gateway.app import create_app
    from gateway.logs import configure_logging
    from gateway.settings import load_settings

    base = load_settings(args.config)
    overrides: dict[str, object] = {"data_dir": args.data_dir}
    if base.acl.district_geojson is None:
        overrides["acl"] = {**base.acl.model_dump(), "district_geojson": ROOT / "fixtures" / "district.geojson"}
    settings = load_settings(args.config, **overrides)
    configure_logging(settings.log.level, settings.log.format)
    try:
        warning = check_demo_start(settings, args.host, args.insecure)
    except (DataDirInUse, ListenRefused) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if warning:
        print(f"\n{'!' * 72}\n{warning}\n{'!' * 72}\n", file=sys.stderr)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    cam_port = args.camera_port if _port_free(args.camera_port) else 0
    with FixtureCameraServer(port=cam_port) as cams:
        asyncio.run(seed(settings, cams.port))
        url = f"http://{args.host}:{args.port}/"
        print("\n" + "=" * 72)
        print(f"  联动 Liandong is running at {url}   (API docs: {url}docs)")
        print(f"  Security-admin console: {url}admin")
        print(f"  Fixture cameras: rtsp://127.0.0.1:{cams.port}/h264 (and h264_360p, h265, h264_slices, h264_oob)")
        print("  Demo logins (username / password):")
        for name, pw, role, _, sees in DEMO_USERS:
            print(f"    {name:<10} / {pw:<20} {role:<15} {sees}")
        print(f"  Data dir: {settings.data_dir} (the demo's own; `liandong serve` never shares it)")
        print("  Buses and trucks replay recorded GPS traces (fixtures/gps) on the map.")
        print("  Ctrl-C stops the gateway and the fixture cameras.")
        print("=" * 72 + "\n", flush=True)
        app = create_app(settings)
        app.state.ld.extras.setdefault("startups", []).append(gps_replay(app.state.ld))
        # uvicorn re-raises SIGTERM after its graceful shutdown; turn it into an exception so the
        # fixture camera server is stopped by the ``with`` block instead of being orphaned.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False, proxy_headers=False)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
