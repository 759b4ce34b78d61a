"""The client's address behind trusted reverse proxies (``server.trusted_proxies``).

Behind a reverse proxy every connection comes from the proxy, so throttling and auditing by the
connecting address would treat all clients as one. ``X-Forwarded-For`` says who the client was,
but anyone can send that header: it is believed only on connections from a configured proxy,
and then only as far as the proxies go. Each proxy appends the address it was connected from,
so the client is the right-most hop that is not itself a trusted proxy (hops to its left were
written by the client and are ignored). This is the only place the header is read: uvicorn's own
proxy handling stays off (``proxy_headers=False``), so no second, looser rule applies.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["ForwardedFor", "TrustedProxies"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse_hop(hop: str) -> Address | None:
    """An address from one ``X-Forwarded-For`` hop (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``)."""
    hop = hop.strip()
    if hop.startswith("["):
        hop = hop[1 : hop.find("]")] if "]" in hop else ""
    elif hop.count(":") == 1:
        hop = hop.split(":", 1)[0]
    try:
        return ipaddress.ip_address(hop)
    except ValueError:
        return None


class TrustedProxies:
    """A set of proxy networks, and the client address they vouch for."""

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: str | Address | None) -> bool:
        """Whether ``address`` is one of the trusted proxies."""
        if address is None:
            return False
        if isinstance(address, str):
            try:
                address = ipaddress.ip_address(address)
            except ValueError:
                return False
        return any(address in n for n in self.networks)

    def client(self, peer: str, forwarded_for: Sequence[str]) -> str:
        """The client's address for a connection from ``peer`` carrying these ``X-Forwarded-For``
        header values: ``peer`` itself unless it is a trusted proxy; else the right-most hop that is
        not one (if every hop is, the left-most). A hop that is not an address ends the walk: the
        last trusted address seen stands for the client."""
        if not self.trusts(peer):
            return peer
        hops = [h for value in forwarded_for for h in value.split(",")]
        current = peer
        for hop in reversed(hops):
            address = _parse_hop(hop)
            if address is None:
                return current
            current = str(address)
            if not self.trusts(address):
                return current
        return current


class ForwardedFor:
    """ASGI middleware: sets the scope's client (and scheme, from ``X-Forwarded-Proto``) from a
    trusted proxy's headers (see the module docstring)."""

    def __init__(self, app: Any, trusted: Sequence[str]) -> None:
        self.app = app
        self.proxies = TrustedProxies(trusted)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and client and self.proxies.trusts(client[0]):
            forwarded: list[str] = []
            proto = None
            for name, value in scope.get("headers", ()):
                if name == b"x-forwarded-for":
                    forwarded.append(value.decode("latin-1"))
                elif name == b"x-forwarded-proto":
                    proto = value.decode("latin-1").split(",")[-1].strip().lower()
            if forwarded:
                scope["client"] = (self.proxies.client(client[0], forwarded), 0)
            if proto in ("http", "https"):
                scope["scheme"] = proto if scope["type"] == "http" else proto.replace("http", "ws")
        await self.app(scope, receive, send)
