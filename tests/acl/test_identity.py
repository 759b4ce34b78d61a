"""Logins, throttling, cookie sessions with CSRF, machine tokens, stream tokens."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import httpx
from sqlalchemy import update

from acl.identity import LoginThrottle, StreamTokens, hash_token
from acl.models import ApiToken, Role
from gateway.auth import LoginCache
from gateway.settings import load_settings
from gateway.wiring import create_app
from storage.db import utcnow
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
    await add_user(app_client, "adm", Role.admin)
    await add_user(app_client, "gps-feed", Role.integration)
    adm = await login(app_client, "adm")
    r = await app_client.post("/api/auth/tokens", json={"name": "GPS feed", "username": "gps-feed"}, headers=adm)
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


def test_stream_tokens_carry_camera_parent_and_expire() -> None:
    st = StreamTokens(b"k" * 32, ttl_s=1)
    tok = st.issue(7, "cam-a", token_id=3)
    grant = st.check(tok)
    assert grant is not None and (grant.user_id, grant.camera_id, grant.parent) == (7, "cam-a", 3)
    assert st.check(tok + "x") is None
    assert StreamTokens(b"j" * 32, ttl_s=1).check(tok) is None
    # Never beyond the login it came from: a token re-issued with an earlier expiry keeps it.
    long = StreamTokens(b"k" * 32, ttl_s=60)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    renewed = long.issue(7, "cam-a", 3, not_after=soon)
    assert long.check(renewed) is not None
    time.sleep(2.1)
    assert long.check(renewed) is None
    assert long.check(long.issue(7, "cam-a", 3, not_after=soon)) is None
    assert st.check(tok) is None


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

    async def offer(cam: str, token: str = tok) -> int:
        # A WHEP offer of the wrong content type: 415 once authenticated and authorized.
        r = await app_client.post(f"/api/cameras/{cam}/whep?token={token}", content=b"x")
        return r.status_code

    assert await offer("a") == 415
    assert await offer("b") == 401  # bound to its camera
    assert (await app_client.get(f"/api/cameras/a?token={tok}")).status_code == 401  # and to stream routes
    assert (await app_client.get(f"/api/cameras?token={tok}")).status_code == 401
    assert (await app_client.post(f"/api/auth/stream-token/a?token={tok}")).status_code == 401  # no chaining
    # The token only authenticates: the policy still decides.
    assert (await app_client.delete(f"/api/admin/rules/{rule_id}", headers=h)).status_code == 200
    assert await offer("a") == 403
    assert (await app_client.post("/api/admin/rules", json=grant, headers=h)).status_code == 201
    assert await offer("a") == 415
    # It dies with the login it came from.
    assert (await app_client.post("/api/auth/logout", headers=p)).status_code == 200
    assert await offer("a") == 401


async def test_cached_logins_end_with_logout_revocation_deactivation_and_role_change(
    app_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """Validated logins are kept a few seconds (no database lookup per request), and every change
    made through this node takes effect on the very next request."""
    c = app_client
    logins = c.app.state.ld.auth.logins  # type: ignore[attr-defined]
    names = ("op-logout", "op-revoked", "op-disabled", "op-role", "op-password")
    heads = {}
    for name in names:
        await add_user(c, name)
        heads[name] = await login(c, name)
    ids = {u["username"]: u["id"] for u in (await c.get("/api/admin/users", headers=admin_headers)).json()}

    async def me(name: str) -> httpx.Response:
        return await c.get("/api/auth/me", headers=heads[name])

    for name in names:  # each login validated once, then served from the cache
        assert (await me(name)).status_code == 200
        hits = logins.hits
        assert (await me(name)).json()["role"] == "operator"
        assert logins.hits == hits + 1
    token_of_revoked = next(t["id"] for t in (await c.get("/api/auth/tokens", headers=heads["op-revoked"])).json())

    assert (await c.post("/api/auth/logout", headers=heads["op-logout"])).status_code == 200
    assert (await me("op-logout")).status_code == 401
    assert (await c.delete(f"/api/auth/tokens/{token_of_revoked}", headers=admin_headers)).status_code == 200
    assert (await me("op-revoked")).status_code == 401
    r = await c.patch(f"/api/admin/users/{ids['op-disabled']}", json={"active": False}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert (await me("op-disabled")).status_code == 401
    r = await c.patch(f"/api/admin/users/{ids['op-role']}", json={"role": "auditor"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert (await me("op-role")).status_code == 401  # a role change ends the user's logins too
    assert (await c.get("/api/auth/me", headers=await login(c, "op-role"))).json()["role"] == "auditor"
    r = await c.patch(
        f"/api/admin/users/{ids['op-password']}", json={"password": "another long one"}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert (await me("op-password")).status_code == 401  # a new password ends the user's logins

    # A browser session: logout ends the cookie too.
    await add_user(c, "op-cookie")
    async with httpx.AsyncClient(transport=c._transport, base_url="http://testserver") as browser:
        r = await browser.post("/api/auth/login", json={"username": "op-cookie", "password": PASSWORD})
        csrf = r.json()["csrf_token"]
        cookie = browser.cookies.get("liandong_session")
        assert (await browser.get("/api/auth/me")).status_code == 200
        assert (await browser.get("/api/auth/me")).status_code == 200  # cached
        body = {"id": "c1", "name": "c1", "source_url": "rtsp://127.0.0.1/x"}
        assert (await browser.post("/api/cameras", json=body)).status_code == 403  # CSRF still checked
        assert (await browser.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})).status_code == 200
        browser.cookies.set("liandong_session", cookie or "")
        assert (await browser.get("/api/auth/me")).status_code == 401


async def test_login_changed_by_another_process_is_trusted_at_most_the_cache_time(tmp_path: Path) -> None:
    """A revocation written straight to the database (the CLI, or a node that could not tell this
    one) is seen once the cached login is older than ``auth.login_cache_s``; an expired token at once."""
    settings = load_settings(None, data_dir=tmp_path / "data", auth={"login_cache_s": 2.0})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            c.app = app  # type: ignore[attr-defined]
            await add_user(c, "op")
            op = await login(c, "op")
            expiring = await login(c, "op")
            ld = app.state.ld
            # A token's own expiry is checked on every request, cached or not.
            async with ld.db.session() as s:
                key = hash_token(expiring["Authorization"].removeprefix("Bearer "))
                soon = utcnow() + dt.timedelta(seconds=0.3)
                await s.execute(update(ApiToken).where(ApiToken.token_hash == key).values(expires_at=soon))
            assert (await c.get("/api/auth/me", headers=expiring)).status_code == 200
            assert (await c.get("/api/auth/me", headers=op)).status_code == 200
            async with ld.db.session() as s:
                await s.execute(update(ApiToken).values(revoked_at=utcnow()))
            t0 = time.monotonic()
            assert (await c.get("/api/auth/me", headers=op)).status_code == 200  # still trusted
            await asyncio.sleep(max(0.0, soon.timestamp() - time.time()) + 0.02)
            assert time.monotonic() - t0 < 2.0
            assert (await c.get("/api/auth/me", headers=expiring)).status_code == 401  # expired, in the cache time
            await asyncio.sleep(2.0 - (time.monotonic() - t0) + 0.05)
            assert (await c.get("/api/auth/me", headers=op)).status_code == 401


def test_login_cache_bounded_and_a_lookup_older_than_an_invalidation_is_not_kept() -> None:
    from acl.models import User

    cache = LoginCache(ttl_s=60, size=3)
    user = User(id=1, username="u", role=Role.operator, active=True)

    def tok(i: int) -> ApiToken:
        return ApiToken(id=i, user_id=1, token_hash=f"h{i}", csrf_hash=None, expires_at=None)

    for i in range(5):
        cache.put(f"k{i}", tok(i), user, cache.generation)
    assert len(cache) == 3 and cache.get("k0") is None and cache.get("k4") is not None
    started = cache.generation  # a lookup reads the row ...
    cache.forget_token(99)  # ... a revocation commits and invalidates meanwhile ...
    cache.put("late", tok(7), user, started)  # ... the lookup's answer is not kept
    assert cache.get("late") is None
    cache.forget_user(1)
    assert len(cache) == 0


def test_usernames_are_slowed_with_growing_delays_never_locked() -> None:
    now = [0.0]
    t = LoginThrottle(3, 300, clock=lambda: now[0], delay_s=1.0, delay_max_s=8.0)
    for i in range(3):  # the free failures, each from another address (a botnet)
        assert t.begin("police", f"10.0.0.{i}") == 0
    waits = []
    for i in range(3, 9):
        wait = t.begin("police", f"10.0.0.{i}")
        assert wait > 0 and t.begin("police", f"10.0.1.{i}") == wait  # a refused try does not count
        waits.append(wait)
        now[0] += wait  # the guesser waits exactly as long as told, and fails again
        assert t.begin("police", f"10.0.0.{i}") == 0
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # doubling, capped: one guess per 8 s at most
    # The real user, at a new address: at most the longest delay, then the right password is checked.
    assert 0 < t.retry_after("police", "172.16.0.1") <= 8.0
    now[0] += 8.0
    assert t.begin("police", "172.16.0.1") == 0
    t.succeeded("police", "172.16.0.1")
    assert t.retry_after("police", "10.0.2.1") == 0  # success clears the username's failures
    # From an address the user logged in from, a guesser elsewhere does not slow them down.
    for i in range(6):
        t.begin("police", f"10.0.3.{i}")
    assert t.retry_after("police", "10.0.4.1") > 0
    assert t.retry_after("police", "172.16.0.1") == 0
    # Failures are forgotten window_s after the last one.
    now[0] += 301
    assert t.retry_after("police", "10.0.4.1") == 0


def test_concurrent_attempts_count_until_decided() -> None:
    t = LoginThrottle(3, 300, clock=lambda: 0.0)
    assert [t.begin("a", "10.0.0.1") for _ in range(4)][:3] == [0, 0, 0]
    assert t.retry_after("b", "10.0.0.1") > 0  # three in flight: the address waits for their outcome
    t.cancelled("a", "10.0.0.1")
    t.succeeded("a", "10.0.0.1")
    assert t.retry_after("b", "10.0.0.1") == 0
