"""Cross-origin camera requests between nodes, for a browser redirected from one node to another.

A console loaded from node B asks B for a camera that node A pulls; B answers 307 to A's
``advertise_url``. When that URL is another origin than B's (nodes reached directly, each on its own
host or port), the browser repeats the request at A as a CORS request: it sends a preflight for the
WHEP POST (``Content-Type: application/sdp`` and the CSRF header are not "simple"), no cookies
(the console fetches with ``credentials: "same-origin"``; the stream token in the redirect's URL
authenticates the request) and reads only the response headers A exposes.

This module lets the origins of the cluster's live nodes (their ``advertise_url``), and the origins
in ``cluster.console_origins`` (a load balancer's, when the console is opened there), make such
requests to the camera routes that redirect (WHEP offer, HLS files, snapshot), and nothing else:
no other route, no other origin, no credentials (``Access-Control-Allow-Credentials`` is never
sent, so a cookie never authorises a cross-origin request).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response

__all__ = ["PeerOrigins", "install_cors", "origin_of"]

log = logging.getLogger(__name__)

# The routes a node redirects to the camera's owner (see redirect.py), and the HLS files the player
# then reads from the owner directly; recordings' playback and export go to the node holding the files.
CAMERA_ROUTES = re.compile(
    r"^/api/cameras/[^/]+/(?:whep|hls/[^/]+|snapshot\.jpg"
    r"|recordings/(?:index\.m3u8|segments/\d+\.mp4|export\.mp4|export\.json))$"
)
ALLOW_METHODS = "GET, POST"
ALLOW_HEADERS = "Content-Type, X-CSRF-Token"
# Read by the console: the WHEP session URL, the HLS session id; and what a player may want to see.
EXPOSE_HEADERS = "Location, ETag, Link, X-Liandong-Session, Retry-After, X-Request-ID"
PREFLIGHT_MAX_AGE_S = 600


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL (lower case, default ports dropped), as browsers send ``Origin``."""
    u = urlsplit(url)
    scheme = u.scheme.lower()
    host = (u.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = u.port
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class PeerOrigins:
    """The browser origins of the cluster's nodes: this node's and every live node's ``advertise_url``
    (:meth:`get`); with the configured console origins, the origins allowed to follow a redirect
    (:meth:`allowed`).

    Read from the node heartbeats in Redis at most once per ``ttl_s``; while Redis cannot be read the
    last known set is kept (a node that is no longer live is no longer redirected to anyway).
    """

    def __init__(
        self,
        own_url: str,
        live_nodes: Callable[[], Awaitable[dict[str, str]]],
        ttl_s: float = 2.0,
        consoles: list[str] | tuple[str, ...] = (),
    ) -> None:
        self.own = origin_of(own_url)
        self._live_nodes = live_nodes
        self.ttl_s = ttl_s
        # Where consoles are opened besides the nodes (cluster.console_origins): allowed, not connected to.
        self.consoles = frozenset(origin_of(c) for c in consoles)
        self._origins: frozenset[str] = frozenset({self.own})
        self._read_at = float("-inf")

    async def get(self) -> frozenset[str]:
        """The current set (cached)."""
        now = time.monotonic()
        if now - self._read_at < self.ttl_s:
            return self._origins
        self._read_at = now
        try:
            urls = (await self._live_nodes()).values()
        except Exception as e:  # Redis away: keep what we knew
            log.debug("cluster cors: live nodes unknown (%s)", type(e).__name__)
            return self._origins
        self._origins = frozenset({self.own, *(origin_of(u) for u in urls)})
        return self._origins

    async def allowed(self, origin: str) -> bool:
        """Whether a page at ``origin`` may make cross-origin camera requests to this node."""
        origin = origin.lower()
        return origin in self.consoles or origin in await self.get()


def _same_origin(request: Request, origin: str) -> bool:
    host = request.headers.get("host", "")
    return bool(host) and origin.split("://", 1)[-1] == host.lower()


def install_cors(app: FastAPI, peers: PeerOrigins) -> None:
    """Answer preflights and add CORS headers on the camera routes for the cluster's origins."""

    @app.middleware("http")
    async def cluster_cors(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        origin = request.headers.get("origin")
        if not origin or not CAMERA_ROUTES.match(request.url.path) or _same_origin(request, origin):
            return await call_next(request)
        allowed = await peers.allowed(origin)
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            if not allowed:
                log.info("cluster cors: preflight from %s refused (not a node of this cluster)", origin[:100])
                return Response(status_code=403, headers={"Vary": "Origin"})
            return Response(
                status_code=204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": ALLOW_METHODS,
                    "Access-Control-Allow-Headers": ALLOW_HEADERS,
                    "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
                    "Vary": "Origin",
                },
            )
        response = await call_next(request)
        _vary_origin(response)
        if allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        return response


def _vary_origin(response: Any) -> None:
    vary = response.headers.get("Vary")
    if not vary:
        response.headers["Vary"] = "Origin"
    elif "origin" not in vary.lower():
        response.headers["Vary"] = f"{vary}, Origin"
