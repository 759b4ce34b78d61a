"""ACL benchmark at district scale: 20,000 cameras, 60 departments, 5,000 users, ~47k rules.

Builds a SQLite database in a temporary data dir with ``fixtures.world``, then measures, in one
process on this machine:

- ``cold_load_s``: AclService.load() (policy through the Casbin-shaped store + inventory + compile);
- ``authorize_p99_us`` / ``visible_p99_ms``: answers per call after one warm-up call per user
  (``*_miss_*`` report the first, uncached call per subject set);
- ``list_api_p99_ms``: ``GET /api/cameras?limit=100`` over HTTP (in-process ASGI) for a user who sees
  all 20,000 cameras;
- ``change_visible_ms``: a new grant stored (transaction + revision + audit) until the user's visible
  set includes it; ``change_index_us`` the in-memory patch alone;
- ``equivalence_*``: the compiled index against a plain Casbin enforcer on 10,000 random questions
  (on a 600-camera world: Casbin's enforcer costs ~5 us per rule per question).

Prints one JSON line. Usage: ``python -m bench.acl_bench [--cameras N] [--users N] [--out FILE]``.
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
from sqlalchemy import insert

from acl.equivalence import compare
from acl.models import Membership, Role, User
from acl.policy import RuleSpec
from acl.policy_models import CameraGroup, CasbinRule, Department, OrgLevel
from camera_registry.models import Camera, CameraKind, CameraStatus
from fixtures.world import make_world
from gateway.app import create_app
from gateway.settings import load_settings

NOW = time.time()


def pct(values: list[float], p: float) -> float:
    """The p-th percentile."""
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p / 100))]


async def populate(db: Any, world: Any) -> None:
    """Bulk-load the world into the project database."""
    async with db.session() as s:
        await s.execute(
            insert(Camera),
            [
                {
                    "id": c[0],
                    "name": c[0],
                    "kind": CameraKind(c[2]),
                    "source_url": "rtsp://127.0.0.1:9/x",
                    "area": c[1],
                    "department": c[3],
                    "tags": c[4],
                    "vehicle_id": None,
                    "status": CameraStatus.unknown,
                }
                for c in world.cameras
            ],
        )
        await s.execute(
            insert(Department),
            [
                {"id": d[0], "name": d[1], "level": OrgLevel(d[2]), "parent_id": d[3], "area": d[4]}
                for d in world.departments
            ],
        )
        await s.execute(
            insert(User),
            [
                {"id": uid, "username": f"user{uid}", "role": Role.operator, "display_name": ""}
                for uid in range(1, world.users + 1)
            ],
        )
        await s.execute(
            insert(Membership), [{"user_id": u, "department_id": d, "role": r} for u, d, r in world.memberships]
        )
        groups = [{"id": g, "name": g, "dynamic": True, "filter": f} for g, f in world.dynamic_groups.items()]
        groups += [{"id": g, "name": g, "dynamic": False, "filter": {}} for g in world.static_groups]
        await s.execute(insert(CameraGroup), groups)
        rows = [
            {"ptype": "p", "v0": r[0], "v1": r[1], "v2": r[2], "v3": r[3], "v4": r[4], "v5": r[5]} for r in world.rules
        ]
        rows += [
            {"ptype": "g2", "v0": f"cam:{c}", "v1": f"group:{g}", "v2": "", "v3": "", "v4": "", "v5": ""}
            for g, members in world.static_groups.items()
            for c in members
        ]
        await s.execute(insert(CasbinRule), rows)


async def run(cameras: int, users: int) -> dict[str, Any]:
    world = make_world(cameras=cameras, users=users, now=NOW)
    out: dict[str, Any] = {
        "cameras": cameras,
        "users": users,
        "departments": len(world.departments),
        "rules_total": world.rule_count(),
        "p_rules": len(world.rules),
    }
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(None, data_dir=Path(tmp))
        app = create_app(settings)
        ld = app.state.ld
        await asyncio.to_thread(ld.db.migrate)
        await populate(ld.db, world)
        acl = ld.authorizer
        t0 = time.perf_counter()
        await acl.load()
        out["cold_load_s"] = round(time.perf_counter() - t0, 3)

        rnd = random.Random(3)
        subjects = [acl.subject_for(u, f"user{u}", "operator") for u in range(1, users + 1)]
        cam_ids = [c[0] for c in world.cameras]
        misses = []
        for sub in subjects:  # warm-up: first call per user fills the cache for its subject set
            t = time.perf_counter_ns()
            acl.visible_cameras(sub, "view_live")
            misses.append((time.perf_counter_ns() - t) / 1e6)
        out["visible_miss_p50_ms"] = round(statistics.median(misses), 3)
        out["visible_miss_max_ms"] = round(max(misses), 3)
        times = []
        for _ in range(100_000):
            sub = subjects[rnd.randrange(users)]
            cid = cam_ids[rnd.randrange(cameras)]
            t = time.perf_counter_ns()
            acl.authorize(sub, "view_live", cid)
            times.append((time.perf_counter_ns() - t) / 1000)
        out["authorize_p50_us"] = round(statistics.median(times), 2)
        out["authorize_p99_us"] = round(pct(times, 99), 2)
        vtimes = []
        for _ in range(20_000):
            sub = subjects[rnd.randrange(users)]
            t = time.perf_counter_ns()
            acl.visible_cameras(sub, "view_live")
            vtimes.append((time.perf_counter_ns() - t) / 1e6)
        out["visible_p99_ms"] = round(pct(vtimes, 99), 4)

        # A user who sees every camera (district centre), listing over HTTP.
        async with app.router.lifespan_context(app):
            from acl.users import upsert_user

            async with ld.db.session() as s:
                boss, _ = await upsert_user(s, "boss", "bench-password-1", Role.operator)
            await acl.policy.set_membership("bench", boss.id, "district")
            await acl.policy_changed("bench")
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c:
                r = await c.post("/api/auth/token", data={"username": "boss", "password": "bench-password-1"})
                h = {"Authorization": f"Bearer {r.json()['access_token']}"}
                first = await c.get("/api/cameras?limit=100", headers=h)
                out["list_api_total"] = first.json()["total"]
                lt = []
                for i in range(200):
                    t1 = time.perf_counter()
                    r = await c.get(f"/api/cameras?limit=100&offset={(i * 100) % cameras}", headers=h)
                    lt.append((time.perf_counter() - t1) * 1000)
                    assert r.status_code == 200
                out["list_api_p50_ms"] = round(statistics.median(lt), 2)
                out["list_api_p99_ms"] = round(pct(lt, 99), 2)

            # A grant change answered correctly in the same process.
            probe_user = subjects[0]
            target = next(c for c in cam_ids if not acl.authorize(probe_user, "view_live", c))
            dept = sorted(probe_user.departments)[0]
            ct = []
            for k in range(5):
                cid = [c for c in cam_ids if not acl.authorize(probe_user, "view_live", c)][k]
                t1 = time.perf_counter()
                await acl.add_rule("bench", RuleSpec(f"dept:{dept}", f"cam:{cid}", "view_live"), "bench")
                ok = cid in acl.visible_cameras(probe_user, "view_live")
                ct.append((time.perf_counter() - t1) * 1000)
                assert ok
            out["change_visible_ms"] = round(statistics.median(ct), 2)
            from acl.index import Rule

            t = time.perf_counter_ns()
            acl.index.add_rule(Rule(f"dept:{dept}", f"cam:{target}", "view_live", "allow", rule_id=-1))
            assert target in acl.visible_cameras(probe_user, "view_live")
            out["change_index_us"] = round((time.perf_counter_ns() - t) / 1000, 1)

    small = make_world(cameras=600, users=100, single_grants_per_station=3, denies=30, incidents=40, now=NOW)
    t2 = time.perf_counter()
    res = compare(small, 10_000, now=NOW)
    out["equivalence_pairs_checked"] = res.checked
    out["equivalence_mismatches"] = res.mismatches
    out["equivalence_allowed"] = res.allowed
    out["equivalence_s"] = round(time.perf_counter() - t2, 1)
    out["machine"] = f"{platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cameras", type=int, default=20_000)
    ap.add_argument("--users", type=int, default=5_000)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    res = asyncio.run(run(args.cameras, args.users))
    line = json.dumps(res, ensure_ascii=False)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(line + "\n", encoding="utf-8")
    print(line)


if __name__ == "__main__":
    main()
