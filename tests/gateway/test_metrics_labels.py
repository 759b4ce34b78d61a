"""Clients cannot add Prometheus series: random methods, paths and camera ids, against a real
``liandong serve`` process (its h11 server passes any method name through; the in-process tests'
httptools knows only a fixed list, so WebDAV-style names are sent too)."""

from __future__ import annotations

import asyncio
import random
import re
import string
from pathlib import Path

import httpx

from acl.models import Role
from fixtures.gateway_process import GatewayProcess, add_user
from gateway.metrics import Metrics

PASSWORD = "metrics-password-1"
KNOWN_ODD = ("PROPFIND", "MKCOL", "PURGE", "SEARCH", "LOCK", "REPORT", "M-SEARCH", "LINK", "QUERY", "TRACE")


def _word(n: int = 10) -> str:
    return "".join(random.choices(string.ascii_uppercase, k=n))


def _series(c: httpx.Client) -> set[str]:
    r = c.get("/metrics")
    assert r.status_code == 200
    return {line.rsplit(" ", 1)[0] for line in r.text.splitlines() if line and not line.startswith("#")}


def _hostile(c: httpx.Client, n: int) -> None:
    for i in range(n):
        c.request(_word(), "/api/cameras")  # an unknown method on a known route
        c.request(KNOWN_ODD[i % len(KNOWN_ODD)], "/api/cameras")
        c.request(_word(), "/" + _word().lower())  # an unknown method on no route
        c.get(f"/{_word().lower()}/{_word().lower()}?x={_word()}")  # no such path
        c.get(f"/api/cameras/{_word().lower()}/snapshot.jpg")  # no such camera (as an admin)
        c.get(f"/api/cameras/{_word().lower()}/hls/index.m3u8")


def test_random_methods_paths_and_cameras_add_no_series(tmp_path: Path) -> None:
    data = tmp_path / "data"
    add_user(data, "admin", PASSWORD, Role.admin)
    with GatewayProcess(data) as gw, httpx.Client(base_url=gw.base_url, timeout=10) as c:
        c.headers.update(gw.token("admin", PASSWORD))
        random.seed(15)
        _hostile(c, len(KNOWN_ODD))  # the first of each kind may add its one fixed series ("other", ...)
        _series(c)
        before = _series(c)
        _hostile(c, 100)
        after = _series(c)
        assert after == before, sorted(after - before)[:10]
        text = "\n".join(after)
        methods = set(re.findall(r'method="([^"]*)"', text))
        assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}, methods
        assert "other" in methods  # the odd methods did reach the app, and were counted
        routes = set(re.findall(r'route="([^"]*)"', text))
        assert "unmatched" in routes and all(r == "unmatched" or r.startswith("/") for r in routes)
        assert "?x=" not in text and "snapshot.jpg?" not in text


def test_a_deleted_cameras_series_are_dropped() -> None:
    m = Metrics()
    m.upstream_state.labels("cam-1", "live").set(1)
    m.viewers.labels("cam-1", "webrtc").inc()
    m.viewers.labels("cam-2", "webrtc").inc()
    asyncio.run(m.forget_camera("cam-1"))
    text = "\n".join(str(s) for metric in m.registry.collect() for s in metric.samples)
    assert "cam-1" not in text and "cam-2" in text
