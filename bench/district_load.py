"""How long ``make demo`` takes to load the district sample (target: the whole import <= 15 s).

Loads :func:`fixtures.district_sample.generate_district` (6,945 cameras, 1,102 vehicles, 52
departments and a station unit, the demo's groups, grants and logins) into a fresh SQLite data dir
the way the demo does (:func:`fixtures.demo.load_district`), then once more into the same one (the
idempotent re-run of a second ``make demo``), and finally compiles the policy over it as the gateway
does at start. Prints one JSON object: wall seconds per part, the process's CPU seconds (every
thread's: what the wall time is on a quiet machine) and the load average around the run, which on
the shared 2-core machine says how much of the wall time was waiting. Usage:
``python -m bench.district_load [--out FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from fixtures.demo import ROOT, load_district
from gateway.settings import Settings, load_settings

TARGET_S = 15.0


async def _compile(settings: Settings) -> dict[str, float]:
    """The gateway's start on the loaded data: policy, inventory and the compiled index."""
    from acl.audit import AuditLog, audit_key
    from acl.service import build_acl
    from camera_registry.store import CameraStore
    from storage.db import Database
    from storage.secretbox import SecretBox

    db = Database(settings.database_url)
    box = SecretBox.from_data_dir(settings.data_dir)
    store = CameraStore(db, box)
    acl = build_acl(settings.acl, db, store, AuditLog(db, audit_key(box)), sessions=[])
    t, cpu = time.perf_counter(), time.process_time()
    await acl.load()
    out = {"wall_s": round(time.perf_counter() - t, 2), "cpu_s": round(time.process_time() - cpu, 2)}
    await db.close()
    return out


async def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="district-load-") as tmp:
        settings = load_settings(
            None, data_dir=Path(tmp), acl={"district_geojson": ROOT / "fixtures" / "district.geojson"}
        )
        load_before = os.getloadavg()
        first = await load_district(settings.database_url, settings.data_dir, 8554)
        again = await load_district(settings.database_url, settings.data_dir, 8554)
        start = await _compile(settings)
        load_after = os.getloadavg()
    rounded = {k: round(v, 2) for k, v in first.items()}
    return {
        "bench": "district_load",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "loadavg_1m": [round(load_before[0], 1), round(load_after[0], 1)],
        "target_s": TARGET_S,
        "first_load": rounded,
        "second_load": {k: round(v, 2) for k, v in again.items()},
        "gateway_policy_load": start,
        "meets_target_wall": first["total"] <= TARGET_S,
        "meets_target_cpu": first["cpu"] <= TARGET_S,
    }


def main() -> None:
    """Run and print (and with ``--out``, write) the JSON result."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    result = asyncio.run(run())
    text = json.dumps(result, ensure_ascii=False, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
