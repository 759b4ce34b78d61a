"""The GB/T 28181 cascade: Liandong as a lower platform of superior platforms (``docs/cascade.md``).

For each configured superior (:class:`~gb28181.settings.SuperiorSettings`) a :class:`SuperiorLink`
registers with MD5 digest over UDP, refreshes the registration at half its expiry, sends
keepalives and registers again (with backoff) when they go unanswered; it answers the superior's
Catalog query with the cameras its :class:`CascadeShare` says the superior may see, its INVITE by
pushing the camera's video as PS over RTP (:mod:`gb28181.push`), ends on BYE, and sends a catalog
notification when what is shared changes. It decides nothing itself: what is shared and whether an
INVITE may play are the share's (the gateway's policy), and requests that do not come from the
configured superior (its SIP id and address) are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from xml.sax.saxutils import escape

from gb28181 import manscdp
from gb28181.push import MediaOffer, OfferError, PsPusher, UnitSource, parse_offer
from gb28181.settings import Gb28181Settings, SuperiorSettings
from gb28181.sip import SipMessage, SipParseError, new_branch, new_tag, param, parse, uri_user
from httpdigest import digest

__all__ = [
    "Cascade",
    "CascadeRefused",
    "CascadeShare",
    "Closer",
    "OutwardStream",
    "SharedCamera",
    "SuperiorLink",
    "channel_id_for",
]

log = logging.getLogger(__name__)

_T1 = 0.5  # RFC 3261 retransmission interval over UDP
CATALOG_PAGE = 4  # items per Catalog MESSAGE: keeps a datagram well under a path MTU's worth of fragments
MANSCDP = "Application/MANSCDP+xml"
MAX_HANDLING = 64  # requests of the superior being handled at once (each catalog or INVITE is work)
Closer = Callable[[str], Awaitable[None]]


class CascadeRefused(Exception):
    """The share refuses an INVITE: ``status`` is the SIP answer (403, 404, 486, 503)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SharedCamera:
    """One camera as a superior's catalog lists it."""

    channel_id: str  # the 20-digit id the superior knows it by
    camera_id: str
    name: str
    civil_code: str
    longitude: float | None
    latitude: float | None
    online: bool


class OutwardStream(UnitSource, Protocol):
    """A live stream the share opened for a superior (a hub reader behind a viewer session)."""

    session_id: str | None  # the gateway's viewer session (listed and endable there)

    async def close(self, reason: str) -> None:
        """End it (idempotent)."""
        ...


class CascadeShare(Protocol):
    """What a superior may see and play: the gateway's policy and stream core behind one interface."""

    async def catalog(self, superior: SuperiorSettings) -> list[SharedCamera]:
        """The cameras shared with ``superior`` now."""
        ...

    async def open(self, superior: SuperiorSettings, camera_id: str, address: str, closer: Closer) -> OutwardStream:
        """A live stream of ``camera_id`` for ``superior`` (``closer`` ends the dialog when the
        gateway ends the session: revocation, an admin); raises :class:`CascadeRefused`."""
        ...


def channel_id_for(camera_id: str, tags: Sequence[str], platform_id: str) -> str:
    """The 20-digit id a superior knows a camera by: the camera id when it is one, a ``gb-id:<20
    digits>`` tag, else derived from the camera id (stable: platform_id's first 10 digits, type code
    132 for an IPC, 7 digits of a hash of the camera id)."""
    if len(camera_id) == 20 and camera_id.isdigit():
        return camera_id
    for t in tags:
        if t.startswith("gb-id:") and len(t) == 26 and t[6:].isdigit():
            return t[6:]
    h = int.from_bytes(hashlib.sha256(camera_id.encode()).digest()[:8], "big") % 10_000_000
    return f"{platform_id[:10]}132{h:07d}"


@dataclass
class _Play:
    """One live INVITE of the superior."""

    call_id: str
    channel_id: str
    camera_id: str
    from_tag: str  # the superior's tag
    to_tag: str  # ours
    remote_target: str  # the superior's Contact (where our BYE goes)
    ok: SipMessage
    pusher: PsPusher
    stream: OutwardStream
    acked: bool = False
    started: float = field(default_factory=time.time)
    ending: bool = False

    def status(self) -> dict[str, Any]:
        """This INVITE for the admin API."""
        o = self.pusher.offer
        return {
            "call_id": self.call_id,
            "session_id": self.stream.session_id,
            "channel_id": self.channel_id,
            "camera_id": self.camera_id,
            "media": f"{'tcp' if o.tcp else 'udp'}:{o.host}:{o.port}",
            "started": self.started,
            "packets": self.pusher.packets,
            "bytes": self.pusher.bytes,
        }


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, link: SuperiorLink) -> None:
        self.link = link

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.link.datagram(data, (str(addr[0]), int(addr[1])))


class SuperiorLink:
    """Liandong registered to one superior platform."""

    def __init__(self, settings: Gb28181Settings, superior: SuperiorSettings, share: CascadeShare) -> None:
        self.s = settings
        self.sup = superior
        self.share = share
        self.registered = False
        self.registered_at: float | None = None
        self.last_error = ""
        self.registrations = 0
        self.refused = 0
        self.plays: dict[str, _Play] = {}
        self._inviting: set[str] = set()  # INVITEs being answered (their Call-IDs)
        self._handling = 0  # requests of the superior being handled now
        self.shared: dict[str, SharedCamera] = {}  # channel id -> camera, as the superior last learnt it
        self._asked = False  # the superior has asked for our catalog (notifications follow from then on)
        self._transport: asyncio.DatagramTransport | None = None
        self._local: tuple[str, int] = (settings.sip_host, 0)
        self._peer: tuple[str, int] = (superior.host, superior.port)
        self._peer_host = superior.host
        self._pending: dict[tuple[str, int], asyncio.Future[SipMessage]] = {}
        self._cseq = random.randrange(1, 1000)
        self._sn = 0
        self._call_id = f"{new_tag()}{new_tag()}@{settings.sip_host}"
        self._tag = new_tag()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._main: asyncio.Task[None] | None = None

    @property
    def local(self) -> tuple[str, int]:
        """Our SIP address for this superior (its requests come here)."""
        return self._local

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Open our UDP port and start registering."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self), local_addr=(self.s.sip_host, self.sup.local_port)
        )
        self._transport = transport
        self._local = (self.s.sip_host, int(transport.get_extra_info("sockname")[1]))
        self._main = asyncio.create_task(self._run(), name=f"gb-cascade-{self.sup.id}")

    async def stop(self) -> None:
        """End every INVITE (BYE), unregister (best effort) and close."""
        main, self._main = self._main, None
        if main is not None:
            main.cancel()
            with contextlib.suppress(BaseException):
                await main
        with contextlib.suppress(TimeoutError):  # a superior that is gone does not hold our shutdown
            async with asyncio.timeout(3):
                await asyncio.gather(*(self._end(p, "shutting down", bye=True) for p in list(self.plays.values())))
        if self.registered:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._register(0)
        self.registered = False
        for t in list(self._tasks):
            t.cancel()
        if self._transport is not None:
            self._transport.close()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        async def run() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cascade to %s: task failed", self.sup.id)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self) -> None:
        """The superior's address, resolved at each registration: its requests are accepted from it
        alone (a name that does not resolve now is tried again with the registration's backoff)."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.sup.host, self.sup.port, family=socket.AF_INET, type=socket.SOCK_DGRAM)
        self._peer_host = str(infos[0][4][0])
        self._peer = (self._peer_host, self.sup.port)

    async def _run(self) -> None:
        backoff = self.sup.retry_s
        while True:
            try:
                await self._resolve()
                granted = await self._register(self.sup.expires_s)
            except (TimeoutError, OSError, digest.DigestError) as e:
                granted, self.last_error = 0, f"register: {e or type(e).__name__}"
            if not granted:
                self._set_registered(False)
                await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, 120.0)
                continue
            backoff = self.sup.retry_s
            self._set_registered(True)
            await self._stay_registered(granted)

    def _set_registered(self, on: bool) -> None:
        was, self.registered = self.registered, on
        if on and not was:
            self.registered_at = time.time()
            self.registrations += 1
        if not on:
            self.registered_at = None

    async def _stay_registered(self, granted: int) -> None:
        """Keepalives until the registration's half-life (then register again) or too many misses."""
        refresh_at = time.monotonic() + granted / 2
        misses = 0
        while True:
            wait = min(self.sup.keepalive_s, refresh_at - time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)
            if time.monotonic() >= refresh_at:
                return
            self._sn += 1
            body = manscdp.build("Notify", "Keepalive", self._sn, self.s.platform_id, "<Status>OK</Status>\r\n")
            try:
                resp = await self._transact(self._request("MESSAGE", body=body, content_type=MANSCDP))
                misses = 0 if resp.status == 200 else misses + 1
            except TimeoutError:
                misses += 1
            if misses >= self.sup.keepalive_misses:
                self.last_error = f"{misses} keepalives unanswered"
                self._set_registered(False)
                return

    # -- outgoing ---------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        *,
        uri: str | None = None,
        call_id: str | None = None,
        to: str | None = None,
        from_tag: str | None = None,
        cseq: int | None = None,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipMessage:
        s, sup = self.s, self.sup
        if cseq is None:
            self._cseq += 1
            cseq = self._cseq
        m = SipMessage(method=method, uri=uri or f"sip:{sup.id}@{sup.domain}", body=body)
        m.add("Via", f"SIP/2.0/UDP {self._local[0]}:{self._local[1]};rport;branch={new_branch()}")
        m.add("From", f"<sip:{s.platform_id}@{s.domain}>;tag={from_tag or new_tag()}")
        m.add("To", to or f"<sip:{sup.id}@{sup.domain}>")
        m.add("Call-ID", call_id or f"{new_tag()}{new_tag()}@{self._local[0]}")
        m.add("CSeq", f"{cseq} {method}")
        m.add("Max-Forwards", "70")
        m.add("User-Agent", "Liandong")
        if content_type:
            m.add("Content-Type", content_type)
        return m

    def _send(self, msg: SipMessage) -> None:
        self._send_to(msg, self._peer)

    async def _transact(self, msg: SipMessage) -> SipMessage:
        """Send a request and wait for its final response (retransmitted: UDP)."""
        key = (msg.call_id, msg.cseq[0])
        fut: asyncio.Future[SipMessage] = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        deadline = time.monotonic() + self.s.transaction_timeout_s
        interval = _T1
        try:
            while True:
                self._send(msg)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{msg.method} to superior {self.sup.id}: no answer")
                with contextlib.suppress(TimeoutError):
                    return await asyncio.wait_for(asyncio.shield(fut), min(interval, left))
                interval = min(interval * 2, 4.0)
        finally:
            self._pending.pop(key, None)

    async def _register(self, expires: int) -> int:
        """REGISTER (answering the digest challenge); the expiry granted, 0 when refused."""
        sup, s = self.sup, self.s
        uri = f"sip:{sup.id}@{sup.domain}"
        auth: str | None = None
        for _ in range(2):
            req = self._request("REGISTER", uri=uri, call_id=self._call_id, from_tag=self._tag,
                                to=f"<sip:{s.platform_id}@{s.domain}>")  # fmt: skip
            req.add("Contact", f"<sip:{s.platform_id}@{self._local[0]}:{self._local[1]}>")
            req.add("Expires", str(expires))
            if auth:
                req.add("Authorization", auth)
            resp = await self._transact(req)
            if resp.status == 401 and auth is None:
                challenge = resp.get("WWW-Authenticate") or ""
                password = sup.password.get_secret_value()
                auth = digest.authorization(challenge, s.platform_id, password, "REGISTER", uri)
                continue
            if resp.status != 200:
                self.last_error = f"register: {resp.status} {resp.reason}"
                return 0
            if expires == 0:
                return 0
            granted = resp.get("Expires") or param(resp.get("Contact") or "", "expires") or str(expires)
            self.last_error = ""
            return max(int(granted), 10) if granted.isdigit() else expires
        self.last_error = "register: digest refused"
        return 0

    async def _message(self, body: bytes) -> None:
        with contextlib.suppress(TimeoutError):
            await self._transact(self._request("MESSAGE", body=body, content_type=MANSCDP))

    # -- incoming ---------------------------------------------------------------------------
    def datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        """One datagram on our port."""
        try:
            msg = parse(data)
        except SipParseError:
            self.refused += 1
            return
        if not msg.is_request:
            with contextlib.suppress(SipParseError):
                fut = self._pending.get((msg.call_id, msg.cseq[0]))
                if fut is not None and not fut.done() and (msg.status or 0) >= 200:
                    fut.set_result(msg)
            return
        if addr[0] != self._peer_host or uri_user(msg.get("From") or "") != self.sup.id:
            # The credential of a superior's request is who sends it: its address and SIP id.
            self.refused += 1
            self._reply(msg, addr, 403, "Forbidden")
            return
        if msg.method != "ACK" and self._handling >= MAX_HANDLING:
            # A flood (UDP from a spoofed superior address, too) waits for nothing and holds nothing.
            self.refused += 1
            self._reply(msg, addr, 503, "Service Unavailable")
            return
        self._spawn(self._handle(msg, addr))

    def _reply(
        self, msg: SipMessage, addr: tuple[str, int], status: int, reason: str, body: bytes = b"",
        content_type: str | None = None, to_tag: str | None = None,
    ) -> SipMessage:  # fmt: skip
        r = msg.response(status, reason, to_tag=to_tag or self._tag, body=body)
        if content_type:
            r.add("Content-Type", content_type)
            r.add("Contact", f"<sip:{self.s.platform_id}@{self._local[0]}:{self._local[1]}>")
        self._send_to(r, addr)
        return r

    async def _handle(self, msg: SipMessage, addr: tuple[str, int]) -> None:
        self._handling += 1
        try:
            await self._handle_request(msg, addr)
        finally:
            self._handling -= 1

    async def _handle_request(self, msg: SipMessage, addr: tuple[str, int]) -> None:
        if msg.method == "MESSAGE":
            await self._query(msg, addr)
        elif msg.method == "INVITE":
            await self._invite(msg, addr)
        elif msg.method == "ACK":
            play = self.plays.get(msg.call_id)
            if play is not None and not play.acked:
                play.acked = True
                play.pusher.start()
                self._spawn(self._watch(play))
        elif msg.method == "BYE":
            play = self.plays.get(msg.call_id)
            self._reply(msg, addr, 200 if play else 481, "OK" if play else "Call/Transaction Does Not Exist")
            if play is not None:
                await self._end(play, "BYE from the superior", bye=False)
        else:
            self._reply(msg, addr, 405, "Method Not Allowed")

    async def _query(self, msg: SipMessage, addr: tuple[str, int]) -> None:
        try:
            root = manscdp.parse(msg.body)
        except manscdp.ManscdpError:
            self._reply(msg, addr, 400, "Bad Request")
            return
        self._reply(msg, addr, 200, "OK")
        cmd = (root.findtext("CmdType") or "").strip()
        sn_text = (root.findtext("SN") or "0").strip()
        sn = int(sn_text) if sn_text.isdigit() and len(sn_text) <= 9 else 0
        if root.tag != "Query":
            return
        me = self.s.platform_id
        if cmd == "Catalog":
            cams = await self.share.catalog(self.sup)
            self.shared = {c.channel_id: c for c in cams}
            self._asked = True
            await self._send_catalog("Response", sn, cams, event=None)
        elif cmd == "DeviceInfo":
            fields = "<DeviceName>Liandong</DeviceName><Result>OK</Result><Manufacturer>Liandong</Manufacturer>"
            fields += f"<Model>gateway</Model><Firmware>1</Firmware><Channel>{len(self.shared)}</Channel>\r\n"
            await self._message(manscdp.build("Response", "DeviceInfo", sn, me, fields))
        elif cmd == "DeviceStatus":
            fields = "<Result>OK</Result><Online>ONLINE</Online><Status>OK</Status>\r\n"
            await self._message(manscdp.build("Response", "DeviceStatus", sn, me, fields))

    def _item(self, c: SharedCamera, event: str | None) -> str:
        lon = f"<Longitude>{c.longitude:.6f}</Longitude>" if c.longitude is not None else ""
        lat = f"<Latitude>{c.latitude:.6f}</Latitude>" if c.latitude is not None else ""
        ev = f"<Event>{event}</Event>" if event else ""
        return (
            f"<Item><DeviceID>{c.channel_id}</DeviceID><Name>{escape(c.name)}</Name>"
            f"<Manufacturer>Liandong</Manufacturer><Model>channel</Model><Owner>0</Owner>"
            f"<CivilCode>{escape(c.civil_code)}</CivilCode><Address>{escape(c.camera_id)}</Address>"
            f"<Parental>0</Parental><ParentID>{self.s.platform_id}</ParentID><SafetyWay>0</SafetyWay>"
            f"<RegisterWay>1</RegisterWay><Secrecy>0</Secrecy><Status>{'ON' if c.online else 'OFF'}</Status>"
            f"{lon}{lat}{ev}</Item>\r\n"
        )

    async def _send_catalog(
        self, kind: str, sn: int, cams: Sequence[SharedCamera], event: Sequence[str] | None
    ) -> None:
        """A catalog in pages (``Response`` to a query, or a ``Notify`` with per-item events)."""
        total = len(cams)
        if total == 0:
            fields = '<SumNum>0</SumNum>\r\n<DeviceList Num="0">\r\n</DeviceList>\r\n'
            await self._message(manscdp.build(kind, "Catalog", sn, self.s.platform_id, fields))
            return
        for i in range(0, total, CATALOG_PAGE):
            page = cams[i : i + CATALOG_PAGE]
            items = "".join(self._item(c, event[i + k] if event else None) for k, c in enumerate(page))
            fields = f'<SumNum>{total}</SumNum>\r\n<DeviceList Num="{len(page)}">\r\n{items}</DeviceList>\r\n'
            await self._message(manscdp.build(kind, "Catalog", sn, self.s.platform_id, fields))

    async def notify_changes(self) -> int:
        """Tell the superior what the policy added to or took from its catalog (``Notify`` with
        ``ADD``/``DEL`` events); returns how many items changed. Nothing is sent before the
        superior has asked for a catalog, nor when nothing changed."""
        if not self.registered or not self._asked:
            return 0
        cams = await self.share.catalog(self.sup)
        now = {c.channel_id: c for c in cams}
        added = [c for k, c in now.items() if k not in self.shared]
        removed = [c for k, c in self.shared.items() if k not in now]
        self.shared = now
        changed = added + removed
        if changed:
            self._sn += 1
            await self._send_catalog("Notify", self._sn, changed, ["ADD"] * len(added) + ["DEL"] * len(removed))
        return len(changed)

    async def _invite(self, msg: SipMessage, addr: tuple[str, int]) -> None:
        if msg.call_id in self.plays:  # a retransmission: the answer again
            self._send_to(self.plays[msg.call_id].ok, addr)
            return
        self._send_to(msg.response(100, "Trying"), addr)
        if msg.call_id in self._inviting:  # a retransmission while the camera opens: Trying is the answer
            return
        self._inviting.add(msg.call_id)
        try:
            await self._answer_invite(msg, addr)
        finally:
            self._inviting.discard(msg.call_id)

    async def _answer_invite(self, msg: SipMessage, addr: tuple[str, int]) -> None:
        channel = uri_user(msg.uri or "") or ""
        cam = self.shared.get(channel)
        if cam is None:  # what is not in the catalog is not played (ask the policy again: it may have changed)
            self.shared = {c.channel_id: c for c in await self.share.catalog(self.sup)}
            cam = self.shared.get(channel)
        if cam is None:
            self._reply(msg, addr, 404, "Not Found")
            return
        try:
            offer: MediaOffer = parse_offer(msg.body)
        except OfferError:
            self._reply(msg, addr, 488, "Not Acceptable Here")
            return
        to_tag = new_tag()
        play_ref: list[_Play] = []

        async def closer(reason: str) -> None:  # the gateway ended the session (revocation, an admin)
            if play_ref:
                await self._end(play_ref[0], reason, bye=True)

        try:
            stream = await self.share.open(self.sup, cam.camera_id, f"{addr[0]}:{addr[1]}", closer)
        except CascadeRefused as e:
            self._reply(msg, addr, e.status, e.reason)
            return
        pusher = PsPusher(offer, self._local[0], stream)
        try:
            await pusher.prepare()
        except OSError:
            await stream.close("media port failed")
            self._reply(msg, addr, 503, "Service Unavailable")
            return
        ok = self._reply(msg, addr, 200, "OK", pusher.answer(channel), "APPLICATION/SDP", to_tag=to_tag)
        contact = msg.get("Contact") or ""
        target = f"sip:{self.sup.id}@{addr[0]}:{addr[1]}"
        if "<" in contact and ">" in contact:  # where the superior wants in-dialog requests (our BYE)
            target = contact[contact.find("<") + 1 : contact.find(">")]
        play = _Play(msg.call_id, channel, cam.camera_id, param(msg.get("From") or "", "tag") or "", to_tag,
                     target, ok, pusher, stream)  # fmt: skip
        play_ref.append(play)
        self.plays[msg.call_id] = play
        self._spawn(self._await_ack(play, addr))

    def _send_to(self, msg: SipMessage, addr: tuple[str, int]) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(msg.encode(), addr)

    async def _await_ack(self, play: _Play, addr: tuple[str, int]) -> None:
        """Our 200 OK again until the ACK (RFC 3261 13.3.1.4); no ACK: the call never started."""
        interval, deadline = _T1, time.monotonic() + 32 * _T1
        while not play.acked and not play.ending:
            if time.monotonic() > deadline:
                await self._end(play, "no ACK", bye=False)
                return
            await asyncio.sleep(interval)
            if not play.acked:
                self._send_to(play.ok, addr)
            interval = min(interval * 2, 4.0)

    async def _watch(self, play: _Play) -> None:
        task = play.pusher.task
        if task is None:
            return
        with contextlib.suppress(BaseException):
            await asyncio.shield(task)
        if not play.ending:  # the stream failed (camera gone, media path broken): tell the superior
            exc = task.exception() if task.done() and not task.cancelled() else None
            await self._end(play, f"stream ended: {exc or 'closed'}", bye=True)

    async def _end(self, play: _Play, reason: str, *, bye: bool) -> None:
        if play.ending:
            return
        play.ending = True
        self.plays.pop(play.call_id, None)
        await play.pusher.close()
        await play.stream.close(reason)
        if bye:
            s = self.s
            req = self._request(
                "BYE", uri=play.remote_target, call_id=play.call_id, from_tag=play.to_tag,
                to=f"<sip:{self.sup.id}@{self.sup.domain}>;tag={play.from_tag}",
            )  # fmt: skip
            req.set("From", f"<sip:{play.channel_id}@{s.domain}>;tag={play.to_tag}")
            with contextlib.suppress(TimeoutError):
                await self._transact(req)

    def status(self) -> dict[str, Any]:
        """This link for the admin API."""
        return {
            "id": self.sup.id,
            "address": f"{self.sup.host}:{self.sup.port}",
            "local": f"{self._local[0]}:{self._local[1]}",
            "view_as": self.sup.view_as,
            "registered": self.registered,
            "registered_at": self.registered_at,
            "registrations": self.registrations,
            "last_error": self.last_error,
            "shared": len(self.shared),
            "refused_requests": self.refused,
            "invites": [p.status() for p in self.plays.values()],
        }


class Cascade:
    """Every configured superior's link."""

    def __init__(self, settings: Gb28181Settings, share: CascadeShare) -> None:
        self.links = {sup.id: SuperiorLink(settings, sup, share) for sup in settings.superiors}

    async def start(self) -> None:
        """Register to every superior (in the background: one that is down does not hold us)."""
        for link in self.links.values():
            await link.start()

    async def stop(self) -> None:
        """Unregister and close every link."""
        await asyncio.gather(*(link.stop() for link in self.links.values()))

    async def policy_changed(self) -> None:
        """The policy changed: each superior is notified of what its catalog gained or lost."""
        for link in self.links.values():
            try:
                await link.notify_changes()
            except Exception:
                log.exception("cascade to %s: catalog notification failed", link.sup.id)

    def status(self) -> list[dict[str, Any]]:
        """Every link for the admin API."""
        return [link.status() for link in self.links.values()]
