"""Vehicle positions: intake rate and nearest-camera queries with 20,000 vehicles (in process).

Prints one JSON line: ``intake_per_s`` (validated batches of 1,000 through PositionService.ingest),
``nearest_p50_us``/``nearest_p99_us`` (``nearest`` over 20,000 moving vehicles with two cameras each,
fresh fixes, the k-d tree already built) and ``index_rebuild_ms``.
Usage: ``python -m bench.positions_bench``.
"""

from __future__ import annotations

import json
import platform
import random
import statistics
import time
from typing import Any

from camera_registry.positions import PositionService
from gateway.settings import VehicleSettings


def main() -> None:
    n = 20_000
    rnd = random.Random(5)
    svc = PositionService(VehicleSettings(), None, "闵行区", lambda _a, _b: True)  # type: ignore[arg-type]
    svc.vehicles = {f"v{i}": ("bus", "闵行区") for i in range(n)}
    svc.vehicle_cameras = {f"v{i}": [(f"v{i}-front", "bus"), (f"v{i}-in", "bus")] for i in range(n)}
    now = time.time()
    batches = [
        [
            {
                "vehicle_id": f"v{rnd.randrange(n)}",
                "lat": 31.0 + rnd.random() * 0.25,
                "lon": 121.3 + rnd.random() * 0.25,
                "time": now - rnd.random() * 30,
                "speed": 30.0,
                "heading": 180.0,
            }
            for _ in range(1000)
        ]
        for _ in range(100)
    ]
    t = time.perf_counter()
    accepted = sum(svc.ingest(b, now=now)["accepted"] for b in batches)
    intake = accepted / (time.perf_counter() - t)
    t = time.perf_counter()
    svc.nearest(31.1, 121.4, limit=5, now=now)  # builds the tree
    rebuild_ms = (time.perf_counter() - t) * 1000
    times = []
    for _ in range(5000):
        lat, lon = 31.0 + rnd.random() * 0.25, 121.3 + rnd.random() * 0.25
        t0 = time.perf_counter_ns()
        svc.nearest(lat, lon, limit=5, now=now)
        times.append((time.perf_counter_ns() - t0) / 1000)
    times.sort()
    out: dict[str, Any] = {
        "vehicles": n,
        "intake_per_s": round(intake),
        "index_rebuild_ms": round(rebuild_ms, 1),
        "nearest_p50_us": round(statistics.median(times), 1),
        "nearest_p99_us": round(times[int(len(times) * 0.99)], 1),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}",
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
