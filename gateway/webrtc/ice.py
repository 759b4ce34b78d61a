"""ICE configuration from settings: the servers we may use and the host addresses we offer.

aiortc/aioice never offer loopback addresses and would offer every interface; a gateway in a
control room must offer exactly the addresses its operators can reach. aioice has no option for
this, so :func:`restrict_host_addresses` replaces its address discovery function once,
process-wide, with one that answers from settings. Which addresses those are when the settings
name none is decided by :func:`host_addresses_for`: loopback for a gateway that listens on
loopback (the demo and tests), every interface address for one that listens beyond it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

__all__ = ["host_addresses_for", "ice_configuration", "interface_addresses", "restrict_host_addresses"]

_ORIGINAL = aioice.ice.get_host_addresses
_ALLOWED: list[str] = []
LOOPBACK = ["127.0.0.1"]


def _configured_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if not _ALLOWED:
        return _ORIGINAL(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    out = []
    for addr in _ALLOWED:
        version = ipaddress.ip_address(addr).version
        if (version == 4 and use_ipv4) or (version == 6 and use_ipv6):
            out.append(addr)
    return out


def restrict_host_addresses(addresses: Sequence[str]) -> None:
    """Offer only ``addresses`` as host candidates (empty: every interface, aioice's default)."""
    for a in addresses:
        ipaddress.ip_address(a)  # raises ValueError for anything but an IP address
    _ALLOWED[:] = list(addresses)
    aioice.ice.get_host_addresses = _configured_addresses


def interface_addresses() -> list[str]:
    """What aioice offers when unrestricted: every interface address but loopback (and IPv6 link-local)."""
    return list(_ORIGINAL(use_ipv4=True, use_ipv6=True))


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it resolves beyond loopback as far as we can tell
        return False


def host_addresses_for(configured: Sequence[str] | None, bind_host: str) -> list[str]:
    """The addresses to restrict host candidates to ([] = every interface).

    ``configured`` (``webrtc.host_addresses``) wins when set. Unset, a gateway listening on loopback
    offers 127.0.0.1 (only local viewers can reach it anyway) and one listening beyond loopback
    (``0.0.0.0``, a LAN address, a name) offers every interface address: players on other machines,
    and ICE stacks that never use loopback (libnice, in GStreamer), can then connect.
    """
    if configured is not None:
        return list(configured)
    return list(LOOPBACK) if _is_loopback(bind_host) else []


def ice_configuration(urls: Sequence[str]) -> RTCConfiguration:
    """An explicit ICE server list (never aiortc's default public STUN server)."""
    servers = [RTCIceServer(urls=u) for u in urls]
    return RTCConfiguration(iceServers=servers)
