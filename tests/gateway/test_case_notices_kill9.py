"""``kill -9`` of a real gateway process while it delivers case notices to a real local HTTP
receiver that first refuses, then acts and answers slowly: after a restart on the same data dir
every notice is delivered, and the receiver, honouring the idempotency key, acts on each once."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from acl.models import Role
from fixtures.gateway_process import GatewayProcess, add_user
from gateway.alarms.hmac_auth import sign
from storage.secretbox import SecretBox

PASSWORD = "notice-password-1"
SECRET = "hook-secret"
CASES = 8


class Receiver(ThreadingHTTPServer):
    """A webhook on loopback: ``mode`` is ``fail`` (503) or ``slow`` (act once per key, answer late)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.mode = "fail"
        self.lock = threading.Lock()
        self.requests = 0
        self.acted: dict[str, int] = {}  # key -> times acted on
        self.cases: dict[str, int] = {}  # case id -> times acted on (a notice re-keyed would count twice)
        self.bad = 0


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        srv = self.server
        with srv.lock:
            srv.requests += 1
            mode = srv.mode
            ts = self.headers.get("X-Liandong-Timestamp", "")
            if self.headers.get("X-Liandong-Signature") != sign(SECRET, ts, raw):
                srv.bad += 1
            key = self.headers.get("Idempotency-Key", "")
            if mode == "slow" and key not in srv.acted:
                srv.acted[key] = 1
                case = json.loads(raw)["incident_id"]
                srv.cases[case] = srv.cases.get(case, 0) + 1
        if mode == "fail":
            self.send_response(503)
        else:
            time.sleep(0.3)  # acted on already: a kill now leaves the sender without the answer
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    t = threading.Thread(target=r.serve_forever, daemon=True)
    t.start()
    yield r
    r.shutdown()
    r.server_close()


def _sql(db: Path, query: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def _wait(cond: Any, what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_kill9_mid_delivery_loses_no_notice_and_sends_none_twice(tmp_path: Path, receiver: Receiver) -> None:
    data = tmp_path / "data"
    add_user(data, "admin", PASSWORD, Role.admin)
    env = {
        "LIANDONG_ALARMS__NOTIFY__WEBHOOK_URL": f"http://127.0.0.1:{receiver.server_address[1]}/hook",
        "LIANDONG_ALARMS__NOTIFY__WEBHOOK_SECRET_SEALED": SecretBox.from_data_dir(data).encrypt(SECRET),
        "LIANDONG_ALARMS__NOTIFY__RETRY_BASE_S": "0.1",
        "LIANDONG_ALARMS__NOTIFY__RETRY_MAX_S": "0.3",
        "LIANDONG_ALARMS__NOTIFY__POLL_S": "0.1",
        "LIANDONG_ALARMS__NOTIFY__TIMEOUT_S": "1",
    }
    gw = GatewayProcess(data, env=env)
    try:
        gw.start()
        with httpx.Client(base_url=gw.base_url, headers=gw.token("admin", PASSWORD), timeout=30) as c:
            for dept, body in [
                ("district", {"name": "区联动中心", "level": "district"}),
                ("qibao", {"name": "七宝镇分中心", "level": "subdistrict", "area": "七宝镇", "parent_id": "district"}),
                ("qb-xz", {"name": "新镇居委", "level": "station", "area": "七宝镇", "parent_id": "qibao"}),
            ]:
                assert c.put(f"/api/admin/departments/{dept}", json=body).status_code in (200, 201)
            for i in range(CASES):
                r = c.post("/api/incidents", json={"category": "road", "address": f"七宝镇富强街{i}号", "text": "x"})
                assert r.status_code == 201, r.text
                r = c.post(f"/api/incidents/{r.json()['id']}/dispatch", json={"department": "qb-xz"})
                assert r.status_code == 200, r.text
        # Every notice was committed with its dispatch; the receiver refuses them for now.
        _wait(lambda: receiver.requests >= CASES, "the worker's first attempts")
        receiver.mode = "slow"
        _wait(lambda: len(receiver.acted) >= CASES // 2, "half the notices acted on")
        gw.kill9()  # answers in flight: their rows still say pending
        rows = _sql(gw.db_path, "SELECT key, state FROM incident_notices")
        assert len(rows) == CASES
        assert any(state == "pending" for _, state in rows)
        gw.start()
        _wait(
            lambda: _sql(gw.db_path, "SELECT count(*) FROM incident_notices WHERE state = 'sent'")[0][0] == CASES,
            "every notice sent after the restart",
        )
    finally:
        gw.stop()
    keys = {k for k, _ in _sql(gw.db_path, "SELECT key, state FROM incident_notices")}
    assert set(receiver.acted) == keys  # none lost
    assert len(receiver.cases) == CASES and set(receiver.cases.values()) == {1}  # none acted on twice
    assert receiver.bad == 0
