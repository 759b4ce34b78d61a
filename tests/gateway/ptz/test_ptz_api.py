"""PTZ through the API against the fixture's ONVIF camera, its position read back: who may steer,
take-over by priority (and the old holder's move stopped), equal priority waits for the idle
release, department priorities, a vanished browser's move stopped, presets, incident locks, audit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from camera_registry.ptz_endpoints import PtzEndpoints
from fixtures.onvif_camera import OnvifCamera
from tests.acl.conftest import World
from tests.gateway.test_alarms import member, setup
from tests.gateway.test_incidents import open_incident

URL = "/api/cameras/qb-1/ptz"


@pytest.fixture(scope="module")
def camera() -> Iterator[OnvifCamera]:
    # This camera ignores ContinuousMove's Timeout: only the gateway's Stop ends a move.
    with OnvifCamera(clock_skew_s=-900, honour_timeout=False) as cam:
        yield cam


async def eventually(cond: Callable[[], Awaitable[bool]], deadline_s: float = 20.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if await cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def steerable(w: World, camera: OnvifCamera) -> None:
    ld = w.app.state.ld
    async with ld.db.session() as s:
        await PtzEndpoints(ld.db, ld.box, ld.store.networks).put(
            s, "qb-1", driver="onvif", url=camera.url, profile="main", username="admin", password="onvif-pass"
        )
    for subject, action in [
        ("dept:qibao", "ptz"),
        ("dept:police", "ptz_preset"),
        ("dept:transport", "view_live"),
    ]:
        await w.ok("POST", "/api/admin/rules", json={"subject": subject, "target": "cam:qb-1", "action": action})


async def test_steer_take_over_idle_release_and_watchdog(world: World, camera: OnvifCamera) -> None:
    w = world
    ld = w.app.state.ld

    def idle(seconds: float) -> None:
        # Long while refusals are asserted (a loaded machine cannot free the camera meanwhile),
        # short to let a session idle out.
        ld.ptz.settings = ld.ptz.settings.model_copy(update={"idle_release_s": seconds})

    idle(600)
    await steerable(w, camera)
    qb = await member(w, "qb-op", "qibao")  # sub-district centre: priority 50 by level
    qb2 = await member(w, "qb-op2", "qibao")
    pol = await member(w, "pol-op", "police")  # police: 100 by default
    viewer = await member(w, "tr-op", "transport")  # may watch, not steer

    async def cmd(who: dict[str, str], **body: Any) -> Any:
        return await w.client.post(URL, json=body, headers=who)

    # View-only users are refused (and audited); a bad body names the field.
    assert (await cmd(viewer, op="stop")).status_code == 403
    assert (await w.client.get(URL, headers=viewer)).status_code == 403
    assert any(a.action == "ptz" and a.username == "tr-op" for a in await ld.audit.query(kind="denied"))
    r = await cmd(qb, op="continuous", pan=2)
    assert r.status_code == 422 and "pan" in r.text

    # Capabilities, position read back, nobody holds it yet.
    st = (await w.client.get(URL, headers=qb)).json()
    assert st["capabilities"]["absolute"] and st["holder"] is None and st["position"]["moving"] is False

    # qibao steers: a continuous move (with a timeout) reaches the camera.
    r = await cmd(qb, op="continuous", pan=0.8, timeout_s=30)
    assert r.status_code == 200, r.text
    assert r.json()["holder"]["you"] and r.json()["timeout_s"] == 10.0  # capped at ptz.max_move_timeout_s
    assert camera.moving() and camera.ops()[-1] == "ContinuousMove"
    # Police take over at once: the camera is stopped before their command runs.
    n = len(camera.ops())
    r = await cmd(pol, op="absolute", pan=-0.5, tilt=0.25, zoom=0.5)
    assert r.status_code == 200, r.text
    assert camera.ops()[n:] == ["Stop", "AbsoluteMove"] and not camera.moving()
    assert camera.position() == pytest.approx((-0.5, 0.25, 0.5), abs=1e-3)
    pos = (await w.client.get(URL, headers=pol)).json()["position"]
    assert (pos["pan"], pos["tilt"], pos["zoom"]) == pytest.approx((-0.5, 0.25, 0.5), abs=1e-3)
    # The lower priority is refused while the police hold it, told who and for how long.
    r = await cmd(qb, op="continuous", pan=0.5)
    assert r.status_code == 409
    body = r.json()
    assert body["holder"]["unit_name"] == "公安" and 500 < body["seconds_left"] <= 600
    assert "公安" in body["detail"]
    takeovers = await ld.audit.query(kind="ptz.takeover")
    assert len(takeovers) == 1 and takeovers[0].username == "pol-op" and "qb-op" in (takeovers[0].detail or "")

    # Presets are a separate right: qibao may steer but not store one; police may.
    assert (await cmd(qb, op="set_preset", name="gate")).status_code == 403
    assert (await cmd(pol, op="set_preset", name="gate")).status_code == 200
    token = (await w.client.get(URL, headers=pol)).json()["presets"][0]["token"]

    # Equal priority waits for the idle release, then gets the camera.
    idle(0.5)
    await eventually(lambda: _ok(cmd(qb, op="goto_preset", preset=token)))
    assert camera.ops()[-1] == "GotoPreset"
    idle(600)
    assert (await cmd(qb2, op="home")).status_code == 409
    idle(0.5)
    await eventually(lambda: _ok(cmd(qb2, op="home")))
    idle(600)

    # A department's own priority (set by the security admin) beats the defaults.
    await w.ok(
        "PUT",
        "/api/admin/departments/qibao",
        json={"name": "七宝镇分中心", "level": "subdistrict", "area": "七宝镇", "ptz_priority": 300},
    )
    depts = {d["id"]: d for d in await w.ok("GET", "/api/admin/departments")}
    assert depts["qibao"]["ptz_priority"] == 300 and depts["police"]["ptz_priority"] is None
    bad = await w.client.put(
        "/api/admin/departments/qibao", headers=w.sec, json={"name": "x", "level": "subdistrict", "ptz_priority": -1}
    )
    assert bad.status_code == 422 and "ptz_priority" in bad.text
    idle(0.5)
    await eventually(lambda: _ok(cmd(pol, op="stop")))  # qb-op2's session idles out
    idle(600)
    assert (await cmd(qb, op="relative", pan=0.1, tilt=0)).status_code == 200  # 300 beats the police now
    assert (await cmd(pol, op="stop")).status_code == 409

    # A browser that vanishes mid-move: it stops renewing, and the gateway stops the camera
    # (this one ignores the move's timeout).
    n = len(camera.ops())
    r = await cmd(qb, op="continuous", tilt=0.5, timeout_s=0.5)
    assert r.status_code == 200 and camera.ops()[n] == "ContinuousMove"

    async def stopped() -> bool:
        return not camera.moving()

    await eventually(stopped)
    assert camera.ops()[n:] == ["ContinuousMove", "Stop"]

    # The session's moves are one audit row when it ends; presets and absolute moves one each.
    idle(0.5)

    async def session_rows() -> bool:
        await ld.ptz.sweep()
        return any(a.username == "qb-op" for a in await ld.audit.query(kind="ptz.session"))

    await eventually(session_rows)
    actions = [a.action for a in await ld.audit.query(kind="ptz")]
    assert "ptz:set_preset" in actions and "ptz:absolute" in actions and "ptz:goto_preset" in actions


async def _ok(call: Awaitable[Any]) -> bool:
    return bool((await call).status_code == 200)


async def test_login_end_stops_the_move_and_incident_lock(world: World, camera: OnvifCamera) -> None:
    w = world
    ld = w.app.state.ld
    await steerable(w, camera)
    await w.ok("POST", "/api/admin/rules", json={"subject": "dept:transport", "target": "cam:qb-1", "action": "ptz"})
    qb = await member(w, "qb-op", "qibao")
    tr = await member(w, "tr-op", "transport")
    r = await w.client.post(URL, json={"op": "continuous", "pan": -0.3, "timeout_s": 10}, headers=tr)
    assert r.status_code == 200 and camera.moving()
    # The holder logs out mid-move: the camera stops and the camera is free.
    assert (await w.client.post("/api/auth/logout", headers=tr)).status_code in (200, 204)
    assert not camera.moving() and camera.ops()[-1] == "Stop"
    tr = await w.client.post("/api/auth/token", data={"username": "tr-op", "password": "correct horse battery"})
    tr_h = {"Authorization": f"Bearer {tr.json()['access_token']}"}

    # An incident on bus-1 near qb-1: the sub-district centre in charge locks its cameras for its
    # handlers; transport (not among them) is refused while the lock lasts.
    secret = await setup(w)
    inc_id = await open_incident(w, secret)
    inc = (await w.client.get(f"/api/incidents/{inc_id}", headers=qb)).json()
    assert "qb-1" in inc["cameras"] and "transport" not in inc["departments"]
    # transport sees the incident (it may watch one of its cameras) but does not command it.
    assert (await w.client.post(f"/api/ptz/locks/{inc_id}", json={}, headers=tr_h)).status_code == 403
    r = await w.client.post(f"/api/ptz/locks/{inc_id}", json={"minutes": 30}, headers=qb)
    assert r.status_code == 200, r.text
    r = await w.client.post(URL, json={"op": "stop"}, headers=tr_h)
    assert r.status_code == 409 and r.json()["locked_by_incident"] == inc_id
    assert (await w.client.post(URL, json={"op": "stop"}, headers=qb)).status_code == 200
    assert (await w.client.get(URL, headers=qb)).json()["lock"]["incident_id"] == inc_id
    # Closing the incident lifts the lock.
    pol = await member(w, "pol-op", "police")
    for who, step, body in [
        (qb, "dispatch", {"department": "police"}),
        (pol, "acknowledge", {}),
        (pol, "onsite", {}),
        (pol, "resolve", {}),
        (qb, "confirm", {"result": "satisfied", "text": "已确认"}),
        (qb, "verify", {"passed": True, "text": "现场核实"}),
        (qb, "close", {}),
    ]:
        r = await w.client.post(f"/api/incidents/{inc_id}/{step}", json=body, headers=who)
        assert r.status_code == 200, r.text

    async def unlocked() -> bool:
        rows = sorted(a.action for a in await ld.audit.query(kind="ptz.lock"))
        return rows == ["ptz:lock", "ptz:unlock"] and await ld.ptz.holds.lock_of("qb-1") is None

    await eventually(unlocked)
    r = await w.client.post(URL, json={"op": "stop"}, headers=tr_h)  # no lock now; qibao still holds it
    assert r.status_code == 409 and "locked_by_incident" not in r.json() and r.json()["holder"]["unit"] == "qibao"
