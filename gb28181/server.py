"""The platform's SIP endpoint for GB/T 28181 devices: UDP and TCP on one port.

It registers devices (MD5 digest, single-use nonces, ``Expires`` honoured, ``Expires: 0`` ends a
registration), keeps their keepalive state, queries catalogs, and opens and closes live media
dialogs (INVITE / ACK / BYE) for :class:`~gb28181.upstream.Gb28181Upstream`. Replies go to the
address and port a request came from, never to what its ``Via`` claims (devices behind NAT write
their LAN address there). What happens to devices and channels (cameras, states) is the
:class:`DeviceDirectory`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from gb28181 import manscdp
from gb28181.manscdp import CatalogItem
from gb28181.settings import Gb28181Settings
from gb28181.sip import SipMessage, SipParseError, StreamParser, new_branch, new_tag, param, parse, uri_user
from httpdigest import digest

__all__ = ["DeviceDirectory", "Dialog", "Gb28181Server", "RegisteredDevice", "SipCounters", "WaitingDevice"]

log = logging.getLogger(__name__)
Addr = tuple[str, int]
_T1 = 0.5  # RFC 3261 retransmission base over UDP


class DeviceDirectory(Protocol):
    """Where devices and channels meet the camera registry (``gb28181.directory.CameraDirectory``)."""

    async def accepted(self, device_id: str) -> bool:
        """Whether a device is known (imported before, or accepted by an admin)."""
        ...

    async def catalog(self, device_id: str, items: list[CatalogItem]) -> None:
        """A device's full catalog arrived: create or update its channels' cameras."""
        ...

    async def device_state(self, device_id: str, online: bool, reason: str) -> None:
        """A device came online or went offline (its channels follow)."""
        ...


@dataclass
class SipCounters:
    """What was refused or dropped (for metrics; never a row per message)."""

    malformed: int = 0
    auth_failed: int = 0
    stale_nonce: int = 0
    rate_limited: int = 0
    unknown_device: int = 0
    refused_body: int = 0


@dataclass
class RegisteredDevice:
    """A device with a current registration."""

    device_id: str
    addr: Addr
    transport: str  # "udp" or "tcp"
    expires_at: float
    last_seen: float
    online: bool = True
    name: str = ""
    manufacturer: str = ""
    model: str = ""
    catalog: dict[str, CatalogItem] = field(default_factory=dict)
    catalog_total: int = 0
    writer: asyncio.StreamWriter | None = None


@dataclass
class WaitingDevice:
    """A device not in the registry that tried to register (for an admin to accept)."""

    device_id: str
    addr: Addr
    transport: str
    first_seen: float
    last_seen: float
    attempts: int = 1


@dataclass
class Dialog:
    """A live media dialog opened by INVITE."""

    device_id: str
    channel_id: str
    call_id: str
    from_tag: str
    to_tag: str
    cseq: int
    answer: bytes  # the device's SDP


class _Bucket:
    """Token bucket per source address (REGISTER floods)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._b: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float) -> bool:
        tokens, at = self._b.pop(key, (self.rate, now))
        tokens = min(self.rate, tokens + (now - at) * self.rate)
        ok = tokens >= 1.0
        self._b[key] = (tokens - 1.0 if ok else tokens, now)
        while len(self._b) > 10_000:
            self._b.popitem(last=False)
        return ok


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: Gb28181Server) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.server._datagram(data, (str(addr[0]), int(addr[1])))


class Gb28181Server:
    """The SIP endpoint (one per node holding it). Start with :meth:`start`, end with :meth:`stop`."""

    def __init__(self, settings: Gb28181Settings, directory: DeviceDirectory) -> None:
        self.settings = settings
        self.directory = directory
        self.nonces = digest.NonceStore(settings.nonce_ttl_s, capacity=max(1000, settings.max_devices))
        self.counters = SipCounters()
        self.devices: dict[str, RegisteredDevice] = {}
        self.waiting: OrderedDict[str, WaitingDevice] = OrderedDict()
        self._bucket = _Bucket(settings.register_rate_per_s)
        self._udp: _Udp | None = None
        self._tcp: asyncio.Server | None = None
        self._pending: dict[tuple[str, int], asyncio.Future[SipMessage]] = {}
        self._cseq = 1
        self._sn = 1
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self.on_bye: list[Callable[[str], None]] = []  # call ids the device hung up
        self.on_device_state: list[Callable[[str, bool], Awaitable[None]]] = []

    # -- life ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Listen on ``sip_host:sip_port`` (UDP and TCP) and start the keepalive watch."""
        loop = asyncio.get_running_loop()
        s = self.settings
        _, proto = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=(s.sip_host, s.sip_port))
        self._udp = proto
        self._tcp = await asyncio.start_server(self._tcp_client, s.sip_host, s.sip_port, limit=256 * 1024)
        self._ticker = asyncio.create_task(self._watch())
        log.info("GB/T 28181 SIP endpoint on %s:%d (UDP, TCP), id %s", s.sip_host, s.sip_port, s.platform_id)

    async def stop(self) -> None:
        """Close the sockets and forget pending transactions."""
        if self._ticker:
            self._ticker.cancel()
        for t in list(self._tasks):
            t.cancel()
        if self._udp and self._udp.transport:
            self._udp.transport.close()
        if self._tcp:
            self._tcp.close()
            for d in self.devices.values():
                if d.writer:
                    d.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 2)
        for fut in self._pending.values():
            fut.cancel()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        async def run() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:  # one device's failure must not take the endpoint down
                log.exception("GB/T 28181 task failed")

        t = asyncio.create_task(run())
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        # A task cancelled before its first step never awaits ``coro``: close it (no-op once it ran).
        t.add_done_callback(lambda _t: coro.close())

    # -- transport -------------------------------------------------------------------------
    def _datagram(self, data: bytes, addr: Addr) -> None:
        if len(data) <= 4 and data.strip(b"\r\n\x00 ") in (b"", b"jaK"):
            return  # NAT keep-alive pings some devices send
        try:
            msg = parse(data)
        except SipParseError:
            self.counters.malformed += 1
            return
        self._spawn(self._handle(msg, addr, "udp", None))

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        addr: Addr = (str(peer[0]), int(peer[1]))
        parser = StreamParser()
        try:
            while data := await reader.read(65536):
                for msg in parser.feed(data):
                    await self._handle(msg, addr, "tcp", writer)
        except SipParseError:
            self.counters.malformed += 1
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def _send(self, msg: SipMessage, addr: Addr, transport: str, writer: asyncio.StreamWriter | None) -> None:
        data = msg.encode()
        if transport == "tcp":
            if writer is not None and not writer.is_closing():
                writer.write(data)
        elif self._udp and self._udp.transport:
            self._udp.transport.sendto(data, addr)

    # -- incoming --------------------------------------------------------------------------
    async def _handle(self, msg: SipMessage, addr: Addr, transport: str, writer: asyncio.StreamWriter | None) -> None:
        if not msg.is_request:
            try:
                key = (msg.call_id, msg.cseq[0])
            except SipParseError:
                self.counters.malformed += 1
                return
            fut = self._pending.get(key)
            if fut is not None and not fut.done() and (msg.status or 0) >= 200:
                fut.set_result(msg)
            return
        reply = self._reply_fn(msg, addr, transport, writer)
        method = msg.method
        if method == "REGISTER":
            await self._register(msg, addr, transport, writer, reply)
        elif method == "MESSAGE":
            await self._message(msg, addr, reply)
        elif method == "BYE":
            reply(200, "OK")
            for cb in self.on_bye:
                cb(msg.call_id)
        elif method in ("ACK",):
            return
        elif method == "OPTIONS":
            reply(200, "OK")
        else:
            reply(405, "Method Not Allowed")

    def _reply_fn(
        self, msg: SipMessage, addr: Addr, transport: str, writer: asyncio.StreamWriter | None
    ) -> Callable[..., None]:
        to_tag = new_tag()

        def reply(status: int, reason: str, headers: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> None:
            r = msg.response(status, reason, to_tag=to_tag, body=body)
            # Where the request really came from, for the device's own transaction matching (RFC 3581).
            vias = r.get_all("Via")
            if vias:
                first = vias[0]
                rest = vias[1:]
                first = f"{first};received={addr[0]}" if param(first, "received") is None else first
                if ";rport" in first and param(first, "rport") in ("", None):
                    first = first.replace(";rport", f";rport={addr[1]}", 1)
                r.headers = [(n, v) for n, v in r.headers if n != "Via"]
                r.headers[:0] = [("Via", v) for v in [first, *rest]]
            r.add("User-Agent", "Liandong")
            for n, v in headers:
                r.add(n, v)
            self._send(r, addr, transport, writer)

        return reply

    async def _register(
        self,
        msg: SipMessage,
        addr: Addr,
        transport: str,
        writer: asyncio.StreamWriter | None,
        reply: Callable[..., None],
    ) -> None:
        now = time.monotonic()
        if not self._bucket.take(addr[0], now):
            self.counters.rate_limited += 1
            return  # a flood gets silence, not work
        device_id = uri_user(msg.get("From") or "") or ""
        if len(device_id) != 20 or not device_id.isdigit():
            reply(400, "Bad Request")
            return
        if not await self.directory.accepted(device_id) and not self.settings.auto_accept:
            self.counters.unknown_device += 1
            w = self.waiting.pop(device_id, None)
            if w is None:
                w = WaitingDevice(device_id, addr, transport, now, now, 0)
            w.attempts, w.last_seen, w.addr, w.transport = w.attempts + 1, now, addr, transport
            self.waiting[device_id] = w
            while len(self.waiting) > self.settings.max_devices:
                self.waiting.popitem(last=False)
            reply(403, "Forbidden")
            return
        auth = msg.get("Authorization")
        if auth is None:
            reply(
                401,
                "Unauthorized",
                (("WWW-Authenticate", digest.challenge(self.settings.domain, self.nonces.issue())),),
            )
            return
        try:
            p = digest.parse_params(auth)
        except digest.DigestError:
            self.counters.malformed += 1
            reply(400, "Bad Request")
            return
        nonce = p.get("nonce", "")
        if not self.nonces.known(nonce):
            self.counters.stale_nonce += 1
            challenge = digest.challenge(self.settings.domain, self.nonces.issue()) + ",stale=true"
            reply(401, "Unauthorized", (("WWW-Authenticate", challenge),))
            return
        if p.get("username") != device_id or not digest.verify(
            p, "REGISTER", self._password(device_id), self.settings.domain
        ):
            self.counters.auth_failed += 1
            self.nonces.consume(nonce)
            reply(403, "Forbidden")
            return
        self.nonces.consume(nonce)
        raw_exp = msg.get("Expires") or param(msg.get("Contact") or "", "expires") or "3600"
        expires = min(int(raw_exp), self.settings.register_expires_max_s) if raw_exp.isdigit() else 3600
        date = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
        reply(200, "OK", (("Expires", str(expires)), ("Date", date)))
        if expires == 0:
            dev = self.devices.pop(device_id, None)
            if dev is not None:
                await self._set_state(dev, False, "device unregistered")
            return
        self.waiting.pop(device_id, None)
        dev = self.devices.get(device_id)
        fresh = dev is None or not dev.online or dev.addr != addr
        if dev is None:
            if len(self.devices) >= self.settings.max_devices:
                return
            dev = self.devices[device_id] = RegisteredDevice(device_id, addr, transport, 0, now)
        dev.addr, dev.transport, dev.writer = addr, transport, writer
        dev.expires_at, dev.last_seen = now + expires, now
        if fresh:
            await self._set_state(dev, True, "registered")
            self._spawn(self.query_catalog(device_id))

    def _password(self, device_id: str) -> str:
        own = self.settings.device_passwords.get(device_id)
        return (own or self.settings.password).get_secret_value()

    async def _message(self, msg: SipMessage, addr: Addr, reply: Callable[..., None]) -> None:
        device_id = uri_user(msg.get("From") or "") or ""
        dev = self.devices.get(device_id)
        if dev is None:
            self.counters.unknown_device += 1
            reply(403, "Forbidden")
            return
        try:
            root = manscdp.parse(msg.body)
        except manscdp.ManscdpError:
            self.counters.refused_body += 1
            reply(400, "Bad Request")
            return
        reply(200, "OK")
        dev.last_seen = time.monotonic()
        if not dev.online:
            await self._set_state(dev, True, "keepalive again")
        cmd = (root.findtext("CmdType") or "").strip()
        if root.tag == "Response" and cmd == "Catalog":
            total, items = manscdp.catalog_items(root, self.settings.catalog_max_channels)
            dev.catalog_total = min(total, self.settings.catalog_max_channels)
            for it in items:
                if len(dev.catalog) < self.settings.catalog_max_channels or it.device_id in dev.catalog:
                    dev.catalog[it.device_id] = it
            if len(dev.catalog) >= dev.catalog_total:
                await self.directory.catalog(dev.device_id, list(dev.catalog.values()))
        elif root.tag == "Response" and cmd == "DeviceInfo":
            dev.name = (root.findtext("DeviceName") or "")[:200]
            dev.manufacturer = (root.findtext("Manufacturer") or "")[:64]
            dev.model = (root.findtext("Model") or "")[:64]

    async def _set_state(self, dev: RegisteredDevice, online: bool, reason: str) -> None:
        dev.online = online
        log.info("GB/T 28181 device %s %s (%s)", dev.device_id, "online" if online else "offline", reason)
        await self.directory.device_state(dev.device_id, online, reason)
        for cb in self.on_device_state:
            await cb(dev.device_id, online)

    async def _watch(self) -> None:
        """Once a second: a device that missed its keepalives or its registration's end is offline."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for dev in list(self.devices.values()):
                if not dev.online:
                    continue
                if now - dev.last_seen > self.settings.keepalive_timeout_s:
                    await self._set_state(dev, False, "missed keepalives")
                elif now > dev.expires_at:
                    await self._set_state(dev, False, "registration expired")

    # -- outgoing --------------------------------------------------------------------------
    def _request(self, method: str, dev: RegisteredDevice, target: str, *, call_id: str | None = None,
                 from_tag: str | None = None, to_tag: str | None = None, cseq: int | None = None,
                 body: bytes = b"", content_type: str | None = None) -> SipMessage:  # fmt: skip
        s = self.settings
        if cseq is None:
            self._cseq += 1
            cseq = self._cseq
        m = SipMessage(method=method, uri=f"sip:{target}@{dev.addr[0]}:{dev.addr[1]}", body=body)
        proto = "TCP" if dev.transport == "tcp" else "UDP"
        m.add("Via", f"SIP/2.0/{proto} {s.sip_host}:{s.sip_port};rport;branch={new_branch()}")
        m.add("From", f"<sip:{s.platform_id}@{s.domain}>;tag={from_tag or new_tag()}")
        m.add("To", f"<sip:{target}@{s.domain}>" + (f";tag={to_tag}" if to_tag else ""))
        m.add("Call-ID", call_id or f"{new_tag()}{new_tag()}@{s.sip_host}")
        m.add("CSeq", f"{cseq} {method}")
        m.add("Max-Forwards", "70")
        m.add("User-Agent", "Liandong")
        if content_type:
            m.add("Content-Type", content_type)
        return m

    async def _transact(self, dev: RegisteredDevice, msg: SipMessage) -> SipMessage:
        """Send a request and wait for its final response (retransmitted over UDP)."""
        key = (msg.call_id, msg.cseq[0])
        fut: asyncio.Future[SipMessage] = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        deadline = time.monotonic() + self.settings.transaction_timeout_s
        interval = _T1
        try:
            while True:
                self._send(msg, dev.addr, dev.transport, dev.writer)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{msg.method} to {dev.device_id}: no answer")
                wait = left if dev.transport == "tcp" else min(interval, left)
                with contextlib.suppress(TimeoutError):
                    return await asyncio.wait_for(asyncio.shield(fut), wait)
                interval = min(interval * 2, 4.0)
        finally:
            self._pending.pop(key, None)

    async def _send_message(self, dev: RegisteredDevice, body: bytes) -> SipMessage:
        req = self._request("MESSAGE", dev, dev.device_id, body=body, content_type="Application/MANSCDP+xml")
        return await self._transact(dev, req)

    def _next_sn(self) -> int:
        self._sn += 1
        return self._sn

    async def query_catalog(self, device_id: str) -> None:
        """Ask a device for its catalog (the answer arrives as MESSAGEs)."""
        dev = self.devices[device_id]
        dev.catalog.clear()
        await self._send_message(dev, manscdp.query("Catalog", self._next_sn(), device_id))
        with contextlib.suppress(Exception):
            await self._send_message(dev, manscdp.query("DeviceInfo", self._next_sn(), device_id))

    async def device_control(self, device_id: str, channel_id: str, ptz_cmd: str) -> None:
        """A ``DeviceControl`` with ``PTZCmd`` (an 8-byte command in hex, A.3 of the standard)."""
        dev = self.devices[device_id]
        body = manscdp.build("Control", "DeviceControl", self._next_sn(), channel_id, f"<PTZCmd>{ptz_cmd}</PTZCmd>\r\n")
        await self._send_message(dev, body)

    async def invite(self, device_id: str, channel_id: str, sdp: bytes, ssrc: str) -> Dialog:
        """INVITE a channel's live stream with our SDP; ACK the answer. Raises on refusal or timeout."""
        dev = self.devices.get(device_id)
        if dev is None or not dev.online:
            raise ConnectionError(f"device {device_id} is not registered")
        from_tag = new_tag()
        req = self._request("INVITE", dev, channel_id, from_tag=from_tag, body=sdp, content_type="APPLICATION/SDP")
        req.add("Contact", f"<sip:{self.settings.platform_id}@{self.settings.sip_host}:{self.settings.sip_port}>")
        req.add("Subject", f"{channel_id}:{ssrc},{self.settings.platform_id}:0")
        resp = await self._transact(dev, req)
        cseq = req.cseq[0]
        to_tag = param(resp.get("To") or "", "tag") or ""
        ack = self._request("ACK", dev, channel_id, call_id=req.call_id, from_tag=from_tag, to_tag=to_tag, cseq=cseq)
        if resp.status != 200:
            self._send(ack, dev.addr, dev.transport, dev.writer)  # non-2xx ACK ends the transaction
            raise ConnectionRefusedError(f"device answered {resp.status} {resp.reason}")
        self._send(ack, dev.addr, dev.transport, dev.writer)
        return Dialog(device_id, channel_id, req.call_id, from_tag, to_tag, cseq, resp.body)

    async def bye(self, dialog: Dialog) -> None:
        """End a media dialog (best effort: the device may be gone)."""
        dev = self.devices.get(dialog.device_id)
        if dev is None:
            return
        req = self._request(
            "BYE", dev, dialog.channel_id, call_id=dialog.call_id, from_tag=dialog.from_tag,
            to_tag=dialog.to_tag, cseq=dialog.cseq + 1,
        )  # fmt: skip
        with contextlib.suppress(Exception):
            await self._transact(dev, req)
