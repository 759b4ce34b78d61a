"""The camera API: authentication, admin edits, validation, filters, pagination, secrets."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from acl.models import Role
from camera_registry.models import CameraStatus
from fixtures.camera_server import FixtureCameraServer, free_port
from gateway.cli import app as cli_app
from gateway.settings import Settings
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
    # A new URL without credentials keeps the stored ones on the same host and port (admins never
    # see them) and drops them on another (they would go to a host nobody gave them for).
    store = c.app.state.ld.store  # type: ignore[attr-defined]
    r = await call("PATCH", "/api/cameras/qb-1", json={"source_url": "rtsp://10.1.2.3/ch2", "name": "新名字"})
    assert r.status_code == 200 and r.json()["has_credentials"] is True
    assert await store.open_url("qb-1") == f"rtsp://admin:{SECRET}@10.1.2.3/ch2"
    r = await call("PATCH", "/api/cameras/qb-1", json={"source_url": "rtsp://10.1.2.4/ch2"})
    assert r.status_code == 200 and r.json()["has_credentials"] is False
    assert await store.open_url("qb-1") == "rtsp://10.1.2.4/ch2"
    r = await call("PATCH", "/api/cameras/qb-1", json={"source_url": f"rtsp://admin:{SECRET}@10.1.2.4/ch2"})
    assert r.json()["has_credentials"] is True
    r = await call("PATCH", "/api/cameras/qb-1", json={"clear_credentials": True})
    assert r.json()["has_credentials"] is False and await store.open_url("qb-1") == "rtsp://10.1.2.4/ch2"
    await call("PATCH", "/api/cameras/qb-1", json={"source_url": f"rtsp://admin:{SECRET}@10.1.2.4/ch2"})
    # A bad patch changes nothing.
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


async def test_every_camera_route_needs_authentication(app_client: httpx.AsyncClient) -> None:
    c = app_client
    calls = [
        ("GET", "/api/cameras"),
        ("GET", "/api/cameras/nearest?lat=31&lon=121"),
        ("GET", "/api/cameras/c1"),
        ("POST", "/api/cameras"),
        ("PATCH", "/api/cameras/c1"),
        ("DELETE", "/api/cameras/c1"),
        ("POST", "/api/cameras/import"),
        ("POST", "/api/cameras/c1/probe"),
    ]
    for method, url in calls:
        r = await c.request(method, url, json=cam("c1"))
        assert r.status_code == 401, (method, url, r.status_code)
        assert r.headers["www-authenticate"] == "Bearer"


async def test_filters_by_department_status_kind_and_text(
    app_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    c, h = app_client, admin_headers
    inv = {
        "vehicles": [{"id": "bus-7", "kind": "bus", "plate": "沪A77777", "line": "闵行7路"}],
        "cameras": [
            cam("f1", name="七宝老街东口", area="七宝镇", department="police"),
            cam("f2", name="七宝中学门口", area="七宝镇", department="education"),
            cam("f3", name="莘庄地铁站", area="莘庄镇", department="police"),
            cam("b1", name="闵行7路 前门", kind="bus", vehicle_id="bus-7", department="transport"),
        ],
    }
    r = await c.post("/api/cameras/import", json=inv, headers=h)
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["vehicles"]["created"]) == (4, 1)
    await c.app.state.ld.store.set_status("f3", CameraStatus.offline, reason="connection refused")  # type: ignore[attr-defined]

    async def ids(**params: str) -> list[str]:
        r = await c.get("/api/cameras", params=params, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["total"] == len(r.json()["items"])
        return [x["id"] for x in r.json()["items"]]

    assert await ids(department="police") == ["f1", "f3"]
    assert await ids(status="offline") == ["f3"]
    assert await ids(status="unknown") == ["b1", "f1", "f2"]
    assert await ids(kind="bus") == ["b1"]
    assert await ids(text="七宝") == ["f1", "f2"]
    assert await ids(text="地铁") == ["f3"]
    assert await ids(area="七宝镇", department="education") == ["f2"]
    assert await ids(area="七宝镇", text="老街") == ["f1"]
    assert await ids(text="没有") == []
    offline = (await c.get("/api/cameras/f3", headers=h)).json()
    assert (offline["status"], offline["status_reason"]) == ("offline", "connection refused")
    assert (await c.get("/api/cameras?status=gone", headers=h)).status_code == 422
    assert (await c.get("/api/cameras?offset=-1", headers=h)).status_code == 422


async def test_import_api_json_csv_strict_and_errors(
    app_client: httpx.AsyncClient, admin_headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    c, h = app_client, admin_headers
    rows = [cam("i1", name="梅陇路口", area="梅陇镇"), cam("i2", source_url=f"file://u:{SECRET}@x/etc/passwd")]
    r = await c.post("/api/cameras/import", json=rows, headers=h)
    assert r.status_code == 200
    rep = r.json()
    assert (rep["created"], rep["rejected"], rep["written"]) == (1, 1, True)
    assert rep["errors"] == [
        {"row": 2, "id": "i2", "reason": "source_url: scheme 'file' not allowed (only rtsp:// and rtsps://)"}
    ]
    # Same body again: unchanged; strict with a bad row: nothing written.
    assert (await c.post("/api/cameras/import", json=rows[:1], headers=h)).json()["unchanged"] == 1
    strict = [cam("i1", name="改名"), cam("i3"), cam("i4", lat=95, lon=0)]
    rep = (await c.post("/api/cameras/import?strict=true", json=strict, headers=h)).json()
    assert rep["written"] is False and rep["rejected"] == 1 and rep["errors"][0]["reason"].startswith("lat:")
    assert (await c.get("/api/cameras/i1", headers=h)).json()["name"] == "梅陇路口"
    assert (await c.get("/api/cameras/i3", headers=h)).status_code == 404
    # CSV, with a placeholder filled from the query.
    csv_body = "id,name,source_url,area\ni5,颛桥镇路口,rtsp://127.0.0.1:{port}/h264,颛桥镇\ni1,梅陇路口（改）,rtsp://10.1.2.3:554/ch1,梅陇镇\n"
    r = await c.post(
        "/api/cameras/import?substitute=port=8554",
        content=csv_body.encode(),
        headers={**h, "Content-Type": "text/csv; charset=utf-8"},
    )
    rep = r.json()
    assert (rep["created"], rep["updated"], rep["rejected"]) == (1, 1, 0), rep
    got = (await c.get("/api/cameras/i5", headers=h)).json()
    assert (got["source_url"], got["area"]) == ("rtsp://127.0.0.1:8554/h264", "颛桥镇")
    # The CSV row had no credentials and the same host and port: the stored ones stay.
    assert (await c.get("/api/cameras/i1", headers=h)).json()["has_credentials"] is True
    assert await c.app.state.ld.store.open_url("i1") == f"rtsp://admin:{SECRET}@10.1.2.3:554/ch1"  # type: ignore[attr-defined]
    # Vehicles alone.
    r = await c.post(
        "/api/cameras/import?what=vehicles", json=[{"id": "t1", "kind": "truck", "plate": "沪C1"}], headers=h
    )
    assert r.json()["vehicles"]["created"] == 1
    # Whole-body errors: 422 naming the body; nothing written.
    bad_bodies: list[tuple[bytes, str, str]] = [
        (b"id,name,source_url\nx1,\xff\xfe,rtsp://h/p\n", "text/csv", "not valid UTF-8 (line 2"),
        (b"[{", "application/json", "invalid JSON"),
        (b'{"cameras": [], "users": []}', "application/json", "only 'cameras' and/or 'vehicles'"),
        (b'"x"', "application/json", "list of records"),
        (b"name,source_url\nx,rtsp://h/p\n", "text/csv", "header must contain 'id'"),
    ]
    for body, ctype, message in bad_bodies:
        r = await c.post("/api/cameras/import", content=body, headers={**h, "Content-Type": ctype})
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["field"] == "body" and message in r.json()["detail"][0]["message"], r.text
    r = await c.post("/api/cameras/import?substitute=nokey", json=[], headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "substitute"
    assert (await c.post("/api/cameras/import?what=users", json=[], headers=h)).status_code == 422
    assert (await c.get("/api/cameras", headers=h)).json()["total"] == 2
    # Only admins import.
    await add_user(c, "op")
    await add_user(c, "sec", Role.security_admin)
    for user in ("op", "sec"):
        r = await c.post("/api/cameras/import", json=[cam("z9")], headers=await login(c, user))
        assert r.status_code == 403
    assert (await c.get("/api/cameras/z9", headers=h)).status_code == 404
    assert SECRET not in caplog.text


async def test_import_api_sample_inventory(app_client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    inv = Path(__file__).resolve().parents[2] / "fixtures" / "inventory"
    bundle = {
        "vehicles": json.loads((inv / "sample_vehicles.json").read_text(encoding="utf-8")),
        "cameras": json.loads((inv / "sample_cameras.json").read_text(encoding="utf-8")),
    }
    r = await app_client.post("/api/cameras/import?substitute=port=8554", json=bundle, headers=admin_headers)
    rep = r.json()
    assert (rep["created"], rep["rejected"], rep["vehicles"]["rejected"]) == (len(bundle["cameras"]), 0, 0), rep
    r = await app_client.get("/api/cameras?kind=truck", headers=admin_headers)
    assert r.json()["total"] == sum(1 for x in bundle["cameras"] if x["kind"] == "truck")
    assert "demo-secret" not in r.text


@pytest.mark.media
async def test_probe_api_and_no_secret_anywhere(
    app_client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Import cameras with a password, call every camera route and the CLI export: the password
    appears in no reply and no log line."""
    caplog.set_level(logging.DEBUG)
    c, h = app_client, admin_headers
    replies: list[str] = []

    async def call(method: str, url: str, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        r = await c.request(method, url, headers=h if headers is None else headers, **kw)
        replies.append(f"{method} {url} {r.status_code} {r.headers} {r.text}")
        return r

    closed = free_port()
    with FixtureCameraServer(mounts=("h264", "h265")) as cams:
        inv = {
            "vehicles": [{"id": "bus-1", "kind": "bus", "plate": "沪A1"}],
            "cameras": [
                cam("on", name="七宝路口", source_url=cams.url("h264", f"admin:{SECRET}"), lat=31.15, lon=121.35),
                cam("hevc", source_url=cams.url("h265", f"admin:{SECRET}")),
                cam("gone", source_url=f"rtsp://admin:{SECRET}@127.0.0.1:{closed}/h264"),
                cam("nomount", source_url=f"rtsp://admin:{SECRET}@127.0.0.1:{cams.port}/nosuch"),
                cam("bus", kind="bus", vehicle_id="bus-1"),
                {"id": "bad", "name": "x", "source_url": f"http://admin:{SECRET}@10.0.0.1/"},
            ],
        }
        rep = (await call("POST", "/api/cameras/import", json=inv)).json()
        assert (rep["created"], rep["rejected"]) == (5, 1), rep
        csv_body = f"id,name,source_url\ncsv1,x,rtsp://admin:{SECRET}@10.9.9.9/a\ncsv2,y,file://{SECRET}\n"
        r = await call("POST", "/api/cameras/import", content=csv_body, headers={**h, "Content-Type": "text/csv"})
        assert r.json()["rejected"] == 1

        r = await call("POST", "/api/cameras/on/probe?timeout=5")
        assert r.status_code == 200, r.text
        res = r.json()
        assert (res["status"], res["codec"], res["width"], res["height"]) == ("online", "h264", 1280, 720)
        assert res["fps"] == 25 and res["reason"] is None and res["last_seen"]
        assert (await call("POST", "/api/cameras/hevc/probe")).json()["codec"] == "hevc"
        gone = (await call("POST", "/api/cameras/gone/probe?timeout=2")).json()
        assert (gone["status"], gone["reason"]) == ("offline", "connection refused")
        nomount = (await call("POST", "/api/cameras/nomount/probe?timeout=3")).json()
        assert nomount["status"] == "error" and "404" in nomount["reason"]
        assert (await call("POST", "/api/cameras/nosuch/probe")).status_code == 404
        assert (await call("POST", "/api/cameras/on/probe?timeout=999")).status_code == 422

    # The probes were recorded.
    got = (await call("GET", "/api/cameras/on")).json()
    assert (got["status"], got["codec"], got["width"], got["height"]) == ("online", "h264", 1280, 720)
    assert got["last_seen"] == res["last_seen"]
    assert [x["id"] for x in (await call("GET", "/api/cameras?status=offline")).json()["items"]] == ["gone"]
    # Every other camera route, as admin and as an operator.
    await add_user(c, "op")
    op = await login(c, "op")
    for headers in (h, op):
        await call("GET", "/api/cameras", headers=headers)
        await call("GET", "/api/cameras?text=七宝", headers=headers)
        await call("GET", "/api/cameras/nearest?lat=31.15&lon=121.35", headers=headers)
        await call("GET", "/api/cameras/hevc", headers=headers)
        await call("POST", "/api/cameras/on/probe", headers=headers) if headers is op else None
    assert (await call("POST", "/api/cameras", json=cam("new"))).status_code == 201
    assert (await call("POST", "/api/cameras", json=cam("new"))).status_code == 409
    assert (await call("POST", "/api/cameras", json=cam("x", source_url=f"ftp://u:{SECRET}@h/"))).status_code == 422
    assert (await call("PATCH", "/api/cameras/new", json={"name": "新"})).status_code == 200
    assert (await call("PATCH", "/api/cameras/new", json={"source_url": f"rtsp://u:{SECRET}@h:0/"})).status_code == 422
    assert (await call("DELETE", "/api/cameras/new")).status_code == 204
    # The CLI export of the same database (it runs its own event loop: off this one).
    monkeypatch.setenv("LIANDONG_DATA_DIR", str(settings.data_dir))
    for fmt in ("json", "csv"):
        out = await asyncio.to_thread(CliRunner().invoke, cli_app, ["cameras", "export", "--format", fmt])
        assert out.exit_code == 0 and "七宝路口" in out.output
        replies.append(out.output)
    out = await asyncio.to_thread(CliRunner().invoke, cli_app, ["cameras", "export", "--with-credentials"])
    assert SECRET in out.output  # the check below would find it: it is not blind

    hits = [text[:200] for text in replies if SECRET in text]
    assert hits == []
    assert SECRET not in caplog.text
    assert caplog.records, "no logs were captured"
