"""A GB/T 28181 channel as one more upstream of the stream core (:class:`streams.ports.Upstream`).

One session: take an RTP port, INVITE the channel (PS/90000, our SSRC in ``y=``), demux the PS into
elementary-stream frames (:class:`~gb28181.ps.PsDemuxer`, timed by their PES PTS, not by RTP), and
hand access units to the hub. No RTP for ``gb28181.rtp_timeout_s``, a BYE from the device or a
refused INVITE end the session: BYE, then INVITE again with backoff, reported to the hub exactly
as an RTSP camera's reconnects are (the viewers see "reconnecting").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from fractions import Fraction

import av

from gb28181.media import MediaPorts, RtpReceiver, offer_sdp
from gb28181.ps import Frame, PsDemuxer
from gb28181.rtp import RtpPacket
from gb28181.server import Dialog, Gb28181Server
from streams.packets import AccessUnitAssembler, split_nals
from streams.ports import StreamInfo, UpstreamCallbacks, UpstreamState, UpstreamTimeouts

__all__ = ["Gb28181Upstream", "parse_channel_url"]

log = logging.getLogger(__name__)
_TB = Fraction(1, 90_000)
_RAN_WELL_S = 5.0


def parse_channel_url(url: str) -> tuple[str, str]:
    """(device id, channel id) of ``gb28181://<device>/<channel>``."""
    rest = url.removeprefix("gb28181://")
    device, _, channel = rest.partition("/")
    if len(device) != 20 or len(channel) != 20 or not (device + channel).isdigit():
        raise ValueError("not a gb28181://<device>/<channel> URL")
    return device, channel


def _picture_size(codec: str, data: bytes) -> tuple[int, int]:
    """Width and height from one keyframe (decoded once per session: the SDP does not say)."""
    ctx = av.CodecContext.create("hevc" if codec == "hevc" else "h264", "r")
    for pkt in ctx.parse(data) + ctx.parse(b""):
        for frame in ctx.decode(pkt):
            return frame.width, frame.height
    for frame in ctx.decode(None):
        return frame.width, frame.height
    return 0, 0


class Gb28181Upstream:
    """Pulls one channel of a registered device (an :class:`~streams.ports.Upstream`); runs on the loop."""

    def __init__(
        self,
        camera_id: str,
        url: str,
        loop: asyncio.AbstractEventLoop,
        *,
        callbacks: UpstreamCallbacks,
        timeouts: UpstreamTimeouts = UpstreamTimeouts(),
        server: Gb28181Server,
        ports: MediaPorts,
        transport: str = "udp",
    ) -> None:
        self.camera_id = camera_id
        self.device_id, self.channel_id = parse_channel_url(url)
        self._loop = loop
        self._cb = callbacks
        self.timeouts = timeouts
        self._server = server
        self._ports = ports
        self.transport = transport
        self.attempts = 0
        self._task: asyncio.Task[None] | None = None
        self._hangup = asyncio.Event()
        self._call_id: str | None = None
        self.dropped = 0  # RTP from a wrong source or SSRC, summed over sessions

    @property
    def alive(self) -> bool:
        """The session loop runs."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start INVITEing."""
        self._server.on_bye.append(self._bye)
        self._task = self._loop.create_task(self._run())

    def stop(self) -> None:
        """Stop (the current dialog gets a BYE)."""
        if self._task is not None:
            self._task.cancel()

    async def join(self, wait_s: float = 10.0) -> None:
        """Wait until stopped."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), wait_s)

    def _bye(self, call_id: str) -> None:
        if call_id == self._call_id:
            self._hangup.set()

    async def _run(self) -> None:
        delay = self.timeouts.backoff_initial_s
        failures = 0
        first = True
        try:
            while True:
                self._cb.on_state(UpstreamState.connecting if first else UpstreamState.reconnecting, None)
                first = False
                self.attempts += 1
                started = time.monotonic()
                reason, ran = await self._session()
                ran_well = ran and time.monotonic() - started >= _RAN_WELL_S
                if ran:
                    failures, delay = 0, self.timeouts.backoff_initial_s
                else:
                    failures += 1
                state = UpstreamState.failed if failures >= self.timeouts.failed_after else UpstreamState.reconnecting
                self._cb.on_state(state, reason)
                wait = random.uniform(0.0, 0.1) if ran_well else delay * random.uniform(0.8, 1.2)
                log.info("camera %s (GB/T 28181): %s; INVITE again in %.1f s", self.camera_id, reason, wait)
                await asyncio.sleep(wait)
                delay = min(delay * 2, self.timeouts.backoff_max_s)
        finally:
            with contextlib.suppress(ValueError):
                self._server.on_bye.remove(self._bye)
            self._cb.on_state(UpstreamState.idle, None)

    async def _session(self) -> tuple[str, bool]:
        """One INVITE dialog; (why it ended, whether any video came)."""
        s = self._server.settings
        demux = PsDemuxer()
        asm: AccessUnitAssembler | None = None
        got_video = False
        info_sent = False

        def on_frame(frame: Frame) -> None:
            nonlocal asm, info_sent, got_video
            if asm is None or asm.codec != frame.codec:
                asm = AccessUnitAssembler(frame.codec)
            for unit in asm.feed(frame.data, frame.pts, _TB):
                if not info_sent:
                    if not unit.keyframe:
                        continue  # the hub's first unit of a session is a keyframe
                    width, height = _picture_size(frame.codec, unit.data)
                    params = [n for n in split_nals(unit.data) if n and _is_param(frame.codec, n)]
                    extradata = b"".join(b"\x00\x00\x00\x01" + n for n in params)
                    self._cb.on_info(StreamInfo(frame.codec, width, height, extradata, None))
                    self._cb.on_state(UpstreamState.live, None)
                    info_sent = True
                got_video = True
                self._cb.on_unit(unit)

        unposted = 0

        def on_packet(pkt: RtpPacket) -> None:
            nonlocal unposted
            unposted += len(pkt.payload) + 12
            for frame in demux.feed(pkt.payload):
                on_frame(frame)
            if pkt.marker:  # the device says the frame is complete: no need to wait for the next
                for frame in demux.flush():
                    on_frame(frame)

        transport = self.transport
        if transport == "auto":
            dev = self._server.devices.get(self.device_id)
            transport = dev.transport if dev is not None else "udp"
        port = self._ports.take()
        ssrc = f"0{s.domain[3:8].rjust(5, '0')}{random.randrange(10_000):04d}"
        rx = RtpReceiver(s.media_host, port, transport, int(ssrc), on_packet)
        dialog: Dialog | None = None
        self._hangup.clear()
        try:
            try:
                await rx.open()
                sdp = offer_sdp(s.platform_id, s.media_host, port, ssrc, transport)
                dialog = await asyncio.wait_for(
                    self._server.invite(self.device_id, self.channel_id, sdp, ssrc), self.timeouts.open_s
                )
            except (OSError, TimeoutError, ConnectionError) as e:
                return f"INVITE failed: {type(e).__name__}", False
            self._call_id = dialog.call_id
            # RTP must come from where the device's SIP came from (its SDP may name a LAN address).
            registered = self._server.devices.get(self.device_id)
            rx.source = registered.addr[0] if registered is not None else None
            opened = time.monotonic()
            while True:
                try:
                    await asyncio.wait_for(self._hangup.wait(), 0.25)
                    return "device ended the stream (BYE)", got_video
                except TimeoutError:
                    pass
                if unposted:
                    self._cb.on_bytes(unposted)
                    unposted = 0
                last = rx.last_packet or opened
                if time.monotonic() - last > s.rtp_timeout_s:
                    return f"no RTP for {s.rtp_timeout_s:g} s", got_video
        finally:
            self.dropped += rx.counters.wrong_source + rx.counters.wrong_ssrc
            self._call_id = None
            if dialog is not None:
                # Shielded: a stop must still send the BYE (the device would stream on otherwise).
                with contextlib.suppress(BaseException):
                    await asyncio.shield(self._server.bye(dialog))
            await rx.close()
            self._ports.give_back(port)


def _is_param(codec: str, nal: bytes) -> bool:
    if codec == "hevc":
        return (nal[0] >> 1) & 0x3F in (32, 33, 34)
    return nal[0] & 0x1F in (7, 8)
