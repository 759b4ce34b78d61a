"""CORS between cluster nodes (a browser redirected from one node's console to the camera's owner),
and the console page's CSP that lets the redirect through. The browser side is tested for real in
``tests/web/test_cluster_failover.py``; these pin the rules: which routes, which origins, no credentials."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Response
from pydantic import ValidationError

from gateway.cluster.cors import PeerOrigins, install_cors, origin_of
from gateway.settings import load_settings
from web.routes import page_headers

B = "http://127.0.0.1:8002"


class Nodes:
    """The live-node lookup a node does in Redis: a dict, or an error while Redis is away."""

    def __init__(self, nodes: dict[str, str]) -> None:
        self.nodes = nodes
        self.calls = 0
        self.fail = False

    async def __call__(self) -> dict[str, str]:
        self.calls += 1
        if self.fail:
            raise ConnectionError("redis away")
        return dict(self.nodes)


def _app(nodes: Nodes) -> FastAPI:
    app = FastAPI()

    @app.post("/api/cameras/{camera_id}/whep")
    async def whep(camera_id: str) -> Response:
        return Response("v=0", status_code=201, headers={"Location": f"/api/whep/{camera_id}-s1"})

    @app.get("/api/cameras/{camera_id}/hls/{name}")
    async def hls(camera_id: str, name: str) -> Response:
        return Response("#EXTM3U", headers={"X-Liandong-Session": "s2", "Vary": "Accept-Encoding"})

    @app.get("/api/auth/me")
    async def me() -> dict[str, str]:
        return {"user": "x"}

    install_cors(app, PeerOrigins("http://127.0.0.1:8001/", nodes, ttl_s=0))
    return app


@pytest.fixture
def nodes() -> Nodes:
    return Nodes({"n1": "http://127.0.0.1:8001", "n2": B + "/", "n3": "https://GW3.example.org:443/n/gw3"})


async def _client(nodes: Nodes) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(nodes)), base_url="http://127.0.0.1:8001")


def test_origin_of_is_what_a_browser_sends() -> None:
    assert origin_of("http://127.0.0.1:8001/x/y?z=1") == "http://127.0.0.1:8001"
    assert origin_of("https://GW3.example.org:443/n/gw3") == "https://gw3.example.org"
    assert origin_of("http://example.org:80") == "http://example.org"
    assert origin_of("http://[::1]:9000/") == "http://[::1]:9000"


async def test_preflight_from_a_node_of_the_cluster_is_answered_for_the_whep_post(nodes: Nodes) -> None:
    async with await _client(nodes) as h:
        r = await h.options(
            "/api/cameras/cam1/whep?token=t",
            headers={
                "Origin": B,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-csrf-token",
            },
        )
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == B
        assert "POST" in r.headers["access-control-allow-methods"]
        allowed = r.headers["access-control-allow-headers"].lower()
        assert "content-type" in allowed and "x-csrf-token" in allowed
        assert "access-control-allow-credentials" not in r.headers  # a cookie never authorises it
        # The offer itself: the console reads the session URL, so Location is exposed.
        r = await h.post("/api/cameras/cam1/whep?token=t", content="v=0", headers={"Origin": B})
        assert r.status_code == 201 and r.headers["access-control-allow-origin"] == B
        assert "Location" in r.headers["access-control-expose-headers"]
        assert "access-control-allow-credentials" not in r.headers
        r = await h.get("/api/cameras/cam1/hls/stream.m3u8?s=k", headers={"Origin": "https://gw3.example.org"})
        assert r.headers["access-control-allow-origin"] == "https://gw3.example.org"
        assert "X-Liandong-Session" in r.headers["access-control-expose-headers"]
        assert r.headers["vary"] == "Accept-Encoding, Origin"


async def test_other_origins_and_other_routes_get_no_cors(nodes: Nodes) -> None:
    async with await _client(nodes) as h:
        evil = "http://127.0.0.1:6666"
        r = await h.options("/api/cameras/cam1/whep", headers={"Origin": evil, "Access-Control-Request-Method": "POST"})
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
        r = await h.post("/api/cameras/cam1/whep", content="v=0", headers={"Origin": evil})
        assert "access-control-allow-origin" not in r.headers and r.headers["vary"] == "Origin"
        # Only the camera routes that redirect: the rest of the API stays same-origin only.
        r = await h.get("/api/auth/me", headers={"Origin": B})
        assert "access-control-allow-origin" not in r.headers
        # Same origin: nothing to add.
        r = await h.post("/api/cameras/cam1/whep", content="v=0", headers={"Origin": "http://127.0.0.1:8001"})
        assert "access-control-allow-origin" not in r.headers


async def test_a_node_that_left_is_no_longer_allowed_and_redis_away_keeps_the_last_set(nodes: Nodes) -> None:
    peers = PeerOrigins("http://127.0.0.1:8001", nodes, ttl_s=0)
    assert B in await peers.get()
    del nodes.nodes["n2"]
    assert B not in await peers.get()
    nodes.fail = True
    assert await peers.get() == frozenset({"http://127.0.0.1:8001", "https://gw3.example.org"})
    cached = PeerOrigins("http://127.0.0.1:8001", nodes, ttl_s=60)
    nodes.fail = False
    await cached.get()
    await cached.get()
    assert nodes.calls == 4  # one read per ttl_s, not one per request


async def test_a_configured_console_origin_is_allowed_and_must_be_an_origin(nodes: Nodes) -> None:
    lb = "https://video.example.org"
    peers = PeerOrigins("http://127.0.0.1:8001", nodes, ttl_s=0, consoles=[lb])
    assert await peers.allowed("https://VIDEO.example.org") and await peers.allowed(B)
    assert not await peers.allowed("https://video.example.org:8443")
    assert lb not in await peers.get()  # allowed to ask, not a node to connect to
    s = load_settings(None, cluster={"redis_url": "redis://127.0.0.1:1/0", "console_origins": [lb + "/"]})
    assert s.cluster.console_origins == [lb]
    for bad in ("video.example.org", "https://video.example.org/n/gw1", "ftp://x", "https://"):
        with pytest.raises(ValidationError, match="console_origins"):
            load_settings(None, cluster={"console_origins": [bad]})


def test_console_csp_lets_connections_reach_the_other_nodes_only() -> None:
    s = load_settings(None)
    csp = page_headers(s)["Content-Security-Policy"]
    assert "connect-src 'self';" in csp
    csp = page_headers(s, ["http://127.0.0.1:8003", "http://127.0.0.1:8002"])["Content-Security-Policy"]
    assert "connect-src 'self' http://127.0.0.1:8002 http://127.0.0.1:8003;" in csp
    assert "script-src 'self';" in csp and "media-src 'self' blob:;" in csp  # nothing else widens
