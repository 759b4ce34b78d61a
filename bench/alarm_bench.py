"""Alarm benchmark: signed ``POST /api/alarms`` -> ``incident.opened`` at a connected SSE console,
and (``--browser N``) alarm POST -> first decoded frame of the bus camera in a real Chromium console.

Events: in-process gateway (uvicorn on loopback), 200 fixed cameras in 13 sub-districts, routing to
the district centre, the police and the area's sub-district centre (3 departments x 3 cameras = 9
incident grants per alarm), an admin console subscribed to ``/api/events``; 100 alarms at random
places, one at a time.

Browser: the fixture camera server (720p25 H.264, 2 s GOP), an operator of the police logged in to
the console in Debian's Chromium; per trial a new bus camera that the gateway is not pulling, a
panic alarm naming its bus, and the time until the console's tile presents its first frame (clock
of the page, ``requestVideoFrameCallback``). Between trials the camera is closed in the hub and the
fixture stops serving it, so every trial is cold.

Prints one JSON line with p50/p95/max in ms. Usage:
``python -m bench.alarm_bench [--alarms 100] [--browser 8] [--out FILE]``.
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
                    "area": f"area-{i % 13}",
                }
                for i in range(200)
            ]
            await import_cameras(g.ld.store, cams)
            await g.ld.inventory_changed()
            for dept in ("district", "police"):
                await g.client.put(f"/api/admin/departments/{dept}", json={"name": dept}, headers=admin)
            for a in range(13):  # the sub-district centres: each is on duty for its area too
                centre = {"name": f"centre {a}", "level": "subdistrict", "area": f"area-{a}"}
                await g.client.put(f"/api/admin/departments/sd-{a}", json=centre, headers=admin)
            secret = (await g.client.post("/api/admin/alarm-sources", json={"name": "s"}, headers=admin)).json()[
                "secret"
            ]
            lat_ms: list[float] = []
            async with (
                httpx.AsyncClient(base_url=g.base_url, timeout=10) as c,
                c.stream("GET", "/api/events", headers=admin) as stream,
            ):
                lines = stream.aiter_lines()
                while not (await lines.__anext__()).startswith(": connected"):
                    pass
                for i in range(n):
                    body: dict[str, Any] = {
                        "alarm_id": f"B-{i}",
                        "lat": 31.0 + rnd.random() * 0.2,
                        "lon": 121.32 + rnd.random() * 0.2,
                    }
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


# Records when the tile of ``camera`` presents its first frame (epoch ms, the page's clock). The tile's
# video element appears when the console hears the alarm, well before WebRTC delivers a frame.
FIRST_FRAME_JS = """(camera) => {
  window.__firstFrame = null;
  const sel = `.tile[data-camera='${camera}'] video`;
  const watch = (v) => v.requestVideoFrameCallback((now) => { window.__firstFrame = performance.timeOrigin + now; });
  const found = document.querySelector(sel);
  if (found) return watch(found);
  new MutationObserver((_m, obs) => {
    const v = document.querySelector(sel);
    if (v) { obs.disconnect(); watch(v); }
  }).observe(document.body, {subtree: true, childList: true});
}"""


async def run_browser(trials: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from camera_registry.inventory import import_vehicles
    from fixtures.camera_server import FixtureCameraServer
    from tests.live import PASSWORD
    from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS
    from tests.web.helpers import login

    ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, FixtureCameraServer(mounts=("h264",)) as cams:
        settings = load_settings(None, data_dir=Path(tmp) / "data", log={"level": "WARNING"})
        async with live_gateway(settings) as g, async_playwright() as pw:
            admin = await g.add_user("admin", Role.admin)
            for dept in ("district", "police"):
                await g.client.put(f"/api/admin/departments/{dept}", json={"name": dept}, headers=admin)
            body = {"username": "op", "password": PASSWORD, "role": "operator"}
            uid = (await g.client.post("/api/admin/users", json=body, headers=admin)).json()["id"]
            await g.client.put(f"/api/admin/users/{uid}/memberships/police", json={}, headers=admin)
            secret = (await g.client.post("/api/admin/alarm-sources", json={"name": "s"}, headers=admin)).json()[
                "secret"
            ]
            ctx = await pw.chromium.launch_persistent_context(
                str(Path(tmp) / "profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            try:
                page = await ctx.new_page()
                await login(page, g, "op")
                for i in range(trials):
                    vid, cam = f"bus-{i}", f"bus-{i}-front"
                    await import_vehicles(g.ld.store, [{"id": vid, "kind": "bus", "plate": f"沪A{i:05d}"}])
                    camera = {"id": cam, "name": cam, "kind": "bus", "vehicle_id": vid, "source_url": cams.url("h264")}
                    assert (await g.client.post("/api/cameras", json=camera, headers=admin)).status_code == 201
                    await page.wait_for_timeout(500)  # the console's event stream is connected
                    await page.evaluate(FIRST_FRAME_JS, cam)
                    t0 = time.time() * 1000
                    alarm = {"alarm_id": f"P-{i}", "type": "panic", "vehicle_id": vid}
                    r = await g.client.post("/api/alarms", **signed(secret, alarm, source="s"))
                    assert r.status_code == 202, r.text
                    await page.wait_for_function("() => window.__firstFrame !== null", timeout=15_000)
                    ms.append(await page.evaluate("() => window.__firstFrame") - t0)
                    # Cold again for the next trial: the console closes its tiles, the hub the camera.
                    await page.reload()
                    await page.wait_for_selector("#console:not([hidden])")
                    await g.ld.hub.end_camera(cam, "benchmark")
                    for _ in range(100):
                        if cams.clients("h264") == 0:
                            break
                        await asyncio.sleep(0.05)
            finally:
                await ctx.close()
    ms.sort()
    return {
        "browser_trials": trials,
        "alarm_to_first_frame_p50_ms": round(statistics.median(ms)),
        "alarm_to_first_frame_p95_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))]),
        "alarm_to_first_frame_max_ms": round(ms[-1]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--alarms", type=int, default=100)
    ap.add_argument("--browser", type=int, default=0, help="trials in Chromium (0: none)")
    ap.add_argument("--out", type=Path, help="also append the JSON line to this file")
    args = ap.parse_args()
    out = asyncio.run(run(args.alarms))
    if args.browser:
        out |= asyncio.run(run_browser(args.browser))
    line = json.dumps(out)
    print(line)
    if args.out:
        with args.out.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
