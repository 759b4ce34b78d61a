"""ACL benchmark at district scale: 20,000 cameras, 60 departments, 5,000 users, ~47k rules.

Builds a SQLite database in a temporary data dir with ``fixtures.world`` (plus the rule kinds
:func:`acl.equivalence.enrich` adds, and vehicles so the truck location rule has trucks), then
measures, in one process on this machine:

- ``cold_load_s``: a new ACL's ``load()`` (policy + inventory + compile); also the median
  of three more loads;
- ``authorize_p99_us`` / ``visible_p99_ms``: one call each, random users, steady state; the
  ``*_miss_*`` figures are the first call after every cached answer was dropped (what a policy
  change or a truck crossing the boundary costs the next caller);
- ``list_api_p99_ms``: ``GET /api/cameras?limit=100`` over HTTP (in-process ASGI) for a user who
  sees all 20,000 cameras (19,749: the location rule hides the foreign trucks outside); and
  ``list_api_after_inventory_reload_ms``, the request that finds the store's inventory snapshot
  stale (after a write, or its 5 s TTL) and re-reads it;
- ``change_visible_ms``: from the start of a grant change (transaction + revision + index patch)
  until the answer includes it (timed at the patch, where every request sees it);
  ``change_call_ms`` until the call returns (its audit entry written too);
  ``change_membership_ms`` the same for a new membership;
- ``equivalence_*``: the service against a plain Casbin enforcer loaded through the adapter from
  the same database, 10,000 random questions on a 400-camera world (Casbin's enforcer costs ~5 us
  per rule per question, ~0.1 s a question at full scale), plus a 200-question full-scale sample;
- ``gc_*``: CPython's generation-2 (full) collections the collector started by itself from the
  end of the load measurements to the end of the scale measurements (count, median, max), apart
  from them the ones the ACL runs before each freeze, a full collection timed on its own after the
  first load, and the objects the collector tracks and has frozen. ``--gc-freeze off`` runs the same
  with ``acl.gc_freeze`` off (the heap is then not frozen after a compile).

Prints one JSON line. Usage: ``python -m bench.acl_bench [--cameras N] [--users N] [--gc-freeze on|off] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from acl.decider import AccessDecider
from acl.equivalence import compare_service, enrich, populate, reference_from_database, rule_targets
from acl.models import Role
from acl.policy import RuleSpec
from acl.service import AclService, build_acl
from fixtures.world import make_world
from gateway.settings import Settings, load_settings
from gateway.wiring import create_app

ROOT = Path(__file__).resolve().parents[1]
INSIDE, OUTSIDE = (31.15, 121.40), (31.30, 121.25)


def pct(values: list[float], p: float) -> float:
    """The p-th percentile."""
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p / 100))]


def rss_mb() -> float:
    """Peak resident memory of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def feed_positions(acl: AclService, now: float) -> list[tuple[str, float, float, float]]:
    """Half the foreign trucks inside the district, half outside."""
    fixes = []
    for i, vid in enumerate(sorted(acl.location.foreign_trucks())):
        lat, lon = INSIDE if i % 2 else OUTSIDE
        fixes.append((vid, lat, lon, now))
        acl.location.update_vehicle_position(vid, lat, lon, now)
    return fixes


GC_FREEZE = True  # acl.gc_freeze for the services built here (``--gc-freeze``)


def settings_for(tmp: str) -> Settings:
    acl = {"district_geojson": ROOT / "fixtures" / "district.geojson", "gc_freeze": GC_FREEZE}
    return load_settings(None, data_dir=Path(tmp), acl=acl)


class FullCollections:
    """Times CPython's generation-2 collections while registered (``gc.callbacks``): those the
    collector started by itself, and apart from them the ones the ACL runs before freezing."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self.deliberate: list[float] = []
        self.in_freeze = False
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            (self.deliberate if self.in_freeze else self.pauses).append(time.perf_counter() - self._started)

    def watch(self, acl: AclService) -> None:
        """Tell the ACL's own collections (before each freeze) from the others."""
        freeze = acl.compiler.freeze_heap

        def marked() -> None:
            self.in_freeze = True
            try:
                freeze()
            finally:
                self.in_freeze = False

        acl.compiler.freeze_heap = marked  # type: ignore[method-assign]

    def report(self, out: dict[str, Any]) -> None:
        ms = [p * 1000 for p in self.pauses]
        out["gc_full_collections"] = len(ms)
        out["gc_full_median_ms"] = round(statistics.median(ms), 1) if ms else None
        out["gc_full_max_ms"] = round(max(ms), 1) if ms else None
        own = [p * 1000 for p in self.deliberate]
        out["gc_freeze_collections"] = len(own)
        out["gc_freeze_collect_median_ms"] = round(statistics.median(own), 1) if own else None


async def measure_scale(cameras: int, users: int, out: dict[str, Any], equivalence: bool = True) -> None:
    now = time.time()
    world = enrich(make_world(cameras=cameras, users=users, now=now), now=now)
    out.update(
        cameras=cameras,
        users=users,
        departments=len(world.departments),
        rules_total=world.rule_count(),
        p_rules=len(world.rules),
    )
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(tmp)
        app = create_app(settings)
        ld = app.state.ld
        await asyncio.to_thread(ld.db.migrate)
        await populate(ld.db, world)
        acl: AclService = ld.acl
        answers: AccessDecider = ld.authorizer  # what requests ask
        t0 = time.perf_counter()
        await acl.load()
        out["cold_load_s"] = round(time.perf_counter() - t0, 3)
        out["gc_tracked_objects"] = len(gc.get_objects())
        out["gc_frozen_objects"] = gc.get_freeze_count()
        t0 = time.perf_counter()
        gc.collect()
        out["gc_collect_after_load_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        loads = []
        for _ in range(3):
            other = build_acl(settings.acl, ld.db, ld.store, ld.audit, sessions=[])
            t0 = time.perf_counter()
            await other.load()
            loads.append(time.perf_counter() - t0)
        out["load_median_s"] = round(statistics.median(loads), 3)
        del other
        pauses = FullCollections()
        pauses.watch(acl)
        gc.callbacks.append(pauses)
        fixes = feed_positions(acl, now)
        out["foreign_trucks"] = len(fixes)

        rnd = random.Random(3)
        subjects = [acl.decider.subject_for(u, f"user{u}", "operator") for u in range(1, users + 1)]
        cam_ids = [c[0] for c in world.cameras]
        out["distinct_subject_sets"] = len({answers.keys(s) for s in subjects})

        # First calls after the cache was dropped (what each caller pays once after a change).
        acl.decider.index.invalidate()
        amiss, vmiss = [], []
        for sub in rnd.sample(subjects, min(2000, users)):
            t = time.perf_counter_ns()
            answers.authorize(sub, "view_live", cam_ids[rnd.randrange(cameras)])
            amiss.append((time.perf_counter_ns() - t) / 1000)
        acl.decider.index.invalidate()
        for sub in rnd.sample(subjects, min(2000, users)):
            t = time.perf_counter_ns()
            answers.visible_cameras(sub, "view_live")
            vmiss.append((time.perf_counter_ns() - t) / 1e6)
        out["authorize_miss_p99_us"] = round(pct(amiss, 99), 1)
        out["visible_miss_p50_ms"] = round(statistics.median(vmiss), 3)
        out["visible_miss_p99_ms"] = round(pct(vmiss, 99), 3)

        rss0 = rss_mb()
        for action in ("view_snapshot", "view_live", "manage"):
            for sub in subjects:
                answers.visible_cameras(sub, action)
        out["cache_entries"] = len(acl.decider.index._cache)
        out["rss_growth_all_answers_cached_mb"] = round(rss_mb() - rss0, 1)

        times = []
        for _ in range(100_000):
            sub = subjects[rnd.randrange(users)]
            cid = cam_ids[rnd.randrange(cameras)]
            t = time.perf_counter_ns()
            answers.authorize(sub, "view_live", cid)
            times.append((time.perf_counter_ns() - t) / 1000)
        out["authorize_p50_us"] = round(statistics.median(times), 2)
        out["authorize_p99_us"] = round(pct(times, 99), 2)
        vtimes = []
        for _ in range(20_000):
            sub = subjects[rnd.randrange(users)]
            t = time.perf_counter_ns()
            answers.visible_cameras(sub, "view_live")
            vtimes.append((time.perf_counter_ns() - t) / 1e6)
        out["visible_p99_ms"] = round(pct(vtimes, 99), 4)
        await measure_preview(acl, out)

        # A user who sees every camera (district centre), listing over HTTP.
        async with app.router.lifespan_context(app):
            from acl.users import upsert_user

            async with ld.db.session() as s:
                boss, _ = await upsert_user(s, "boss", "bench-password-1", Role.operator)
            await acl.changes.user_changed(boss.id, Role.operator, True)
            await acl.changes.change(
                "bench", "boss joins", lambda: acl.policy.set_membership("bench", boss.id, "district")
            )
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
                # The store re-reads its in-memory inventory after a write or every few seconds;
                # the request that triggers it pays this.
                rl = []
                for _ in range(3):
                    ld.store.invalidate()
                    t1 = time.perf_counter()
                    await c.get("/api/cameras?limit=100", headers=h)
                    rl.append((time.perf_counter() - t1) * 1000)
                out["list_api_after_inventory_reload_ms"] = round(statistics.median(rl), 1)

            # Policy changes answered correctly in the same process.
            probe = subjects[0]
            dept = sorted(probe.departments)[0]
            hidden = [c for c in cam_ids if not answers.authorize(probe, "view_live", c)][:7]
            ct, answered = [], []
            patch = acl.compiler.patch
            for cid in hidden:
                seen_at: list[float] = []

                def patched(changes: Any, revision: int, cid: str = cid, seen_at: list[float] = seen_at) -> None:
                    # The moment the index is patched, every request's answer includes the grant.
                    patch(changes, revision)
                    if cid in answers.visible_cameras(probe, "view_live"):
                        seen_at.append(time.perf_counter())

                acl.compiler.patch = patched  # type: ignore[method-assign]
                t1 = time.perf_counter()
                await acl.changes.add_rule("bench", RuleSpec(f"dept:{dept}", f"cam:{cid}", "view_live"), "bench")
                ct.append((time.perf_counter() - t1) * 1000)
                answered.append((seen_at[0] - t1) * 1000)
            acl.compiler.patch = patch  # type: ignore[method-assign]
            out["change_visible_ms"] = round(statistics.median(answered), 2)
            out["change_visible_max_ms"] = round(max(answered), 2)
            out["change_call_ms"] = round(statistics.median(ct), 2)
            mt = []
            for k, unit in enumerate(("sd03", "sd04", "sd05")):
                joiner = subjects[100 + k]
                after = acl.decider.index.visible(answers.keys(joiner) | {f"dept:{unit}"}, "view_live", time.time())
                target = next(c for c in after if not answers.authorize(joiner, "view_live", c))

                def join(uid: int = joiner.user_id, unit: str = unit) -> Any:
                    return acl.policy.set_membership("bench", uid, unit)

                t1 = time.perf_counter()
                await acl.changes.change("bench", "join", join)
                ok = target in answers.visible_cameras(joiner, "view_live")
                mt.append((time.perf_counter() - t1) * 1000)
                assert ok
            out["change_membership_ms"] = round(statistics.median(mt), 2)

        # Reloads (a change made by another node or the CLI): their time, and whether the heap
        # frozen after each one stays the same size (nothing of the replaced policy kept).
        rt, frozen = [], []
        for _ in range(3):
            t1 = time.perf_counter()
            await acl.changes.reload("bench")
            rt.append(time.perf_counter() - t1)
            frozen.append(gc.get_freeze_count())
        out["reload_median_s"] = round(statistics.median(rt), 3)
        out["gc_frozen_after_each_reload"] = frozen
        gc.callbacks.remove(pauses)
        pauses.report(out)

        if not equivalence:
            await ld.db.close()
            return
        # A small full-scale sample against Casbin (each question scans every rule).
        engine = ld.db.sync_engine()
        t2 = time.perf_counter()
        ref = await asyncio.to_thread(
            reference_from_database,
            engine,
            home_district=settings.acl.home_district,
            district_geojson=settings.acl.district_geojson,
            positions=fixes,
            now=now,
        )
        out["full_scale_reference_build_s"] = round(time.perf_counter() - t2, 1)
        t2 = time.perf_counter()
        focus = rule_targets(world.rules) + [c for cams in acl.location.truck_cameras().values() for c in cams]
        res = compare_service(acl.decider, ref, 200, now=now, focus=focus, seed=5)
        out["equivalence_full_scale_pairs_checked"] = res.checked
        out["equivalence_full_scale_mismatches"] = res.mismatches
        out["casbin_enforce_full_scale_ms"] = round((time.perf_counter() - t2) / res.checked * 1000, 1)
        engine.dispose()
        await ld.db.close()


async def _max_loop_stall(work: Any) -> tuple[Any, float]:
    """Run ``work`` (an awaitable) with a 10 ms ticker beside it; the ticker's worst lateness."""
    stall = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal stall
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            stall = max(stall, time.perf_counter() - t - 0.01)

    tick = asyncio.create_task(ticker())
    try:
        return await work, stall
    finally:
        done.set()
        await tick


async def measure_preview(acl: AclService, out: dict[str, Any]) -> None:
    """Previewing a change (dry run, scratch index, before/after of every user it can reach), and
    the longest the event loop waited meanwhile (it must keep relaying video); the same ticker
    beside a plain sleep of as long shows what the busy machine itself adds."""
    st = acl.decider.state
    assert st is not None
    counts: dict[str, int] = {}
    for ms in st.memberships.values():
        for d, _ in ms:
            counts[d] = counts.get(d, 0) + 1
    dept = max(counts, key=lambda d: counts[d])
    group = max(st.groups, key=lambda g: acl.decider.index.target_bits(f"group:{g}").bit_count())
    cases = {
        "dept_grant": RuleSpec(f"dept:{dept}", f"group:{group}", "view_live", tag="bench-preview"),
        "everyone_deny": RuleSpec("*", f"group:{group}", "view_snapshot", "deny", tag="bench-preview"),
    }
    for name, spec in cases.items():
        times, stalls, idle = [], [], []
        for _ in range(3):
            t0 = time.perf_counter()
            (_, effects), stall = await _max_loop_stall(
                acl.previews.preview(lambda p, spec=spec: p.add_rule("bench", spec))  # type: ignore[misc]
            )
            took = time.perf_counter() - t0
            times.append(took)
            stalls.append(stall)
            idle.append((await _max_loop_stall(asyncio.sleep(took)))[1])
        out[f"preview_{name}_users_affected"] = max(e.users_gaining + e.users_losing for e in effects)
        out[f"preview_{name}_median_ms"] = round(statistics.median(times) * 1000, 1)
        out[f"preview_{name}_loop_max_stall_ms"] = round(max(stalls) * 1000, 1)
        out[f"preview_{name}_loop_max_stall_idle_ms"] = round(max(idle) * 1000, 1)


async def measure_equivalence(out: dict[str, Any]) -> None:
    now = time.time()
    world = enrich(make_world(cameras=400, users=80, single_grants_per_station=2, denies=20, incidents=30, now=now))
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(tmp)
        app = create_app(settings)
        ld = app.state.ld
        await asyncio.to_thread(ld.db.migrate)
        await populate(ld.db, world)
        acl: AclService = ld.acl
        await acl.load()
        fixes = feed_positions(acl, now)
        engine = ld.db.sync_engine()
        ref = reference_from_database(
            engine,
            home_district=settings.acl.home_district,
            district_geojson=settings.acl.district_geojson,
            positions=fixes,
            now=now,
        )
        focus = rule_targets(world.rules) + [c for cams in acl.location.truck_cameras().values() for c in cams]
        t2 = time.perf_counter()
        res = compare_service(acl.decider, ref, 10_000, now=now, focus=focus)
        out["equivalence_pairs_checked"] = res.checked
        out["equivalence_mismatches"] = res.mismatches
        out["equivalence_allowed"] = res.allowed
        out["equivalence_rules"] = len(world.rules) + sum(len(v) for v in world.static_groups.values())
        out["equivalence_s"] = round(time.perf_counter() - t2, 1)
        engine.dispose()
        await ld.db.close()


async def run(cameras: int, users: int, equivalence: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"gc_freeze": GC_FREEZE}
    await measure_scale(cameras, users, out, equivalence)
    if equivalence:
        await measure_equivalence(out)
    out["load_average"] = round(os.getloadavg()[0], 1)
    out["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cameras", type=int, default=20_000)
    ap.add_argument("--users", type=int, default=5_000)
    ap.add_argument("--gc-freeze", choices=["on", "off"], default="on", help="acl.gc_freeze (default on)")
    ap.add_argument("--no-equivalence", action="store_true", help="skip the Casbin comparisons")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    global GC_FREEZE
    GC_FREEZE = args.gc_freeze == "on"
    res = asyncio.run(run(args.cameras, args.users, not args.no_equivalence))
    line = json.dumps(res, ensure_ascii=False)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(line + "\n", encoding="utf-8")
    print(line)


if __name__ == "__main__":
    main()
