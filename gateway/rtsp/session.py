"""One RTSP viewer session: a hub reader whose access units leave as RTP, interleaved in the RTSP
connection (TCP) or as datagrams to the client's ports (UDP)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from gateway.rtsp.rtp import RtpPacketizer
from streams import AccessUnit, Reader, ReaderClosed, StreamHub

__all__ = ["RtspSession", "UdpPorts", "open_udp_ports"]

log = logging.getLogger(__name__)

CATCH_UP_AGE_S = 0.1  # a unit older than this is from the GOP cache (catch-up), not live
CATCH_UP_PACE_S = 0.002


class _Datagrams(asyncio.DatagramProtocol):
    """A server port: what arrives (RTCP reports) only proves the client is alive."""

    def __init__(self, seen: Callable[[], None]) -> None:
        self.seen = seen

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.seen()


class UdpPorts:
    """The server's RTP and RTCP ports of one UDP session."""

    def __init__(self, rtp: asyncio.DatagramTransport, rtcp: asyncio.DatagramTransport, port: int) -> None:
        self.rtp = rtp
        self.rtcp = rtcp
        self.port = port

    def close(self) -> None:
        self.rtp.close()
        self.rtcp.close()


async def open_udp_ports(host: str, seen: Callable[[], None], attempts: int = 32) -> UdpPorts:
    """An even RTP port and the odd RTCP port after it (clients assume RTCP is RTP + 1)."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(attempts):
        rtp_sock = socket.socket(family, socket.SOCK_DGRAM)
        rtcp_sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            rtp_sock.bind((host, 0))
            port = rtp_sock.getsockname()[1]
            if port % 2 or port >= 65535:
                raise OSError("odd port")
            rtcp_sock.bind((host, port + 1))
        except OSError:
            rtp_sock.close()
            rtcp_sock.close()
            continue
        rtp, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(seen), sock=rtp_sock)
        rtcp, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(seen), sock=rtcp_sock)
        return UdpPorts(rtp, rtcp, port)
    raise OSError("no free pair of UDP ports")


class RtspSession:
    """Sends one reader's access units as RTP until closed; the first unit is the keyframe the
    reader started with (from the GOP cache: a fast start)."""

    SR_INTERVAL_S = 5.0

    def __init__(
        self,
        session_id: str,
        hub: StreamHub,
        reader: Reader,
        codec: str,
        mtu: int,
        first: AccessUnit | None,
    ) -> None:
        self.id = session_id
        self.hub = hub
        self.reader = reader
        self.packetizer = RtpPacketizer(codec, mtu)
        self.first = first
        self.registry_id: str | None = None  # the viewer session in the gateway's registry
        self.last_seen = time.monotonic()
        self._writer: asyncio.StreamWriter | None = None
        self._channels = (0, 1)
        self._udp: UdpPorts | None = None
        self._client: tuple[str, int, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._write_timeout_s = 10.0
        self.on_failed: Callable[[str], None] | None = None
        self._stats_sink: dict[str, Any] | None = None

    def seen(self) -> None:
        """The client showed it is alive (a request, an RTCP report)."""
        self.last_seen = time.monotonic()

    def over_tcp(self, writer: asyncio.StreamWriter, channels: tuple[int, int], write_timeout_s: float) -> None:
        """Send interleaved in the RTSP connection on ``channels`` (RTP, RTCP)."""
        self._writer, self._channels, self._write_timeout_s = writer, channels, write_timeout_s

    def over_udp(self, ports: UdpPorts, client_host: str, client_ports: tuple[int, int]) -> None:
        """Send datagrams from ``ports`` to the client's RTP and RTCP ports."""
        self._udp, self._client = ports, (client_host, *client_ports)

    @property
    def transport(self) -> str:
        """``tcp`` or ``udp``."""
        return "udp" if self._udp is not None else "tcp"

    @property
    def playing(self) -> bool:
        """PLAY was answered and units are being sent."""
        return self._task is not None

    def rtp_info(self) -> tuple[int, int]:
        """The sequence number and RTP timestamp the first packet after PLAY will carry."""
        pts = self.first.pts if self.first is not None else 0
        return self.packetizer.seq, self.packetizer.rtp_time(pts)

    def play(self) -> None:
        """Start sending."""
        if self._task is None:
            self._task = asyncio.create_task(self._send(), name=f"rtsp-session-{self.id}")

    async def _send(self) -> None:
        reason = "client gone"
        try:
            last_sr = 0.0
            au = self.first
            self.first = None
            while True:
                if au is None:
                    au = await self.reader.get()
                self.packetizer.restart(self.reader.generation, au.pts)
                packets = self.packetizer.packetize(au)
                if self._udp is not None and time.time() - au.wallclock > CATCH_UP_AGE_S:
                    # The cached GOP a viewer starts with goes out paced over UDP (nothing slows a
                    # datagram burst down but the client's socket buffer overflowing); TCP drains.
                    await asyncio.sleep(CATCH_UP_PACE_S)
                au = None
                now = time.monotonic()
                sr = None
                if now - last_sr >= self.SR_INTERVAL_S:
                    last_sr, sr = now, self.packetizer.sender_report()
                await self._out(packets, sr)
                if sr is not None and self._stats_sink is not None:
                    self._stats_sink.update(self.stats())  # with each sender report: every 5 s
        except ReaderClosed as e:
            reason = f"stream ended: {e}"
        except (ConnectionError, TimeoutError, OSError) as e:
            reason = f"client gone: {type(e).__name__}"
        except asyncio.CancelledError:
            return
        if self.on_failed is not None:
            self.on_failed(reason)

    async def _out(self, packets: list[bytes], sr: bytes | None) -> None:
        if self._writer is not None:
            rtp, rtcp = self._channels
            frames = [b"$" + struct.pack("!BH", rtp, len(p)) + p for p in packets]
            if sr is not None:
                frames.append(b"$" + struct.pack("!BH", rtcp, len(sr)) + sr)
            self._writer.write(b"".join(frames))
            # A client that stops reading: its reader drops whole GOPs meanwhile; one that takes
            # nothing for write_timeout_s is gone.
            # (asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation that comes
            # as the drain completes, and a session ended then would go on sending.)
            async with asyncio.timeout(self._write_timeout_s):
                await self._writer.drain()
        elif self._udp is not None and self._client is not None:
            host, rtp_port, rtcp_port = self._client
            for p in packets:
                self._udp.rtp.sendto(p, (host, rtp_port))
            if sr is not None:
                self._udp.rtcp.sendto(sr, (host, rtcp_port))

    async def close(self, reason: str) -> None:
        """Stop sending, leave the hub, free the ports."""
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.hub.detach(self.reader, reason)
        if self._udp is not None:
            self._udp.close()
            self._udp = None

    @property
    def stats_sink(self) -> dict[str, Any] | None:
        """Where :meth:`stats` are kept up to date (the registry session's ``stats``)."""
        return self._stats_sink

    @stats_sink.setter
    def stats_sink(self, sink: dict[str, Any] | None) -> None:
        self._stats_sink = sink
        if sink is not None:
            sink.update(self.stats())

    def stats(self) -> dict[str, Any]:
        """For the session list."""
        return {
            "transport": self.transport,
            "rtp_packets": self.packetizer.packets,
            "dropped_gops": self.reader.dropped_gops,
        }
