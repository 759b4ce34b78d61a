"""ICE configuration from settings: the servers we may use and the host addresses we offer.

aiortc/aioice never offer loopback addresses and would offer every interface; a gateway in a
control room must offer exactly the addresses its operators can reach (loopback for the demo and
tests). aioice has no option for this, so :func:`restrict_host_addresses` replaces its address
discovery function once, process-wide, with one that answers from settings.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

__all__ = ["ice_configuration", "restrict_host_addresses"]

_ORIGINAL = aioice.ice.get_host_addresses
_ALLOWED: list[str] = []


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


def ice_configuration(urls: Sequence[str]) -> RTCConfiguration:
    """An explicit ICE server list (never aiortc's default public STUN server)."""
    servers = [RTCIceServer(urls=u) for u in urls]
    return RTCConfiguration(iceServers=servers)
