"""PTZ benchmark: API call -> command on the wire to the camera, and take-over -> the old holder's
move stopped, against the fixture's ONVIF camera.

The gateway runs in process (its ASGI app, no HTTP socket between client and gateway) and the ONVIF
fixture in threads of the same process; each time is from just before the API call to the moment
the camera's SOAP handler received the command (both on this process's monotonic clock), so it is
the gateway's own time plus one loopback HTTP request to the camera.

- ``command_p50_ms``/``command_p95_ms``: a holder's continuous moves and stops, one after the other;
- ``takeover_p50_ms``/``takeover_p95_ms``: a higher priority's command while a lower one's continuous
  move runs, until the camera received ``Stop`` (the take-over decided and the old move stopped).

Prints one JSON line. Usage: ``python -m bench.ptz_bench [--n 300] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from acl.models import Role
from acl.users import upsert_user
from camera_registry.inventory import import_cameras
from camera_registry.ptz_endpoints import PtzEndpoints
from fixtures.onvif_camera import OnvifCamera
from gateway.settings import load_settings
from gateway.wiring import create_app

PASSWORD = "correct horse battery"


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p * len(xs)))], 2)


async def _received(cam: OnvifCamera, index: int, op: str, deadline_s: float = 5.0) -> float:
    """The monotonic time the camera received its ``index``-th command, which must be ``op``."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with cam._lock:
            if len(cam.commands) > index:
                t, got, _ = cam.commands[index]
                assert got == op, (got, op)
                return t
        await asyncio.sleep(0.0005)
    raise TimeoutError(op)


async def run(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, OnvifCamera() as cam:
        settings = load_settings(
            None, data_dir=Path(tmp) / "data", ptz={"commands_per_s": 1000, "command_burst": 10_000}
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            ld = app.state.ld
            async with ld.db.session() as s:
                await upsert_user(s, "root", PASSWORD, Role.admin)
            await import_cameras(ld.store, [{"id": "ptz-1", "name": "PTZ", "source_url": "rtsp://127.0.0.1:9/x"}])
            await ld.inventory_changed()
            async with ld.db.session() as s:
                await PtzEndpoints(ld.db, ld.box, ld.store.networks).put(
                    s, "ptz-1", driver="onvif", url=cam.url, profile="main", username="admin", password="onvif-pass"
                )
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:

                async def token(user: str) -> dict[str, str]:
                    r = await c.post("/api/auth/token", data={"username": user, "password": PASSWORD})
                    return {"Authorization": f"Bearer {r.json()['access_token']}"}

                root = await token("root")
                for dept, level in [("qibao", "subdistrict"), ("police", "department")]:
                    await c.put(f"/api/admin/departments/{dept}", json={"name": dept, "level": level}, headers=root)
                    await c.post(
                        "/api/admin/rules",
                        json={"subject": f"dept:{dept}", "target": "cam:ptz-1", "action": "ptz"},
                        headers=root,
                    )
                heads = {}
                for user, dept in [("low", "qibao"), ("high", "police")]:
                    r = await c.post(
                        "/api/admin/users",
                        json={"username": user, "password": PASSWORD, "role": "operator"},
                        headers=root,
                    )
                    await c.put(f"/api/admin/users/{r.json()['id']}/memberships/{dept}", json={}, headers=root)
                    heads[user] = await token(user)
                url = "/api/cameras/ptz-1/ptz"
                # Warm up: the driver connects (clock, capabilities) on the first command.
                await c.post(url, json={"op": "stop"}, headers=heads["low"])
                commands: list[float] = []
                for i in range(n):
                    body = {"op": "continuous", "pan": 0.3, "timeout_s": 5} if i % 2 == 0 else {"op": "stop"}
                    idx = len(cam.commands)
                    t0 = time.monotonic()
                    r = await c.post(url, json=body, headers=heads["low"])
                    assert r.status_code == 200, r.text
                    commands.append((await _received(cam, idx, "ContinuousMove" if i % 2 == 0 else "Stop") - t0) * 1000)
                takeovers: list[float] = []
                for _ in range(max(20, n // 5)):
                    await c.delete(f"{url}/hold", headers=heads["high"])
                    r = await c.post(url, json={"op": "continuous", "pan": -0.3, "timeout_s": 5}, headers=heads["low"])
                    assert r.status_code == 200, r.text
                    idx = len(cam.commands)
                    t0 = time.monotonic()
                    r = await c.post(url, json={"op": "home"}, headers=heads["high"])
                    assert r.status_code == 200, r.text
                    takeovers.append((await _received(cam, idx, "Stop") - t0) * 1000)
                await c.delete(f"{url}/hold", headers=heads["high"])
    return {
        "bench": "ptz",
        "n": n,
        "command_p50_ms": _pct(commands, 0.5),
        "command_p95_ms": _pct(commands, 0.95),
        "command_mean_ms": round(statistics.mean(commands), 2),
        "takeover_n": len(takeovers),
        "takeover_p50_ms": _pct(takeovers, 0.5),
        "takeover_p95_ms": _pct(takeovers, 0.95),
        "cpus": os.cpu_count(),
        "load1": round(os.getloadavg()[0], 1),
        "python": platform.python_version(),
    }


def main() -> None:
    """Run and print one JSON line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    res = asyncio.run(run(a.n))
    line = json.dumps(res)
    print(line)
    if a.out:
        a.out.write_text(line + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
