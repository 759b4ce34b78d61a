"""Helpers for the console's browser tests: log in, grant a camera, wait for real playback."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from camera_registry.models import Camera
from camera_registry.schemas import CameraIn
from tests.live import PASSWORD, LiveGateway

# First frame within one GOP (2 s) + 3 s, with room to spare on a busy 2-core machine; then at least
# `frames` new frames presented (requestVideoFrameCallback counts frames the compositor really shows).
PLAYING_JS = """async ([sel, frames]) => {
  const deadline = Date.now() + 10000;
  let v = document.querySelector(sel);
  while (Date.now() < deadline && !(v && v.videoWidth > 0)) {
    await new Promise(r => setTimeout(r, 50));
    v = document.querySelector(sel);
  }
  if (!v || v.videoWidth === 0) return {width: 0, height: 0, frames: 0};
  let n = 0;
  const t0 = performance.now();
  await new Promise(resolve => {
    const tick = () => { n++; if (n >= frames) resolve(); else v.requestVideoFrameCallback(tick); };
    v.requestVideoFrameCallback(tick);
    setTimeout(resolve, 5000);
  });
  return {width: v.videoWidth, height: v.videoHeight, frames: n, fps: n / ((performance.now() - t0) / 1000)};
}"""


async def login(page: Any, g: LiveGateway, user: str, password: str = PASSWORD) -> None:
    """Open the console and log in through its form."""
    await login_at(page, g.base_url, user, password)


async def login_at(page: Any, base_url: str, user: str, password: str) -> None:
    """Open the console at ``base_url`` (any gateway, e.g. one node of a cluster) and log in through its form."""
    await page.goto(base_url + "/")
    await page.fill("#username", user)
    await page.fill("#password", password)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#console:not([hidden])")


async def playing(page: Any, camera_id: str, frames: int = 20) -> dict[str, Any]:
    """Wait for the camera's tile to show video; its size, frames counted and the page's first-frame time."""
    tile = f".tile[data-camera='{camera_id}']"
    result: dict[str, Any] = await page.evaluate(PLAYING_JS, [f"{tile} video", frames])
    ttff = await page.get_attribute(tile, "data-first-frame-ms")
    result["first_frame_ms"] = int(ttff) if ttff else None
    return result


async def add_operator(g: LiveGateway, admin: dict[str, str], username: str) -> int:
    """Create an operator the way a security admin does (the admin API); the new user's id."""
    body = {"username": username, "password": PASSWORD, "role": "operator"}
    r = await g.client.post("/api/admin/users", json=body, headers=admin)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def user_id(g: LiveGateway, admin: dict[str, str], username: str) -> int:
    """A user's id, from the admin API."""
    users = (await g.client.get("/api/admin/users", headers=admin)).json()
    return int(next(u["id"] for u in users if u["username"] == username))


async def grant(g: LiveGateway, admin: dict[str, str], user: str, dept: str, target: str) -> None:
    """Make ``user`` a member of ``dept`` and let the department view ``target`` live (via the admin API)."""
    r = await g.client.put(f"/api/admin/departments/{dept}", json={"name": dept}, headers=admin)
    assert r.status_code in (200, 422), r.text
    uid = await user_id(g, admin, user)
    r = await g.client.put(f"/api/admin/users/{uid}/memberships/{dept}", json={}, headers=admin)
    assert r.status_code == 200, r.text
    r = await g.client.post(
        "/api/admin/rules", json={"subject": f"dept:{dept}", "target": target, "action": "view_live"}, headers=admin
    )
    assert r.status_code == 201, r.text


async def add_many_cameras(g: LiveGateway, n: int, url: str, areas: list[str]) -> list[str]:
    """Register ``n`` cameras in one bulk insert (a district's inventory); their ids, sorted."""
    ids = [f"bulk-{i:05d}" for i in range(n)]
    rows = [
        CameraIn(id=cid, name=f"路口 {i}", source_url=url, area=areas[i % len(areas)], department="city").model_dump()
        for i, cid in enumerate(ids)
    ]
    async with g.ld.db.session() as s:
        await s.execute(insert(Camera), rows)
    g.ld.store.invalidate()
    await g.ld.inventory_changed()
    return ids
