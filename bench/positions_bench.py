"""Vehicle positions: intake rate and nearest-camera queries with 20,000 vehicles.

Prints one JSON line. In process (k-d tree): ``intake_per_s`` (validated batches of 1,000 through
``PositionService.ingest``), ``nearest_*`` (``PositionService.nearest``, 5 cameras, every vehicle with
two cameras and a fresh fix), ``index_nearest_*`` (the vehicle index alone), and ``under_load_*``
(queries while fixes keep arriving at ~20,000/s, so the tree's delta and rebuilds are paid for).
With a ``redis-server`` on the PATH the same intake and nearest figures through Redis GEO
(``redis_*``; a server started for the run on a free loopback port). Usage:
``python -m bench.positions_bench [--out FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from camera_registry.positions import PositionService
from camera_registry.settings import VehicleSettings
from camera_registry.vehicle_index import MemoryVehicleIndex, RedisVehicleIndex, VehicleIndex

N = 20_000


def _service(index: VehicleIndex) -> PositionService:
    svc = PositionService(VehicleSettings(), None, "闵行区", lambda _a, _b: True, index=index)
    svc.set_inventory(
        {f"v{i}": ("bus", "闵行区") for i in range(N)},
        [(f"v{i}-{s}", "bus", None, None, f"v{i}") for i in range(N) for s in ("front", "in")],
    )
    return svc


def _batches(rnd: random.Random, now: float, count: int, size: int = 1000) -> list[list[dict[str, Any]]]:
    """Fixes of random vehicles with rising times (each one newer than the vehicle's last: it moves)."""
    step = 30.0 / (count * size)
    return [
        [
            {
                "vehicle_id": f"v{rnd.randrange(N)}",
                "lat": 31.0 + rnd.random() * 0.25,
                "lon": 121.3 + rnd.random() * 0.25,
                "time": now - 30 + (b * size + j) * step,
                "speed": 30.0,
                "heading": 180.0,
            }
            for j in range(size)
        ]
        for b in range(count)
    ]


def _pct(times: list[float]) -> tuple[float, float]:
    times.sort()
    return round(statistics.median(times), 1), round(times[int(len(times) * 0.99)], 1)


async def _every_vehicle(svc: PositionService, rnd: random.Random, now: float) -> None:
    items = [
        {"vehicle_id": f"v{i}", "lat": 31.0 + rnd.random() * 0.25, "lon": 121.3 + rnd.random() * 0.25, "time": now - 60}
        for i in range(N)
    ]
    for start in range(0, N, 1000):
        await svc.ingest(items[start : start + 1000], now=now)


async def _queries(svc: PositionService, rnd: random.Random, now: float, n: int) -> list[float]:
    times = []
    for _ in range(n):
        lat, lon = 31.0 + rnd.random() * 0.25, 121.3 + rnd.random() * 0.25
        t0 = time.perf_counter_ns()
        await svc.nearest(lat, lon, limit=5, now=now)
        times.append((time.perf_counter_ns() - t0) / 1000)
    return times


async def in_process() -> dict[str, Any]:
    rnd = random.Random(5)
    now = time.time()
    index = MemoryVehicleIndex()
    svc = _service(index)
    await _every_vehicle(svc, rnd, now)
    batches = _batches(rnd, now, 100)
    t = time.perf_counter()
    accepted = 0
    for b in batches:
        accepted += (await svc.ingest(b, now=now))["accepted"]
    intake = accepted / (time.perf_counter() - t)
    t = time.perf_counter()
    index.points.rebuild()
    rebuild_ms = (time.perf_counter() - t) * 1000
    nearest = _pct(await _queries(svc, rnd, now, 5000))
    idx_times = []
    for _ in range(5000):
        lat, lon = 31.0 + rnd.random() * 0.25, 121.3 + rnd.random() * 0.25
        t0 = time.perf_counter_ns()
        await index.nearest(lat, lon, 5, None, now - 120)
        idx_times.append((time.perf_counter_ns() - t0) / 1000)
    index_nearest = _pct(idx_times)
    # Under load: 200 fixes, then 10 queries, repeated; 1 s of fixes at 20,000/s in wall terms.
    small = _batches(rnd, now + 30, 500, size=200)  # newer still: every fix moves its vehicle
    builds = index.points.rebuilds
    load_times: list[float] = []
    t = time.perf_counter()
    for b in small:
        await svc.ingest(b, now=now)
        load_times += await _queries(svc, rnd, now, 10)
    wall = time.perf_counter() - t
    under_load = _pct(load_times)
    return {
        "vehicles": N,
        "intake_per_s": round(intake),
        "nearest_p50_us": nearest[0],
        "nearest_p99_us": nearest[1],
        "index_nearest_p50_us": index_nearest[0],
        "index_nearest_p99_us": index_nearest[1],
        "index_rebuild_ms": round(rebuild_ms, 1),
        "under_load_fixes_per_s": round(len(small) * 200 / wall),
        "under_load_nearest_p50_us": under_load[0],
        "under_load_nearest_p99_us": under_load[1],
        "under_load_rebuilds": index.points.rebuilds - builds,
    }


async def on_redis() -> dict[str, Any]:
    import redis.asyncio

    from tests.redis_server import redis_server

    rnd = random.Random(6)
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as url:
        svc = _service(RedisVehicleIndex(redis.asyncio.from_url(url)))
        try:
            await _every_vehicle(svc, rnd, now)
            batches = _batches(rnd, now, 40)  # every fix moves its vehicle
            t = time.perf_counter()
            accepted = 0
            for b in batches:
                accepted += (await svc.ingest(b, now=now))["accepted"]
            intake = accepted / (time.perf_counter() - t)
            nearest = _pct(await _queries(svc, rnd, now, 3000))
        finally:
            await svc.close()
    return {"redis_intake_per_s": round(intake), "redis_nearest_p50_us": nearest[0], "redis_nearest_p99_us": nearest[1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, help="also append the JSON line to this file")
    args = ap.parse_args()
    out = asyncio.run(in_process())
    if shutil.which("redis-server"):
        out |= asyncio.run(on_redis())
    out["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    line = json.dumps(out)
    print(line)
    if args.out:
        with args.out.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
