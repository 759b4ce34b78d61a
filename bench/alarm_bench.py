"""Alarm benchmark: signed ``POST /api/alarms`` -> ``incident.opened`` at a connected SSE console.

In-process gateway (uvicorn on loopback), 200 fixed cameras around the district, a police console
subscribed to ``/api/events``; 100 alarms at random places, one at a time. Prints one JSON line
with p50/p95/max in ms. Usage: ``python -m bench.alarm_bench [--alarms 100]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from acl.models import Role
from camera_registry.inventory import import_cameras
from gateway.settings import load_settings
from tests.gateway.test_alarms import signed
from tests.live import live_gateway


async def run(n: int) -> dict[str, Any]:
    rnd = random.Random(9)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(None, data_dir=Path(tmp), log={"level": "WARNING"}, alarms={"prewarm_s": 0})
        async with live_gateway(settings) as g:
            admin = await g.add_user("admin", Role.admin)
            cams = [
                {
                    "id": f"fx{i:03d}",
                    "name": f"fx{i}",
                    "source_url": "rtsp://127.0.0.1:9/x",
                    "lat": 31.0 + rnd.random() * 0.2,
                    "lon": 121.32 + rnd.random() * 0.2,
                }
                for i in range(200)
            ]
            await import_cameras(g.ld.store, cams)
            await g.ld.inventory_changed()
            for dept in ("district", "police"):
                await g.client.put(f"/api/admin/departments/{dept}", json={"name": dept}, headers=admin)
            secret = (await g.client.post("/api/admin/alarm-sources", json={"name": "s"}, headers=admin)).json()[
                "secret"
            ]
            lat_ms: list[float] = []
            async with (
                httpx.AsyncClient(base_url=g.base_url, timeout=10) as c,
                c.stream("GET", "/api/events", headers=admin) as stream,
            ):
                lines = stream.aiter_lines()
                await lines.__anext__()  # ": connected"
                for i in range(n):
                    body = {"alarm_id": f"B-{i}", "lat": 31.0 + rnd.random() * 0.2, "lon": 121.32 + rnd.random() * 0.2}
                    t0 = time.perf_counter()
                    r = await g.client.post("/api/alarms", **signed(secret, body, source="s"))
                    assert r.status_code == 202, r.text
                    inc = r.json()["incident_id"]
                    async for line in lines:
                        if line.startswith("data: ") and inc in line:
                            break
                    lat_ms.append((time.perf_counter() - t0) * 1000)
    lat_ms.sort()
    return {
        "alarms": n,
        "alarm_to_event_p50_ms": round(statistics.median(lat_ms), 1),
        "alarm_to_event_p95_ms": round(lat_ms[int(len(lat_ms) * 0.95)], 1),
        "alarm_to_event_max_ms": round(lat_ms[-1], 1),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--alarms", type=int, default=100)
    args = ap.parse_args()
    print(json.dumps(asyncio.run(run(args.alarms))))


if __name__ == "__main__":
    main()
