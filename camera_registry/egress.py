"""Where camera URLs may lead (``cameras.allowed_networks``): one check for every place that stores
or opens a camera URL.

A camera URL names any host an admin (or an imported inventory) writes, and the gateway connects
to it with stored credentials: without a boundary a camera entry reaches internal services (SSRF).
:class:`CameraNetworks` is that boundary:

- on import and edit, an IP-literal host outside the networks is refused (:meth:`refusal`);
  host *names* are not resolved then (the gateway's resolver may not be the camera network's, and
  an import of 20,000 rows must not wait on DNS) but on every connect;
- on every connect (the hub's upstream, snapshot cold pulls, probes: all go through
  :meth:`CameraNetworks.open`), the host is resolved, the first address inside the networks is
  chosen, and FFmpeg is handed a URL naming *that address*: a name that resolves elsewhere a
  moment later (DNS rebinding) cannot move the connection.

Not covered, because FFmpeg offers no hook: its RTSP client follows ``3xx`` redirects by itself,
to any host, sending the stored credentials again. The boundary for that is the egress firewall
rule in ``docs/security.md``.

An empty list means no limit (the gateway warns at startup).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from camera_registry.urls import SourceUrlError

__all__ = ["CameraAddressRefused", "CameraNetworks", "Resolver", "system_resolver"]

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> addresses (raises OSError, e.g. socket.gaierror, when the name does not resolve)
Resolver = Callable[[str, int], Sequence[str]]
_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}
REASON = "camera address not in cameras.allowed_networks"


class CameraAddressRefused(SourceUrlError):
    """A camera URL leads outside ``cameras.allowed_networks``; the message names the field, the
    host and the address, never the URL's credentials."""


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (the operating system's resolver), in its order."""
    seen: dict[str, None] = {}
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        seen.setdefault(str(sockaddr[0]), None)
    return list(seen)


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class CameraNetworks:
    """The networks camera URLs may reach, and the one function that opens a camera (:meth:`open`)."""

    def __init__(self, networks: Iterable[str | Network] = (), resolver: Resolver = system_resolver) -> None:
        self.networks: tuple[Network, ...] = tuple(ipaddress.ip_network(n) for n in networks)
        self._resolve = resolver

    @property
    def limited(self) -> bool:
        """Whether any limit applies (an empty list allows every host)."""
        return bool(self.networks)

    def allows(self, address: str | Address) -> bool:
        """Whether ``address`` (an IP address) lies in one of the networks (always, when unlimited)."""
        addr = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
        return not self.networks or any(addr in n for n in self.networks)

    def refusal(self, url: str, field: str = "source_url") -> str | None:
        """Why a camera URL may not be stored (its host is an address outside the networks), or None.

        Host names pass here; they are checked on every connect, after resolution."""
        host = urlsplit(url).hostname or ""
        addr = _literal(host)
        if addr is None or self.allows(addr):
            return None
        return f"{field}: address {addr} is outside cameras.allowed_networks"

    def check(self, url: str, field: str = "source_url") -> None:
        """Raise :class:`CameraAddressRefused` when :meth:`refusal` has a reason."""
        reason = self.refusal(url, field)
        if reason is not None:
            raise CameraAddressRefused(reason)

    def connect_url(self, url: str, field: str = "source_url") -> str:
        """The URL to open now: ``url`` with its host replaced by a resolved address inside the
        networks (blocking: DNS). Unlimited: ``url`` unchanged, resolved by FFmpeg itself.

        Raises :class:`CameraAddressRefused` when no address is inside, and the resolver's
        ``OSError`` when the name does not resolve."""
        if not self.networks:
            return url
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 554)
        literal = _literal(host)
        candidates = [str(literal)] if literal is not None else list(self._resolve(host, port))
        for cand in candidates:
            if self.allows(cand):
                return _with_host(url, cand)
        log.warning(
            "camera %s %s resolves to %s, none in cameras.allowed_networks: not connecting",
            field,
            host,
            ", ".join(candidates) or "no address",
        )
        raise CameraAddressRefused(f"{field}: {REASON}")

    def open(self, url: str, **kwargs: Any) -> Any:
        """``av.open`` a camera URL (blocking) after :meth:`connect_url`: every camera connection
        of the project goes through here."""
        import av

        return av.open(self.connect_url(url), **kwargs)


def _with_host(url: str, address: str) -> str:
    """``url`` with its host replaced by ``address`` (user info, port, path and query kept)."""
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    host = f"[{address}]" if ":" in address else address
    netloc = f"{userinfo}{at}{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
