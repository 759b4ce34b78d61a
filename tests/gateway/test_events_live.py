"""Server-Sent Events over real HTTP: an alarm reaches permitted consoles only, and resume works."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx

from acl.models import Role
from gateway.settings import load_settings
from tests.gateway.test_alarms import signed
from tests.live import live_gateway


async def read_events(resp: httpx.Response, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cur: dict[str, Any] = {}
    try:
        async with asyncio.timeout(timeout):
            async for line in resp.aiter_lines():
                if line.startswith("id: "):
                    cur["id"] = int(line[4:])
                elif line.startswith("event: "):
                    cur["event"] = line[7:]
                elif line.startswith("data: "):
                    cur["data"] = json.loads(line[6:])
                elif line == "" and cur:
                    out.append(cur)
                    cur = {}
                    if len(out) >= n:
                        return out
    except TimeoutError:
        pass  # fewer events than asked for: the caller checks
    return out


async def test_alarm_event_to_permitted_console_and_resume(tmp_path: Path) -> None:
    async with live_gateway(load_settings(None, data_dir=tmp_path)) as g:
        admin = await g.add_user("admin", Role.admin)
        for dept in ("district", "police"):
            await g.client.put(f"/api/admin/departments/{dept}", json={"name": dept}, headers=admin)
        await g.add_camera(admin, "fx-1", "rtsp://127.0.0.1:9/x", lat=31.15, lon=121.35, area="七宝镇")
        pol = await g.add_user("pol")
        users = (await g.client.get("/api/admin/users", headers=admin)).json()
        uid = next(u["id"] for u in users if u["username"] == "pol")
        await g.client.put(f"/api/admin/users/{uid}/memberships/police", json={}, headers=admin)
        outsider = await g.add_user("outsider")
        secret = (await g.client.post("/api/admin/alarm-sources", json={"name": "bus-gps"}, headers=admin)).json()[
            "secret"
        ]
        async with (
            httpx.AsyncClient(base_url=g.base_url, timeout=10) as c1,
            httpx.AsyncClient(base_url=g.base_url, timeout=10) as c2,
            c1.stream("GET", "/api/events", headers=pol) as s1,
            c2.stream("GET", "/api/events", headers=outsider) as s2,
        ):
            assert s1.headers["content-type"].startswith("text/event-stream")
            await asyncio.sleep(0.2)
            t0 = time.perf_counter()
            r = await g.client.post(
                "/api/alarms", **signed(secret, {"alarm_id": "E-1", "lat": 31.1501, "lon": 121.3501})
            )
            assert r.status_code == 202, r.text
            ev = (await read_events(s1, 1))[0]
            latency_ms = (time.perf_counter() - t0) * 1000
            assert ev["event"] == "incident.opened" and ev["data"]["cameras"] == ["fx-1"]
            assert ev["data"]["incident_id"] == r.json()["incident_id"]
            print(f"alarm POST -> incident.opened at the console: {latency_ms:.1f} ms")
            assert await read_events(s2, 1, timeout=1.0) == []  # nothing for a user who may not view fx-1
        # A console that reconnects with Last-Event-ID gets what it missed.
        await g.client.post(
            f"/api/incidents/{ev['data']['incident_id']}/dispatch", json={"department": "police"}, headers=admin
        )
        async with httpx.AsyncClient(base_url=g.base_url, timeout=10) as c3:
            async with c3.stream("GET", "/api/events", headers={**pol, "Last-Event-ID": str(ev["id"])}) as s3:
                missed = await read_events(s3, 1)
        assert missed[0]["event"] == "incident.updated" and missed[0]["data"]["state"] == "dispatched"
        assert missed[0]["id"] > ev["id"]
