"""The camera API: authentication, admin edits, validation, filters, pagination, secrets."""

from __future__ import annotations

import logging

import httpx
import pytest

from acl.models import Role
from tests.conftest import add_user, login

SECRET = "Pa55-w0rd-for-cam"


def cam(cid: str, **kw: object) -> dict[str, object]:
    return {"id": cid, "name": kw.pop("name", cid), "source_url": f"rtsp://admin:{SECRET}@10.1.2.3:554/ch1", **kw}


async def test_crud_validation_and_no_secret_leak(
    app_client: httpx.AsyncClient, admin_headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    c, h = app_client, admin_headers
    seen: list[str] = []

    async def call(method: str, url: str, **kw: object) -> httpx.Response:
        r = await c.request(method, url, headers=h, **kw)  # type: ignore[arg-type]
        seen.append(r.text)
        return r

    r = await call("POST", "/api/cameras", json=cam("qb-1", name="七宝老街", area="七宝镇", lat=31.15, lon=121.35))
    assert r.status_code == 201
    assert r.json()["source_url"] == "rtsp://10.1.2.3:554/ch1" and r.json()["has_credentials"] is True
    assert (await call("POST", "/api/cameras", json=cam("qb-1"))).status_code == 409
    bad = [
        (cam("x", source_url="file:///etc/passwd"), "source_url"),
        (cam("x", source_url=f"http://u:{SECRET}@1.2.3.4/"), "source_url"),
        (cam("x", lat=91, lon=0), "lat"),
        (cam("x", kind="boat"), "kind"),
        ({**cam("x"), "evil": True}, "evil"),
        (cam("bad id/../"), "id"),
        (cam("x", kind="bus"), "vehicle_id"),
    ]
    for body, field in bad:
        r = await call("POST", "/api/cameras", json=body)
        assert r.status_code == 422, r.text
        assert any(field in e["field"] or field in e["message"] for e in r.json()["detail"]), r.text
    # Patch keeps stored credentials when the new URL has none; a bad patch changes nothing.
    r = await call("PATCH", "/api/cameras/qb-1", json={"source_url": "rtsp://10.1.2.4/ch2", "name": "新名字"})
    assert r.status_code == 200 and r.json()["has_credentials"] is True
    assert await c.app.state.ld.store.open_url("qb-1") == f"rtsp://admin:{SECRET}@10.1.2.4/ch2"  # type: ignore[attr-defined]
    r = await call("PATCH", "/api/cameras/qb-1", json={"lat": 100})
    assert r.status_code == 422
    assert (await call("GET", "/api/cameras/qb-1")).json()["name"] == "新名字"
    assert (await call("PATCH", "/api/cameras/nope", json={"name": "x"})).status_code == 404
    assert (await call("DELETE", "/api/cameras/qb-1")).status_code == 204
    assert (await call("GET", "/api/cameras/qb-1")).status_code == 404
    assert (await call("DELETE", "/api/cameras/qb-1")).status_code == 404
    for text in seen:
        assert SECRET not in text
    assert SECRET not in caplog.text


async def test_list_filters_pagination_and_roles(app_client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    c, h = app_client, admin_headers
    for i in range(12):
        area = "七宝镇" if i % 3 == 0 else "莘庄镇"
        r = await c.post(
            "/api/cameras", json=cam(f"c{i:02d}", name=f"路口{i}", area=area, department="police"), headers=h
        )
        assert r.status_code == 201
    page = (await c.get("/api/cameras?limit=5&offset=5", headers=h)).json()
    assert page["total"] == 12 and [x["id"] for x in page["items"]] == [f"c{i:02d}" for i in range(5, 10)]
    r = (await c.get("/api/cameras", params={"area": "七宝镇"}, headers=h)).json()
    assert r["total"] == 4
    r = (await c.get("/api/cameras", params={"text": "路口1"}, headers=h)).json()
    assert {x["id"] for x in r["items"]} == {"c01", "c10", "c11"}
    assert (await c.get("/api/cameras?kind=bus", headers=h)).json()["total"] == 0
    assert (await c.get("/api/cameras?limit=0", headers=h)).status_code == 422
    assert (await c.get("/api/cameras?kind=boat", headers=h)).status_code == 422
    await add_user(c, "op")
    op = await login(c, "op")
    assert (await c.get("/api/cameras", headers=op)).json()["total"] == 0  # deny by default
    assert (await c.get("/api/cameras/c01", headers=op)).status_code == 403
    assert (await c.post("/api/cameras", json=cam("z"), headers=op)).status_code == 403
    await add_user(c, "sec", Role.security_admin)
    assert (await c.delete("/api/cameras/c01", headers=await login(c, "sec"))).status_code == 403
