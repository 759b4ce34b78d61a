"""Case event latency: a call-taker's ``POST /api/incidents`` -> ``incident.opened`` at the console of
the sub-district centre on duty, and ``POST /api/incidents/{id}/dispatch`` -> ``incident.dispatched``
(with the case's cameras, granted by the dispatch) at the console of the station it reached.

In-process gateway (uvicorn on loopback), 200 fixed cameras in 13 sub-districts, a sub-district
centre and 4 stations per sub-district, a call-taker of the district centre; the two consoles
(``/api/events`` streams of a centre operator and a station operator) connected throughout; ``--cases``
cases at random places of one sub-district, one at a time, each dispatched to one of its stations.
Times include the request (as ``bench.alarm_bench``'s alarm -> event figure).

Prints one JSON line with p50/p95/max in ms. Usage:
``python -m bench.case_event_bench [--cases 100] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from acl.models import Role
from camera_registry.inventory import import_cameras
from gateway.settings import load_settings
from tests.live import LiveGateway, live_gateway


def summary(name: str, ms: list[float]) -> dict[str, float]:
    """p50 / p95 / max of a list of milliseconds."""
    ms = sorted(ms)
    return {
        f"{name}_p50_ms": round(statistics.median(ms), 1),
        f"{name}_p95_ms": round(ms[int(len(ms) * 0.95)], 1),
        f"{name}_max_ms": round(ms[-1], 1),
    }


async def member(g: LiveGateway, admin: dict[str, str], name: str, unit: str) -> dict[str, str]:
    """An operator of ``unit`` (bearer headers)."""
    headers = await g.add_user(name, Role.operator)
    users = (await g.client.get("/api/admin/users", headers=admin)).json()
    uid = next(u["id"] for u in users if u["username"] == name)
    r = await g.client.put(f"/api/admin/users/{uid}/memberships/{unit}", json={}, headers=admin)
    assert r.status_code == 200, r.text
    return headers


async def until(lines: AsyncIterator[str], kind: str, incident: str) -> None:
    """Read a console's stream until the event ``kind`` of ``incident`` arrives."""
    event = ""
    async for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == kind and incident in line:
            return


async def run(n: int) -> dict[str, Any]:
    rnd = random.Random(18)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(None, data_dir=Path(tmp), log={"level": "WARNING"}, alarms={"prewarm_s": 0})
        async with live_gateway(settings) as g:
            admin = await g.add_user("admin", Role.admin)
            cams: list[dict[str, Any]] = [
                {
                    "id": f"fx{i:03d}",
                    "name": f"fx{i}",
                    "source_url": "rtsp://127.0.0.1:9/x",
                    "lat": 31.0 + rnd.random() * 0.2,
                    "lon": 121.32 + rnd.random() * 0.2,
                    "area": f"area-{i % 13}",
                }
                for i in range(200)
            ]
            await import_cameras(g.ld.store, cams)
            await g.ld.inventory_changed()
            units = {"district": {"name": "区联动中心", "level": "district"}}
            for a in range(13):
                units[f"sd-{a}"] = {"name": f"area-{a} 分中心", "level": "subdistrict", "area": f"area-{a}"}
                for k in range(4):
                    units[f"st-{a}-{k}"] = {
                        "name": f"area-{a} 居委 {k}",
                        "level": "station",
                        "area": f"area-{a}",
                        "parent_id": f"sd-{a}",
                    }
            for unit, body in units.items():
                r = await g.client.put(f"/api/admin/departments/{unit}", json=body, headers=admin)
                assert r.status_code == 200, r.text
            caller = await member(g, admin, "ct", "district")
            centre = await member(g, admin, "centre-op", "sd-3")
            station = await member(g, admin, "station-op", "st-3-1")
            area3 = [c for c in cams if c["area"] == "area-3"]
            opened, dispatched, cams_seen = [], [], []
            async with (
                httpx.AsyncClient(base_url=g.base_url, timeout=10) as c,
                c.stream("GET", "/api/events", headers=centre) as centre_stream,
                c.stream("GET", "/api/events", headers=station) as station_stream,
            ):
                centre_lines, station_lines = centre_stream.aiter_lines(), station_stream.aiter_lines()
                for lines in (centre_lines, station_lines):
                    while not (await lines.__anext__()).startswith(": connected"):
                        pass
                for i in range(n):
                    near = rnd.choice(area3)
                    case = {
                        "category": "road",
                        "subdistrict": "area-3",
                        "lat": near["lat"] + 0.0001,
                        "lon": near["lon"] + 0.0001,
                        "reporter_phone": "13812345678",
                        "text": f"case {i}",
                    }
                    t0 = time.perf_counter()
                    r = await g.client.post("/api/incidents", json=case, headers=caller)
                    assert r.status_code == 201, r.text
                    cid = r.json()["id"]
                    await until(centre_lines, "incident.opened", cid)
                    opened.append((time.perf_counter() - t0) * 1000)
                    t0 = time.perf_counter()
                    r = await g.client.post(
                        f"/api/incidents/{cid}/dispatch", json={"department": "st-3-1"}, headers=caller
                    )
                    assert r.status_code == 200, r.text
                    await until(station_lines, "incident.dispatched", cid)
                    dispatched.append((time.perf_counter() - t0) * 1000)
                    cams_seen.append(len(r.json()["cameras"]))
    return {
        "cases": n,
        **summary("case_to_centre_event", opened),
        **summary("dispatch_to_station_event", dispatched),
        "cases_with_cameras": sum(1 for k in cams_seen if k),
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cases", type=int, default=100)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    line = json.dumps(asyncio.run(run(args.cases)))
    print(line)
    if args.out:
        with args.out.open("a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
