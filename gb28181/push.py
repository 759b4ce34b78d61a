"""Sending a camera's access units to a superior platform as MPEG-PS over RTP (GB/T 28181 live
media of the cascade): UDP datagrams, or RFC 4571 over TCP where we connect (the superior's
``a=setup:passive``) or the superior connects to us (its ``a=setup:active``).

The units come from the stream core (Annex B, 90 kHz PTS, SPS/PPS before keyframes); nothing is
re-encoded. Each unit becomes one PS pack (:class:`gb28181.ps.PsMuxer`) cut into RTP payloads of
at most ``mtu`` bytes, the marker bit on the last; the RTP clock is the units' 90 kHz PTS, kept
continuous across upstream restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from gb28181.ps import PsMuxer
from gb28181.rtp import RtpPacket, frame_4571
from streams import AccessUnit

__all__ = ["MediaOffer", "OfferError", "PsPusher", "UnitSource", "parse_offer"]

CATCH_UP_AGE_S = 0.1  # a unit older than this comes from the GOP cache: paced, not burst, over UDP
CATCH_UP_PACE_S = 0.002
PAYLOAD_TYPE = 96


class OfferError(ValueError):
    """An INVITE offer we cannot serve (the message says what is missing)."""


@dataclass(frozen=True, slots=True)
class MediaOffer:
    """What a superior's INVITE asks for: where to send, how, and the SSRC to use."""

    host: str
    port: int
    tcp: bool
    setup: str  # "active" (it connects to us), "passive" (we connect), "" for UDP
    ssrc: str  # the y= line's decimal digits, echoed in our answer

    @property
    def ssrc_value(self) -> int:
        """The SSRC as an RTP field."""
        return int(self.ssrc) & 0xFFFFFFFF


def parse_offer(sdp: bytes) -> MediaOffer:
    """The superior's SDP offer; raises :class:`OfferError`."""
    text = sdp.decode("ascii", "replace")
    host = re.search(r"^c=IN IP4 ([0-9.]{7,15})\s*$", text, re.M)
    media = re.search(r"^m=video (\d{1,5}) ((?:TCP/)?RTP/AVP)\b", text, re.M | re.I)
    if host is None or media is None:
        raise OfferError("no IPv4 c= line or no m=video RTP/AVP (or TCP/RTP/AVP) line")
    if "PS/90000" not in text.upper():
        raise OfferError("the offer does not accept PS/90000")
    if re.search(r"^a=(?:recvonly|sendrecv)", text, re.M) is None and re.search(r"^a=sendonly", text, re.M):
        raise OfferError("the offer wants to send, not receive")
    ssrc = re.search(r"^y=(\d{1,10})\s*$", text, re.M)
    tcp = media.group(2).upper().startswith("TCP")
    setup = re.search(r"^a=setup:(active|passive)", text, re.M | re.I)
    port = int(media.group(1))
    if not 1 <= port <= 65535:
        raise OfferError("media port out of range")
    return MediaOffer(
        host=host.group(1),
        port=port,
        tcp=tcp,
        setup=(setup.group(1).lower() if setup else "passive") if tcp else "",
        ssrc=ssrc.group(1) if ssrc else f"0{random.randrange(10**9):09d}",
    )


class UnitSource(Protocol):
    """Where the units come from (a hub reader, behind the gateway's session)."""

    codec: str

    def next_unit(self) -> Awaitable[AccessUnit]:
        """The next access unit (raises when the stream has ended)."""
        ...

    @property
    def generation(self) -> int:
        """Bumped when the upstream restarts (its timestamps start again)."""
        ...


class PsPusher:
    """One live stream to a superior: opens the media path, then sends until :meth:`close`."""

    def __init__(self, offer: MediaOffer, local_host: str, source: UnitSource, mtu: int = 1400) -> None:
        self.offer = offer
        self.local_host = local_host
        self.source = source
        self.mtu = mtu
        self.local_port = 0
        self.packets = 0
        self.bytes = 0
        self.first_packet_at: float | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def prepare(self) -> int:
        """Open our end of the media path (a UDP socket, or a TCP listener when the superior
        connects); returns the port for our SDP answer."""
        loop = asyncio.get_running_loop()
        if not self.offer.tcp:
            transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=(self.local_host, 0)
            )
            self._udp = transport
            self.local_port = transport.get_extra_info("sockname")[1]
        elif self.offer.setup == "active":  # it connects to us: listen for exactly one connection

            async def accepted(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                if self._writer is not None:
                    w.close()
                    return
                self._writer = w
                self._connected.set()

            self._server = await asyncio.start_server(accepted, self.local_host, 0)
            self.local_port = self._server.sockets[0].getsockname()[1]
        else:
            self.local_port = 9  # RFC 4145: the active side's port is not used ("discard")
        return self.local_port

    def answer(self, channel_id: str) -> bytes:
        """Our SDP answer (after :meth:`prepare`)."""
        o = self.offer
        proto = "TCP/RTP/AVP" if o.tcp else "RTP/AVP"
        setup = ""
        if o.tcp:
            setup = f"a=setup:{'passive' if o.setup == 'active' else 'active'}\r\na=connection:new\r\n"
        return (
            f"v=0\r\no={channel_id} 0 0 IN IP4 {self.local_host}\r\ns=Play\r\nc=IN IP4 {self.local_host}\r\n"
            f"t=0 0\r\nm=video {self.local_port} {proto} {PAYLOAD_TYPE}\r\na=sendonly\r\n"
            f"a=rtpmap:{PAYLOAD_TYPE} PS/90000\r\n{setup}y={o.ssrc}\r\n"
        ).encode()

    def start(self) -> None:
        """Start sending (at the superior's ACK)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"gb-push-{self.offer.host}:{self.offer.port}")

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The sending task (done when the stream failed or was closed)."""
        return self._task

    async def _open_tcp(self) -> asyncio.StreamWriter:
        if self.offer.setup == "active":
            async with asyncio.timeout(10):
                await self._connected.wait()
            assert self._writer is not None
            return self._writer
        async with asyncio.timeout(10):
            _, writer = await asyncio.open_connection(self.offer.host, self.offer.port)
        self._writer = writer
        return writer

    async def _run(self) -> None:
        writer = await self._open_tcp() if self.offer.tcp else None
        mux = PsMuxer(self.source.codec)
        seq = random.randrange(1 << 16)
        ssrc = self.offer.ssrc_value
        target = (self.offer.host, self.offer.port)
        generation = self.source.generation
        offset: int | None = None
        last = 0
        started = False
        while True:
            unit = await self.source.next_unit()
            if not started and not unit.keyframe:
                continue  # a decoder starts at a keyframe
            started = True
            if offset is None or self.source.generation != generation:
                # Continuous PTS across upstream restarts: the superior sees one stream.
                generation = self.source.generation
                offset = (last + 3600 if offset is not None else 3600) - unit.pts
            pts = (unit.pts + offset) & ((1 << 33) - 1)
            last = pts
            ps = mux.mux(unit.data, pts, unit.keyframe)
            chunks = [ps[i : i + self.mtu] for i in range(0, len(ps), self.mtu)]
            for k, chunk in enumerate(chunks):
                pkt = RtpPacket(PAYLOAD_TYPE, seq, pts, ssrc, k == len(chunks) - 1, chunk).encode()
                seq = (seq + 1) & 0xFFFF
                if writer is not None:
                    writer.write(frame_4571(pkt))
                elif self._udp is not None:
                    self._udp.sendto(pkt, target)
                self.packets += 1
                self.bytes += len(pkt)
            if self.first_packet_at is None:
                self.first_packet_at = time.monotonic()
            if writer is not None:
                async with asyncio.timeout(10):  # a superior that stops reading does not hold memory
                    await writer.drain()
            elif time.time() - unit.wallclock > CATCH_UP_AGE_S:
                await asyncio.sleep(CATCH_UP_PACE_S)

    async def close(self) -> None:
        """Stop sending and close the media path."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if self._udp is not None:
            self._udp.close()
        if self._writer is not None:
            self._writer.close()
        if self._server is not None:
            self._server.close()
