"""WS-Discovery: find ONVIF devices by ``Probe`` messages, unicast to listed addresses or multicast
on one interface the admin named (never on an interface nobody named: a probe on the wrong network
tells every camera there that someone is looking).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass

__all__ = ["MULTICAST", "DiscoveredDevice", "probe", "probe_message"]

log = logging.getLogger(__name__)

MULTICAST = ("239.255.255.250", 3702)
_NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsd": "http://schemas.xmlsoap.org/ws/2005/04/discovery",
}


@dataclass(frozen=True, slots=True)
class DiscoveredDevice:
    """One ``ProbeMatch``: the device's endpoint, service addresses and scopes."""

    endpoint: str
    xaddrs: tuple[str, ...]
    scopes: tuple[str, ...]
    source: str  # the address the answer came from

    def scope(self, kind: str) -> str:
        """The value of an ``onvif://www.onvif.org/<kind>/...`` scope (name, hardware, location), or ''."""
        prefix = f"onvif://www.onvif.org/{kind}/"
        for s in self.scopes:
            if s.startswith(prefix):
                return s[len(prefix) :].replace("_", " ")
        return ""


def probe_message(message_id: str) -> bytes:
    """A ``Probe`` for NetworkVideoTransmitter devices."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{_NS["s"]}" xmlns:wsa="{_NS["wsa"]}" '
        f'xmlns:wsd="{_NS["wsd"]}" xmlns:dn="http://www.onvif.org/ver10/network/wsdl"><s:Header>'
        f"<wsa:MessageID>{message_id}</wsa:MessageID><wsa:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</wsa:To>"
        "<wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</wsa:Action></s:Header><s:Body>"
        "<wsd:Probe><wsd:Types>dn:NetworkVideoTransmitter</wsd:Types></wsd:Probe></s:Body></s:Envelope>"
    ).encode()


def _parse(data: bytes, message_id: str, source: str) -> list[DiscoveredDevice]:
    try:
        env = ET.fromstring(data[:65536])  # noqa: S314 -- bounded datagram; expat refuses entity bombs
    except ET.ParseError:
        return []
    if (env.findtext("s:Header/wsa:RelatesTo", "", _NS) or "").strip() != message_id:
        return []  # an answer to someone else's probe
    out = []
    for m in env.findall("s:Body/wsd:ProbeMatches/wsd:ProbeMatch", _NS):
        out.append(
            DiscoveredDevice(
                endpoint=(m.findtext("wsa:EndpointReference/wsa:Address", "", _NS) or "").strip(),
                xaddrs=tuple((m.findtext("wsd:XAddrs", "", _NS) or "").split()),
                scopes=tuple((m.findtext("wsd:Scopes", "", _NS) or "").split()),
                source=source,
            )
        )
    return out


async def probe(
    targets: list[tuple[str, int]], *, interface: str | None = None, wait_s: float = 2.0
) -> list[DiscoveredDevice]:
    """Probe ``targets`` (unicast ``(host, port)``), and multicast on the interface whose IPv4
    address is ``interface`` when given (TTL 1: never beyond the local network). Answers arriving
    within ``wait_s`` are returned, one per endpoint."""
    message_id = f"urn:uuid:{uuid.uuid4()}"
    msg = probe_message(message_id)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    found: dict[str, DiscoveredDevice] = {}
    try:
        if interface is not None:
            addr = str(ipaddress.IPv4Address(interface))
            sock.bind((addr, 0))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(addr))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        loop = asyncio.get_running_loop()
        for t in targets:
            await loop.sock_sendto(sock, msg, t)
        if interface is not None:
            await loop.sock_sendto(sock, msg, MULTICAST)
        deadline = time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                data, src = await asyncio.wait_for(loop.sock_recvfrom(sock, 65536), left)
            except TimeoutError:
                break
            except OSError as e:  # e.g. ICMP port unreachable from a listed address
                log.debug("discovery: %s", e)
                continue
            for d in _parse(data, message_id, src[0]):
                found.setdefault(d.endpoint or ",".join(d.xaddrs), d)
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    return list(found.values())
