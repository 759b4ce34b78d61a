"""The console's HTTP side: pages with a strict CSP, static files confined to web/static, config, facets."""

from __future__ import annotations

import httpx

from tests.conftest import PASSWORD, add_user, login


async def test_pages_carry_a_strict_content_security_policy(app_client: httpx.AsyncClient) -> None:
    for path in ("/", "/static/app.js", "/static/style.css"):
        r = await app_client.get(path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp
        assert "frame-ancestors 'none'" in csp and r.headers["x-frame-options"] == "DENY"
    r = await app_client.get("/")
    assert r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/app.js">' in r.text
    assert "<script>" not in r.text and "onclick" not in r.text and "style=" not in r.text  # nothing inline
    assert (
        (await app_client.get("/static/app.js"))
        .headers["content-type"]
        .startswith(("text/javascript", "application/javascript"))
    )


async def test_static_files_cannot_escape_their_directory(app_client: httpx.AsyncClient) -> None:
    for path in (
        "/static/../routes.py",
        "/static/%2e%2e/routes.py",
        "/static/..%2Froutes.py",
        "/static/nope.js",
        "/static/",
    ):
        r = await app_client.get(path)
        assert r.status_code == 404, path
        assert "Content-Security-Policy" not in r.text


async def test_config_needs_a_login_and_names_only_configured_ice_servers(app_client: httpx.AsyncClient) -> None:
    assert (await app_client.get("/api/config")).status_code == 401
    await add_user(app_client, "op")
    r = await app_client.get("/api/config", headers=await login(app_client, "op"))
    assert r.status_code == 200
    assert r.json()["ice_servers"] == []  # never a public STUN server unless configured


async def test_facets_count_only_the_cameras_the_caller_may_view(
    app_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    assert (await app_client.get("/api/console/facets")).status_code == 401
    cams = [
        ("a1", "七宝镇", "police"),
        ("a2", "七宝镇", "city"),
        ("b1", "莘庄镇", "city"),
    ]
    for cid, area, dept in cams:
        body = {"id": cid, "name": cid, "source_url": "rtsp://127.0.0.1:9/x", "area": area, "department": dept}
        assert (await app_client.post("/api/cameras", json=body, headers=admin_headers)).status_code == 201
    f = (await app_client.get("/api/console/facets", headers=admin_headers)).json()
    assert f["total"] == 3
    assert f["areas"] == [{"value": "七宝镇", "count": 2}, {"value": "莘庄镇", "count": 1}]
    # Departments carry their display name (the id when the department has none).
    assert f["departments"] == [
        {"value": "city", "count": 2, "name": "city"},
        {"value": "police", "count": 1, "name": "police"},
    ]
    assert f["kinds"] == [{"value": "fixed", "count": 3}]

    # An operator allowed one camera learns nothing about the others (not even that their areas exist).
    r = await app_client.post(
        "/api/admin/users", json={"username": "op", "password": PASSWORD, "role": "operator"}, headers=admin_headers
    )
    uid = r.json()["id"]
    await app_client.put("/api/admin/departments/qb", json={"name": "qb"}, headers=admin_headers)
    await app_client.put(f"/api/admin/users/{uid}/memberships/qb", json={}, headers=admin_headers)
    rule = {"subject": "dept:qb", "target": "cam:b1", "action": "view_live"}
    assert (await app_client.post("/api/admin/rules", json=rule, headers=admin_headers)).status_code == 201
    f = (await app_client.get("/api/console/facets", headers=await login(app_client, "op"))).json()
    assert f["total"] == 1
    assert f["areas"] == [{"value": "莘庄镇", "count": 1}]
    assert f["departments"] == [{"value": "city", "count": 1, "name": "city"}]


async def test_vendor_serves_only_listed_npm_files(app_client: httpx.AsyncClient) -> None:
    r = await app_client.get("/vendor/hls.mjs")
    assert r.status_code == 200 and "Hls" in r.text  # from web/node_modules, installed by bootstrap
    assert (await app_client.get("/vendor/leaflet.css")).status_code == 200
    for path in ("/vendor/../routes.py", "/vendor/hls.js/package.json", "/vendor/%2e%2e/static/app.js", "/vendor/"):
        assert (await app_client.get(path)).status_code == 404, path


async def test_the_admin_console_is_served_with_the_same_policy(app_client: httpx.AsyncClient) -> None:
    r = await app_client.get("/admin")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == (await app_client.get("/")).headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert '<script type="module" src="/static/admin.js">' in r.text
    assert "<script>" not in r.text and "onclick" not in r.text and "style=" not in r.text
    for name in ("admin.js", "admin-common.js", "admin-policy.js", "admin-review.js", "admin-i18n.js", "admin.css"):
        assert (await app_client.get(f"/static/{name}")).status_code == 200, name
