"""The operator console in Chromium with the district-scale sample loaded (issue 19's speed targets).

Loads the district sample (:func:`fixtures.demo.load_district`: 6,945 cameras, 1,102 vehicles, the
demo's logins and policy) into a fresh data dir, starts ``liandong serve`` on it in its own process
with the fixture cameras, feeds a position for every vehicle every ``--feed-every`` seconds (as a
tracking system would: all 1,102 move), then drives Debian's Chromium (headless, the flags of
``tests/web/conftest.py``) logged in as the demo ``admin`` (sees every camera):

- first paint after login: the login form submitted -> the first camera rows painted (the frame
  after they exist), and the first camera-list page's API answer;
- thumbnails of the visible rows: first rows painted -> every visible row's thumbnail decoded;
- scroll of the camera list: mouse-wheel steps over the list for ``--scroll-s`` seconds, through
  thousands of rows; frame intervals (requestAnimationFrame) and long tasks;
- the map with every vehicle moving: ``--map-s`` seconds of the map view while all vehicles move;
  markers shown, frame intervals and long tasks.

Long tasks are Chromium's own (PerformanceObserver ``longtask``: every task over 50 ms on the
page's main thread), counted per phase. Prints (and with ``--out``, writes) one JSON object with
the targets. Machine: the shared 2-core box with other engineers' test runs (the load average is
recorded); headless Chromium without a GPU. Usage:
``python -m bench.console_speed [--rounds N] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from fixtures.camera_server import FixtureCameraServer, free_port

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# The flags of tests/web/conftest.py (../shared/notes/stack-facts.md): no mDNS, no background traffic.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
ADMIN, ADMIN_PW = "admin", "liandong-admin"  # the demo's login (fixtures/demo.py DEMO_USERS)
FEED, FEED_PW = "bench-feed", "bench-feed-password"
TARGETS = {
    "first_paint_ms": 1500,
    "thumbnails_ms": 1000,
    "scroll_long_tasks_over_50ms": 0,
    "map_long_tasks_over_50ms": 0,
    "map_markers_min": 1000,
}

# Before any page script: every long task (> 50 ms) with the phase the bench was in, and frame times.
_OBSERVE = """
window.__phase = "load";
window.__long = [];
window.__frames = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__long.push({phase: window.__phase, ms: e.duration, at: e.startTime});
}).observe({type: "longtask", buffered: true});
const tick = (t) => { window.__frames.push([window.__phase, t]); requestAnimationFrame(tick); };
requestAnimationFrame(tick);
"""


def _prepare(data_dir: Path, camera_port: int) -> dict[str, float]:
    """The district sample and a GPS-feed login, into ``data_dir`` (what ``make demo`` loads)."""
    from acl.models import Role
    from acl.users import create_user
    from fixtures.demo import load_district
    from gateway.settings import load_settings

    settings = load_settings(None, data_dir=data_dir)
    took = asyncio.run(load_district(settings.database_url, data_dir, camera_port))
    asyncio.run(create_user(settings.database_url, FEED, FEED_PW, Role.integration))
    return took


@contextlib.contextmanager
def _serve(data_dir: Path) -> Iterator[str]:
    """``liandong serve`` on the loaded data dir; its base URL once ``/readyz`` answers 200."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LIANDONG_DATA_DIR": str(data_dir),
        "LIANDONG_ACL__DISTRICT_GEOJSON": str(ROOT / "fixtures" / "district.geojson"),
        "LIANDONG_LOG__LEVEL": "WARNING",
    }
    port = free_port("127.0.0.1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=ROOT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("gateway did not become ready")
            time.sleep(0.3)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Feeder(threading.Thread):
    """A tracking system: a fix for every vehicle every ``every`` seconds, along the demo's routes."""

    def __init__(self, base: str, every: float) -> None:
        super().__init__(daemon=True, name="bench-gps-feed")
        from fixtures.demo import replay_plan
        from fixtures.district_sample import generate_district

        self.plan = replay_plan(generate_district().vehicles, ("bus-001", "truck-681"))
        self.base, self.every = base, every
        self.stop_ = threading.Event()
        self.posts: list[float] = []  # seconds per POST
        self.errors = 0

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as c:
            tok = c.post("/api/auth/token", data={"username": FEED, "password": FEED_PW}).json()["access_token"]
            headers = {"Authorization": f"Bearer {tok}"}
            step = 0
            while not self.stop_.is_set():
                now = time.time()
                fixes = [
                    {"vehicle_id": vid, "lat": r[step % len(r)][0], "lon": r[step % len(r)][1], "time": now}
                    for vid, r in self.plan.items()
                ]
                t = time.perf_counter()
                r = c.post("/api/vehicles/positions", json=fixes, headers=headers)
                self.posts.append(time.perf_counter() - t)
                self.errors += r.status_code >= 400
                step += 1
                self.stop_.wait(self.every)


def _frame_stats(frames: list[list[Any]], phase: str) -> dict[str, float]:
    times = [t for p, t in frames if p == phase]
    gaps = sorted(b - a for a, b in itertools.pairwise(times))
    if not gaps:
        return {"frames": 0}
    span = times[-1] - times[0]
    return {
        "frames": len(times),
        "fps": round((len(times) - 1) / span * 1000, 1) if span else 0.0,
        "frame_ms_p50": round(statistics.median(gaps), 1),
        "frame_ms_p95": round(gaps[int(0.95 * (len(gaps) - 1))], 1),
        "frame_ms_max": round(gaps[-1], 1),
    }


async def _until(page: Any, expression: str, timeout_s: float) -> bool:
    """Poll ``expression`` in the page until it is true (False at the deadline). Not
    ``wait_for_function``: its predicate is compiled with eval, which the console's CSP refuses."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await page.evaluate(expression):
            return True
        await asyncio.sleep(0.02)
    return False


async def _one_round(base: str, scroll_s: float, map_s: float) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        with tempfile.TemporaryDirectory(prefix="console-speed-") as profile:
            ctx = await p.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1600, "height": 900},
            )
            try:
                page = await ctx.new_page()
                await page.add_init_script(_OBSERVE)
                await page.goto(base + "/")
                await page.wait_for_selector("#username")
                await page.fill("#username", ADMIN)
                await page.fill("#password", ADMIN_PW)
                await page.evaluate("window.__phase = 'login'; window.__t0 = performance.now()")
                await page.click("#login-form button[type=submit]")
                await page.wait_for_selector("#camera-list li[data-camera]", timeout=60_000)
                # The frame after the rows exist: when they are on screen.
                painted = "new Promise(r => requestAnimationFrame(() => setTimeout(() => r(performance.now()))))"
                first_paint = await page.evaluate(painted) - await page.evaluate("window.__t0")
                await page.evaluate("window.__t1 = performance.now()")
                api_ms = await page.evaluate(
                    "performance.getEntriesByType('resource').filter(e => e.name.includes('/api/cameras?'))"
                    ".map(e => e.duration)"
                )
                # Every visible row's thumbnail decoded (the rows under the list's bottom edge excluded).
                thumbs_done = """(() => {
                  const box = document.getElementById('camera-scroll').getBoundingClientRect();
                  const rows = [...document.querySelectorAll('#camera-list li[data-camera]')].filter(li => {
                    const r = li.getBoundingClientRect(); return r.top >= box.top && r.bottom <= box.bottom; });
                  return rows.length > 0 && rows.every(li => li.querySelector('img.thumb').naturalWidth > 0);
                })()"""
                thumbs_ms: float | None = None
                if await _until(page, thumbs_done, 30):
                    thumbs_ms = await page.evaluate("performance.now() - window.__t1")
                total = int(await page.evaluate("document.getElementById('camera-list').offsetHeight / 60"))

                # Scroll: wheel steps over the list, as a user flicking through it.
                await page.evaluate("window.__phase = 'scroll'")
                box = await page.locator("#camera-scroll").bounding_box()
                assert box is not None
                await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                end = time.monotonic() + scroll_s
                steps = 0
                while time.monotonic() < end:
                    await page.mouse.wheel(0, 600)
                    steps += 1
                    await page.wait_for_timeout(16)
                scrolled = await page.evaluate("document.getElementById('camera-scroll').scrollTop / 60")
                await page.evaluate("window.__phase = 'after-scroll'")
                await page.wait_for_timeout(500)

                # The map with every vehicle moving.
                await page.evaluate("window.__phase = 'map-open'")
                await page.click("#views button[data-view='map']")
                if not await _until(page, "Number(document.getElementById('map').dataset.vehicles || 0) >= 1000", 60):
                    print("the map never showed 1,000 vehicles", file=sys.stderr)
                await page.evaluate("window.__phase = 'map'")
                await page.wait_for_timeout(map_s * 1000)
                markers = int(await page.evaluate("Number(document.getElementById('map').dataset.vehicles || 0)"))
                longs: list[dict[str, Any]] = await page.evaluate("window.__long")
                frames: list[list[Any]] = await page.evaluate("window.__frames")
            finally:
                await ctx.close()

    def long_in(phase: str) -> list[float]:
        return sorted((round(e["ms"]) for e in longs if e["phase"] == phase), reverse=True)

    return {
        "first_paint_ms": round(first_paint),
        "first_list_page_api_ms": round(api_ms[0]) if api_ms else None,
        "thumbnails_ms": round(thumbs_ms) if thumbs_ms is not None else None,
        "cameras_in_list": total,
        "scroll": {
            "seconds": scroll_s,
            "wheel_steps": steps,
            "rows_scrolled": round(scrolled),
            **_frame_stats(frames, "scroll"),
            "long_tasks_ms": long_in("scroll"),
        },
        "map": {
            "seconds": map_s,
            "markers": markers,
            **_frame_stats(frames, "map"),
            "long_tasks_ms": long_in("map"),
            "opening_long_tasks_ms": long_in("map-open"),
        },
        "login_long_tasks_ms": long_in("login"),
    }


def run(rounds: int, scroll_s: float, map_s: float, feed_every: float) -> dict[str, Any]:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="console-speed-") as tmp, FixtureCameraServer() as cams:
        data_dir = Path(tmp) / "data"
        took = _prepare(data_dir, cams.port)
        with _serve(data_dir) as base:
            feeder = Feeder(base, feed_every)
            feeder.start()
            try:
                results = [asyncio.run(_one_round(base, scroll_s, map_s)) for _ in range(rounds)]
            finally:
                feeder.stop_.set()
                feeder.join(30)
    load_after = os.getloadavg()

    def med(key: str) -> float | None:
        vals = [r[key] for r in results if r[key] is not None]
        return round(statistics.median(vals)) if vals else None

    scroll_long = [len(r["scroll"]["long_tasks_ms"]) for r in results]
    map_long = [len(r["map"]["long_tasks_ms"]) for r in results]
    summary = {
        "first_paint_ms_median": med("first_paint_ms"),
        "thumbnails_ms_median": med("thumbnails_ms"),
        "scroll_fps_median": statistics.median(r["scroll"].get("fps", 0) for r in results),
        "scroll_long_tasks_over_50ms": scroll_long,
        "map_markers": [r["map"]["markers"] for r in results],
        "map_fps_median": statistics.median(r["map"].get("fps", 0) for r in results),
        "map_long_tasks_over_50ms": map_long,
    }
    fp, th = summary["first_paint_ms_median"], summary["thumbnails_ms_median"]
    meets = {
        "first_paint": fp is not None and fp <= TARGETS["first_paint_ms"],
        "thumbnails": th is not None and th <= TARGETS["thumbnails_ms"],
        "scroll_no_long_task": max(scroll_long) == 0,
        "map_no_long_task": max(map_long) == 0,
        "map_1000_markers": min(summary["map_markers"]) >= TARGETS["map_markers_min"],
    }
    return {
        "bench": "console_speed",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        "shared with other engineers' test runs; headless Chromium without GPU",
        "loadavg_1m": [round(load_before[0], 1), round(load_after[0], 1)],
        "district_load_s": round(took["total"], 1),
        "feed": {
            "every_s": feed_every,
            "vehicles": len(feeder.plan),
            "posts": len(feeder.posts),
            "errors": feeder.errors,
            "post_ms_p50": round(statistics.median(feeder.posts) * 1000) if feeder.posts else None,
        },
        "targets": TARGETS,
        "summary": summary,
        "meets": meets,
        "rounds": results,
    }


def main() -> None:
    """Run and print (and with ``--out``, write) the JSON result."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3, help="browser sessions (fresh profile each)")
    ap.add_argument("--scroll-s", type=float, default=8.0)
    ap.add_argument("--map-s", type=float, default=15.0)
    ap.add_argument("--feed-every", type=float, default=2.0, help="seconds between position batches")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    result = run(args.rounds, args.scroll_s, args.map_s, args.feed_every)
    text = json.dumps(result, ensure_ascii=False, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
