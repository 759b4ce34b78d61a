"""Server-Sent Events over real HTTP: an alarm reaches permitted consoles only (a browser-style
cookie session included), a reconnect with Last-Event-ID resumes, and logging out ends the stream."""

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
from tests.live import PASSWORD, live_gateway, window_rule

_LINES: dict[int, Any] = {}


async def read_events(
    resp: httpx.Response, n: int, timeout: float = 5.0, skip: tuple[str, ...] = ("policy.changed",)
) -> list[dict[str, Any]]:
    """Up to ``n`` events from an open stream (fewer if the timeout passes first; then the stream
    cannot be read again), leaving out ``skip`` (incident grants also tell the console its policy changed)."""
    lines = _LINES.setdefault(id(resp), resp.aiter_lines())  # one line iterator per response
    out: list[dict[str, Any]] = []
    cur: dict[str, Any] = {}
    try:
        async with asyncio.timeout(timeout):
            async for line in lines:
                if line.startswith("id: "):
                    cur["id"] = int(line[4:])
                elif line.startswith("event: "):
                    cur["event"] = line[7:]
                elif line.startswith("data: "):
                    cur["data"] = json.loads(line[6:])
                elif line == "" and cur:
                    if cur.get("event") not in skip:
                        out.append(cur)
                    cur = {}
                    if len(out) >= n:
                        return out
    except TimeoutError:
        pass  # fewer events than asked for: the caller checks
    return out


async def test_alarm_event_to_permitted_consoles_resume_and_logout(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=tmp_path, alarms={"prewarm_s": 0}, events={"max_streams_per_user": 2})
    async with live_gateway(settings) as g:
        admin = await g.add_user("admin", Role.admin)
        for dept in ("district", "police"):
            await g.client.put(f"/api/admin/departments/{dept}", json={"name": dept}, headers=admin)
        await g.add_camera(admin, "fx-1", "rtsp://127.0.0.1:9/x", lat=31.15, lon=121.35, area="七宝镇")
        body = {"username": "pol", "password": PASSWORD, "role": "operator"}
        uid = (await g.client.post("/api/admin/users", json=body, headers=admin)).json()["id"]
        r = await g.client.put(f"/api/admin/users/{uid}/memberships/police", json={}, headers=admin)
        assert r.status_code == 200, r.text
        outsider = await g.add_user("outsider")
        secret = (await g.client.post("/api/admin/alarm-sources", json={"name": "bus-gps"}, headers=admin)).json()[
            "secret"
        ]
        async with (
            httpx.AsyncClient(base_url=g.base_url, timeout=10) as browser,
            httpx.AsyncClient(base_url=g.base_url, timeout=10) as c2,
        ):
            # The console logs in like the browser does: a session cookie, no bearer header.
            r = await browser.post("/api/auth/login", json={"username": "pol", "password": PASSWORD})
            assert r.status_code == 200 and "Authorization" not in browser.headers
            async with (
                browser.stream("GET", "/api/events") as s1,
                c2.stream("GET", "/api/events", headers=outsider) as s2,
            ):
                assert s1.status_code == 200 and s1.headers["content-type"].startswith("text/event-stream")
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
            async with browser.stream("GET", "/api/events", headers={"Last-Event-ID": str(ev["id"])}) as s3:
                missed = await read_events(s3, 2)
                # The dispatched unit's console is told to open the cameras, then of the new state.
                assert [m["event"] for m in missed] == ["incident.dispatched", "incident.updated"]
                assert missed[0]["data"]["dispatched_to"] == "police" and missed[0]["data"]["cameras"] == ["fx-1"]
                assert missed[1]["data"]["state"] == "dispatched"
                assert ev["id"] < missed[0]["id"] < missed[1]["id"]
                # Per-user cap: two streams at most in these settings.
                async with browser.stream("GET", "/api/events") as s4:
                    await asyncio.sleep(0.2)  # the server registers the stream as it starts sending
                    async with browser.stream("GET", "/api/events") as s5:
                        assert s4.status_code == 200 and s5.status_code == 429
                # Logging out ends the open stream at once.
                csrf = browser.cookies.get("liandong_csrf") or ""
                r = await browser.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
                assert r.status_code == 200, r.text
                ended = await read_events(s3, 1, timeout=3.0)
                assert ended and ended[0]["event"] == "end" and ended[0]["data"]["reason"] == "login ended"
            assert (await browser.get("/api/events")).status_code == 401


async def test_a_validity_window_opening_and_closing_tells_the_consoles_it_reaches(tmp_path: Path) -> None:
    """A grant that starts a moment from now and ends a moment later: when it starts and when it ends,
    by itself, the consoles of the users it reaches get policy.changed (as for an edit) and their
    camera lists have changed by then; a console it does not reach gets nothing."""
    settings = load_settings(None, data_dir=tmp_path)
    async with live_gateway(settings) as g:
        admin = await g.add_user("admin", Role.admin)
        for dept in ("police", "transport"):
            await g.client.put(f"/api/admin/departments/{dept}", json={"name": dept}, headers=admin)
        await g.add_camera(admin, "fx-1", "rtsp://127.0.0.1:9/x")
        heads: dict[str, dict[str, str]] = {}
        for name, dept in (("pol", "police"), ("tr", "transport")):
            heads[name] = await g.add_user(name)
            users = (await g.client.get("/api/admin/users", headers=admin)).json()
            uid = next(u["id"] for u in users if u["username"] == name)
            r = await g.client.put(f"/api/admin/users/{uid}/memberships/{dept}", json={}, headers=admin)
            assert r.status_code == 200, r.text

        async def cameras(who: str) -> set[str]:
            r = await g.client.get("/api/cameras", headers=heads[who])
            return {c["id"] for c in r.json()["items"]}

        async with (
            httpx.AsyncClient(base_url=g.base_url, timeout=10) as c1,
            httpx.AsyncClient(base_url=g.base_url, timeout=10) as c2,
            c1.stream("GET", "/api/events", headers=heads["pol"]) as pol_events,
            c2.stream("GET", "/api/events", headers=heads["tr"]) as tr_events,
        ):
            assert pol_events.status_code == 200 and tr_events.status_code == 200
            await asyncio.sleep(0.2)
            start = round(time.time() + 2.0, 3)  # windows are stored to the millisecond
            rule = window_rule("dept:police", "cam:fx-1", "view_snapshot", start, start + 2.0)
            r = await g.client.post("/api/admin/rules", json=rule, headers=admin)
            assert r.status_code == 201, r.text
            edited = await read_events(pol_events, 1, skip=())
            assert [e["event"] for e in edited] == ["policy.changed"]  # the edit itself
            assert await cameras("pol") == set()  # not yet
            opened = await read_events(pol_events, 1, timeout=4.0, skip=())
            opened_at = time.time()
            assert [e["event"] for e in opened] == ["policy.changed"]
            assert start <= opened_at < start + 1.5  # the sweep runs once a second
            assert await cameras("pol") == {"fx-1"}
            closed = await read_events(pol_events, 1, timeout=4.0, skip=())
            closed_at = time.time()
            assert [e["event"] for e in closed] == ["policy.changed"]
            assert start + 2.0 <= closed_at < start + 3.5
            assert await cameras("pol") == set()
            assert opened[0]["data"]["revision"] == edited[0]["data"]["revision"]  # nothing was stored
            assert await read_events(pol_events, 1, timeout=1.5, skip=()) == []  # once per edge
            # The transport console: no event for the edit nor for the window (the rule is not theirs).
            assert await read_events(tr_events, 1, timeout=0.5, skip=()) == []
