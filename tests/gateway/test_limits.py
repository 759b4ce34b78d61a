"""Oversized bodies and slow clients against a real ``liandong serve`` process: 413 for bodies over
the limit (announced or chunked), 408 for a body that stalls, a closed connection for a request
head that never completes; and no socket held afterwards."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from acl.models import Role
from fixtures.gateway_process import GatewayProcess, add_user

LIMIT = 64 * 1024
HEAD_S = 1.0
BODY_S = 1.0
PASSWORD = "limits-password-1"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    env = {
        "LIANDONG_SERVER__MAX_BODY_BYTES": str(LIMIT),
        "LIANDONG_SERVER__HEAD_TIMEOUT_S": str(HEAD_S),
        "LIANDONG_SERVER__BODY_TIMEOUT_S": str(BODY_S),
        "LIANDONG_EVENTS__HEARTBEAT_S": "1",
    }
    data = Path(tmp_path_factory.mktemp("limits")) / "data"
    add_user(data, "admin", PASSWORD, Role.admin)
    g = GatewayProcess(data, env=env)
    try:
        yield g.start()
    finally:
        g.stop()


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed the connection within ``seconds``, and what it sent first."""
    sock.settimeout(0.2)
    got = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True, got
        if not chunk:
            return True, got
        got += chunk
    return False, got


def test_oversized_bodies_get_413(gw: GatewayProcess) -> None:
    big = b"x" * (LIMIT + 1)
    r = httpx.post(gw.base_url + "/api/alarms", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and str(LIMIT) in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the size shows only while reading
        for _ in range(LIMIT // 1024 + 2):
            yield b"y" * 1024

    # Both read the body before any credential check: the webhook (its HMAC) and the login form.
    for path, ctype in (("/api/alarms", "application/json"), ("/api/auth/token", "application/x-www-form-urlencoded")):
        r = httpx.post(gw.base_url + path, content=chunks(), headers={"Content-Type": ctype})
        assert r.status_code == 413, (path, r.status_code, r.text[:200])
    assert httpx.get(gw.base_url + "/healthz").status_code == 200


def _sockets(gw: GatewayProcess) -> int:
    return gw.fd_kinds().get("socket", 0)


def _settled_sockets(gw: GatewayProcess, quiet_s: float = HEAD_S + 1) -> int:
    """The server's socket count once it has not changed for ``quiet_s`` (earlier tests' connections gone)."""
    last, since = _sockets(gw), time.monotonic()
    deadline = since + 15
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        time.sleep(0.1)
        now = _sockets(gw)
        if now != last:
            last, since = now, time.monotonic()
    return last


def test_slow_clients_are_cut_off_and_release_their_sockets(gw: GatewayProcess) -> None:
    baseline = _settled_sockets(gw)
    # Half a request head, then nothing (slowloris), and a connection that never says a word.
    stalled = [socket.create_connection(("127.0.0.1", gw.port)) for _ in range(2)]
    stalled[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    # A kept-alive connection: one good request, then half of the next one.
    kept = socket.create_connection(("127.0.0.1", gw.port))
    kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    assert b"200 OK" in kept.recv(65536)
    kept.sendall(b"GET /healthz HTTP/1.1\r\nHo")
    # A body that stops arriving: 408, and the handler no longer waits for it.
    slow_body = socket.create_connection(("127.0.0.1", gw.port))
    slow_body.sendall(
        b"POST /api/alarms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    try:
        deadline = time.monotonic() + 2
        while _sockets(gw) < baseline + 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _sockets(gw) >= baseline + 4  # the server holds all four now
        for s in [*stalled, kept]:
            closed, _ = _closed_within(s, HEAD_S + 4)
            assert closed, "a stalled request head kept its connection"
        closed, reply = _closed_within(slow_body, BODY_S + 5)
        assert b" 408 " in reply.split(b"\r\n")[0], reply[:200]
        assert b"stalled" in reply
    finally:
        for s in [*stalled, kept, slow_body]:
            s.close()
    deadline = time.monotonic() + 10
    while _sockets(gw) > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _sockets(gw) <= baseline
    assert httpx.get(gw.base_url + "/healthz").status_code == 200


def test_long_responses_outlive_the_body_timeout(gw: GatewayProcess) -> None:
    # An event stream waits for the client's disconnect for hours: that is not a stalled body.
    with httpx.Client(base_url=gw.base_url, headers=gw.token("admin", PASSWORD), timeout=10) as c:
        with c.stream("GET", "/api/events") as r:
            assert r.status_code == 200
            t0 = time.monotonic()
            for line in r.iter_lines():  # keep-alives every second, past the body timeout
                if line.startswith(": keep-alive") and time.monotonic() - t0 > BODY_S + 1.5:
                    break
        assert c.get("/healthz").status_code == 200
    assert "Exception in ASGI application" not in gw.log_tail(100_000)
