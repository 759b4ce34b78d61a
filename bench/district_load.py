"""How long ``make demo`` takes to load the district sample (target: the whole import <= 15 s),
this tree against an older commit, side by side in one run.

Each round loads :func:`fixtures.demo.load_district` (6,945 cameras, 1,102 vehicles, 52 departments
and a station unit, the demo's groups, grants and logins) into a fresh SQLite data dir, then once
more into the same one (the idempotent re-run of a second ``make demo``), in a process of its own:
once with this tree's code and once with ``--base`` (default ``main``; exported with ``git archive``
into a temporary directory), alternating which goes first. The last round also times the
gateway's policy load and compile over the data this tree loaded. Prints one JSON object: per side
the wall and CPU seconds (every thread's) of each round, their medians, the ratio old/new, and the
load average around the run (on the shared 2-core machine, wall time above CPU time is waiting for
a core). Usage: ``python -m bench.district_load [--base REV] [--rounds N] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 15.0

# Run in the tree under test (its own fixtures.demo): first load, second load, as JSON on stdout.
_ONE_LOAD = """
import asyncio, json, sys
from pathlib import Path
from fixtures.demo import load_district
from gateway.settings import load_settings
async def main():
    s = load_settings(None, data_dir=Path(sys.argv[1]))
    first = await load_district(s.database_url, s.data_dir, 8554)
    again = await load_district(s.database_url, s.data_dir, 8554)
    print(json.dumps({"first": first, "again": again}))
asyncio.run(main())
"""


def _load_once(tree: Path, data_dir: Path) -> dict[str, dict[str, float]]:
    """One first and one repeated load by the code in ``tree``, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", _ONE_LOAD, str(data_dir)],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    result: dict[str, dict[str, float]] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def _compile(data_dir: Path) -> dict[str, float]:
    """The gateway's start on the loaded data: policy, inventory and the compiled index."""
    from acl.audit import AuditLog, audit_key
    from acl.service import build_acl
    from camera_registry.store import CameraStore
    from gateway.settings import load_settings
    from storage.db import Database
    from storage.secretbox import SecretBox

    settings = load_settings(None, data_dir=data_dir, acl={"district_geojson": ROOT / "fixtures" / "district.geojson"})
    db = Database(settings.database_url)
    box = SecretBox.from_data_dir(settings.data_dir)
    store = CameraStore(db, box)
    acl = build_acl(settings.acl, db, store, AuditLog(db, audit_key(box)), sessions=[])
    t, cpu = time.perf_counter(), time.process_time()
    await acl.load()
    out = {"wall_s": round(time.perf_counter() - t, 2), "cpu_s": round(time.process_time() - cpu, 2)}
    await db.close()
    return out


def _summary(runs: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
    def col(which: str, key: str) -> list[float]:
        return [round(r[which][key], 2) for r in runs]

    out: dict[str, Any] = {}
    for which in ("first", "again"):
        out[which] = {
            "total_s": col(which, "total"),
            "cpu_s": col(which, "cpu"),
            "median_total_s": round(statistics.median(col(which, "total")), 2),
            "median_cpu_s": round(statistics.median(col(which, "cpu")), 2),
            "median_parts_s": {
                k: round(statistics.median(col(which, k)), 2) for k in runs[0][which] if k not in ("total", "cpu")
            },
        }
    return out


def run(base: str, rounds: int) -> dict[str, Any]:
    load_before = os.getloadavg()
    sides: dict[str, list[dict[str, dict[str, float]]]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory(prefix="district-load-") as tmp:
        old_tree = Path(tmp) / "old"
        old_tree.mkdir()
        archive = subprocess.run(["git", "archive", base], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive, check=True)
        trees = {"old": old_tree, "new": ROOT}
        compiled: dict[str, float] = {}
        for i in range(rounds):
            order = ("old", "new") if i % 2 == 0 else ("new", "old")
            for side in order:
                data_dir = Path(tmp) / f"{side}-{i}"
                sides[side].append(_load_once(trees[side], data_dir))
                print(f"round {i + 1} {side}: {sides[side][-1]['first']['total']:.1f} s", file=sys.stderr)
        compiled = asyncio.run(_compile(Path(tmp) / f"new-{rounds - 1}"))
    load_after = os.getloadavg()
    old, new = _summary(sides["old"]), _summary(sides["new"])
    commit = subprocess.run(["git", "rev-parse", "--short", base], cwd=ROOT, capture_output=True, text=True)
    return {
        "bench": "district_load",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        "shared with other engineers' test runs",
        "loadavg_1m": [round(load_before[0], 1), round(load_after[0], 1)],
        "target_s": TARGET_S,
        "rounds": rounds,
        "old": {"rev": commit.stdout.strip() or base, **old},
        "new": new,
        "ratio_old_to_new": {
            "first_wall": round(old["first"]["median_total_s"] / new["first"]["median_total_s"], 2),
            "first_cpu": round(old["first"]["median_cpu_s"] / new["first"]["median_cpu_s"], 2),
            "again_wall": round(old["again"]["median_total_s"] / new["again"]["median_total_s"], 2),
            "again_cpu": round(old["again"]["median_cpu_s"] / new["again"]["median_cpu_s"], 2),
        },
        "gateway_policy_load": compiled,
        "meets_target_wall": new["first"]["median_total_s"] <= TARGET_S,
        "meets_target_cpu": new["first"]["median_cpu_s"] <= TARGET_S,
    }


def main() -> None:
    """Run and print (and with ``--out``, write) the JSON result."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--base", default="main", help="the commit to compare with (default: main)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    result = run(args.base, args.rounds)
    text = json.dumps(result, ensure_ascii=False, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
