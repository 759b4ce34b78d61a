"""Receiving a channel's RTP: a port from ``gb28181.media_ports``, UDP or TCP (RFC 4571, the device
connects: it is "active", we are ``a=setup:passive``), only from the device's address and with the
SSRC we asked for; everything else is dropped and counted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from gb28181.rtp import Rfc4571Reader, RtpError, RtpPacket

__all__ = ["MediaPorts", "RtpCounters", "RtpReceiver", "offer_sdp"]

log = logging.getLogger(__name__)


class MediaPorts:
    """The RTP port range, handed out round-robin (a port in use is skipped at bind time)."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high
        self._next = low
        self._used: set[int] = set()

    def take(self) -> int:
        """A port not handed out now; raises when every one is."""
        for _ in range(self.high - self.low + 1):
            port = self._next
            self._next = self.low if port >= self.high else port + 1
            if port not in self._used:
                self._used.add(port)
                return port
        raise OSError("gb28181.media_ports: every port is in use")

    def give_back(self, port: int) -> None:
        """The port is free again."""
        self._used.discard(port)


@dataclass
class RtpCounters:
    """Packets taken and refused by one receiver."""

    packets: int = 0
    bytes: int = 0
    wrong_source: int = 0
    wrong_ssrc: int = 0
    malformed: int = 0


def offer_sdp(platform_id: str, host: str, port: int, ssrc: str, transport: str) -> bytes:
    """The INVITE's SDP: receive PS/90000 at ``host:port``; over TCP we listen (``setup:passive``)."""
    proto = "TCP/RTP/AVP" if transport == "tcp" else "RTP/AVP"
    lines = [
        "v=0",
        f"o={platform_id} 0 0 IN IP4 {host}",
        "s=Play",
        f"c=IN IP4 {host}",
        "t=0 0",
        f"m=video {port} {proto} 96",
        "a=recvonly",
        "a=rtpmap:96 PS/90000",
    ]
    if transport == "tcp":
        lines += ["a=setup:passive", "a=connection:new"]
    lines.append(f"y={ssrc}")
    return ("\r\n".join(lines) + "\r\n").encode()


class _UdpIn(asyncio.DatagramProtocol):
    def __init__(self, rx: RtpReceiver) -> None:
        self.rx = rx

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.rx._packet(data, str(addr[0]))


class RtpReceiver:
    """One channel's RTP socket; ``on_packet`` gets each accepted packet (on the event loop)."""

    def __init__(self, host: str, port: int, transport: str, ssrc: int, on_packet: Callable[[RtpPacket], None]) -> None:
        self.host, self.port, self.transport, self.ssrc = host, port, transport, ssrc
        self.source: str | None = None  # the device's address, once the dialog names it
        self.on_packet = on_packet
        self.counters = RtpCounters()
        self.last_packet = 0.0
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        """Bind (UDP) or listen (TCP)."""
        loop = asyncio.get_running_loop()
        if self.transport == "tcp":
            self._server = await asyncio.start_server(self._tcp, self.host, self.port)
        else:
            t, _ = await loop.create_datagram_endpoint(lambda: _UdpIn(self), local_addr=(self.host, self.port))
            self._udp = t

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str(writer.get_extra_info("peername")[0])
        if self.source is not None and peer != self.source:
            self.counters.wrong_source += 1
            writer.close()
            return
        self._conns.add(writer)
        framer = Rfc4571Reader()
        try:
            while data := await reader.read(65536):
                for pkt in framer.feed(data):
                    self._packet(pkt, peer)
        except ConnectionError:
            pass
        finally:
            self._conns.discard(writer)
            writer.close()

    def _packet(self, data: bytes, source: str) -> None:
        if self.source is not None and source != self.source:
            self.counters.wrong_source += 1
            return
        try:
            pkt = RtpPacket.parse(data)
        except RtpError:
            self.counters.malformed += 1
            return
        if pkt.ssrc != self.ssrc:
            self.counters.wrong_ssrc += 1
            return
        self.counters.packets += 1
        self.counters.bytes += len(data)
        self.last_packet = time.monotonic()
        self.on_packet(pkt)

    async def close(self) -> None:
        """Close the socket(s)."""
        if self._udp is not None:
            self._udp.close()
        if self._server is not None:
            self._server.close()
            for w in list(self._conns):
                w.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
