"""Logins, throttling, cookie sessions with CSRF, machine tokens, stream tokens."""

from __future__ import annotations

import time

import httpx

from acl.identity import LoginThrottle, StreamTokens
from acl.models import Role
from tests.conftest import PASSWORD, add_user, login


async def test_login_throttled_per_user_and_address(app_client: httpx.AsyncClient) -> None:
    await add_user(app_client, "alice")
    for _ in range(5):
        r = await app_client.post("/api/auth/token", data={"username": "alice", "password": "nope-nope"})
        assert r.status_code == 401
        assert r.json()["detail"] == "wrong username or password"
    r = await app_client.post("/api/auth/token", data={"username": "alice", "password": PASSWORD})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    # Unknown users answer exactly like wrong passwords (no user enumeration).
    r = await app_client.post("/api/auth/token", data={"username": "ghost", "password": "x" * 9})
    assert r.status_code in (401, 429)


def test_throttle_window_and_address_key() -> None:
    now = [0.0]
    t = LoginThrottle(3, 60, clock=lambda: now[0])
    for _ in range(3):
        t.failed("bob", "10.0.0.1")
    assert t.retry_after("bob", "10.0.0.2") > 0  # per user
    assert t.retry_after("carol", "10.0.0.1") > 0  # per address
    assert t.retry_after("carol", "10.0.0.3") == 0
    now[0] = 61
    assert t.retry_after("bob", "10.0.0.1") == 0


async def test_cookie_session_requires_csrf_for_changes(app_client: httpx.AsyncClient) -> None:
    await add_user(app_client, "cookie-admin", Role.admin)
    r = await app_client.post("/api/auth/login", json={"username": "cookie-admin", "password": PASSWORD})
    assert r.status_code == 200
    csrf = r.json()["csrf_token"]
    set_cookie = r.headers.get_list("set-cookie")
    session_cookie = next(c for c in set_cookie if c.startswith("liandong_session="))
    assert "HttpOnly" in session_cookie and "SameSite=strict" in session_cookie
    assert (await app_client.get("/api/auth/me")).json()["username"] == "cookie-admin"
    body = {"id": "c1", "name": "c1", "source_url": "rtsp://127.0.0.1/x"}
    r = await app_client.post("/api/cameras", json=body)
    assert r.status_code == 403 and "CSRF" in r.text
    r = await app_client.post("/api/cameras", json=body, headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    r = await app_client.post("/api/cameras", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201
    r = await app_client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    app_client.cookies.set("liandong_session", session_cookie.split(";")[0].split("=", 1)[1])
    assert (await app_client.get("/api/auth/me")).status_code == 401  # the session is dead server-side


async def test_machine_tokens_listed_and_revoked(app_client: httpx.AsyncClient) -> None:
    await add_user(app_client, "sec", Role.security_admin)
    await add_user(app_client, "gps-feed", Role.operator)
    sec = await login(app_client, "sec")
    r = await app_client.post("/api/auth/tokens", json={"name": "GPS feed", "username": "gps-feed"}, headers=sec)
    assert r.status_code == 201
    tok = r.json()
    machine = {"Authorization": f"Bearer {tok['access_token']}"}
    assert (await app_client.get("/api/auth/me", headers=machine)).json()["username"] == "gps-feed"
    listed = (await app_client.get("/api/auth/tokens", headers=machine)).json()
    assert [t["name"] for t in listed] == ["GPS feed"] and "access_token" not in listed[0]
    assert (await app_client.delete(f"/api/auth/tokens/{tok['id']}", headers=machine)).status_code == 200
    assert (await app_client.get("/api/auth/me", headers=machine)).status_code == 401
    assert (await app_client.get("/api/auth/me", headers={"Authorization": "Bearer ld_nonsense"})).status_code == 401
    assert (await app_client.get("/api/auth/me", headers={"Authorization": "Basic eDp5"})).status_code == 401


def test_stream_tokens_bound_to_camera_and_expire() -> None:
    st = StreamTokens(b"k" * 32, ttl_s=1)
    tok = st.issue(7, "cam-a", token_id=3)
    assert st.check(tok, "cam-a") == (7, 3)
    assert st.check(tok, "cam-b") is None
    assert st.check(tok + "x", "cam-a") is None
    assert StreamTokens(b"j" * 32, ttl_s=1).check(tok, "cam-a") is None
    time.sleep(2.1)
    assert st.check(tok, "cam-a") is None


async def test_stream_token_bound_to_camera_policy_and_login(app_client: httpx.AsyncClient) -> None:
    await add_user(app_client, "adm", Role.admin)
    await add_user(app_client, "player", Role.operator)
    h = await login(app_client, "adm")
    for cid in ("a", "b"):
        r = await app_client.post("/api/cameras", json={"id": cid, "name": cid, "source_url": "rtsp://h/p"}, headers=h)
        assert r.status_code == 201
    grant = {"subject": "role:operator", "target": "cam:a", "action": "view_live"}
    r = await app_client.post("/api/admin/rules", json=grant, headers=h)
    assert r.status_code == 201
    rule_id = r.json()["id"]
    p = await login(app_client, "player")
    assert (await app_client.post("/api/auth/stream-token/b", headers=p)).status_code == 403
    r = await app_client.post("/api/auth/stream-token/a", headers=p)
    assert r.status_code == 200 and r.json()["expires_in"] == 300
    tok = r.json()["token"]
    assert (await app_client.get(f"/api/cameras/a?token={tok}")).status_code == 200
    assert (await app_client.get(f"/api/cameras/b?token={tok}")).status_code == 401  # bound to its camera
    assert (await app_client.get(f"/api/cameras?token={tok}")).status_code == 401  # and to camera routes
    assert (await app_client.post(f"/api/auth/stream-token/a?token={tok}")).status_code == 401  # no chaining
    # The token only authenticates: the policy still decides.
    assert (await app_client.delete(f"/api/admin/rules/{rule_id}", headers=h)).status_code == 200
    assert (await app_client.get(f"/api/cameras/a?token={tok}")).status_code == 403
    assert (await app_client.post("/api/admin/rules", json=grant, headers=h)).status_code == 201
    assert (await app_client.get(f"/api/cameras/a?token={tok}")).status_code == 200
    # It dies with the login it came from.
    assert (await app_client.post("/api/auth/logout", headers=p)).status_code == 200
    assert (await app_client.get(f"/api/cameras/a?token={tok}")).status_code == 401
