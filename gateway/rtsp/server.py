"""The RTSP server for video walls and decoders: ``rtsp://HOST:PORT/cameras/{id}``, a reader of the
stream hub (one pull per camera whoever watches), H.264 and H.265 passed through as RTP over TCP
(interleaved) or UDP, every request's credential and every camera checked by the policy's
:class:`~gateway.policy.rtsp.RtspGate`, every session in the gateway's session registry (listed,
audited, ended by revocation, logout or an admin).

Bounded against hostile clients: a request head of ``max_head_bytes`` at most, completed within
``head_timeout_s``; ``max_connections`` connections; at most ``max_pending`` of them without a
playing session, the oldest dropped for a new one, so a flood of half-open connections costs a
fixed amount and never keeps a real client out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from acl.identity import Subject
from camera_registry.store import NotFound
from gateway.policy.rtsp import RtspGate
from gateway.rtsp.messages import (
    BadRequest,
    CameraPath,
    Request,
    parse_authorization,
    parse_camera_path,
    parse_request,
    parse_transport,
    response,
)
from gateway.rtsp.rtp import parameter_sets, session_description
from gateway.rtsp.session import RtspSession, open_udp_ports
from gateway.rtsp.settings import RtspOutSettings
from gateway.sessions import SessionLimit, SessionRegistry
from streams import AccessUnit, Reader, StreamHub, StreamInfo, StreamUnavailable

__all__ = ["RtspServer"]

log = logging.getLogger(__name__)

PROTOCOL = "rtsp"
CODECS = ("h264", "hevc")
MAX_BODY = 4096
# Cameras one user may hold open by DESCRIBEs not (yet) followed by a SETUP, over all connections:
# a DESCRIBE starts the camera's pull, and only SETUP counts against sessions.max_per_user.
MAX_DESCRIBED_PER_USER = 4
PUBLIC = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER"


def _camera_of(url: str) -> tuple[str, bool] | None:
    path = parse_camera_path(url)
    return (path.camera_id, path.sub) if path is not None else None


class _Reply(Exception):
    """Answer the request with ``status`` (and ``headers``) now."""

    def __init__(self, status: int, message: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})
        if message:
            self.headers["X-Liandong-Reason"] = message.replace("\r", " ").replace("\n", " ")[:200]


@dataclass
class _Described:
    """A camera a DESCRIBE opened on this connection, held for its SETUP."""

    camera_id: str
    user_id: int
    reader: Reader
    info: StreamInfo
    first: AccessUnit
    expiry: asyncio.TimerHandle | None = None


class RtspServer:
    """Listens on ``host``:``settings.port`` and serves each connection (see the module doc)."""

    def __init__(
        self,
        settings: RtspOutSettings,
        host: str,
        gate: RtspGate,
        hub: StreamHub,
        sessions: SessionRegistry,
    ) -> None:
        self.settings = settings
        self.host = host
        self.gate = gate
        self.hub = hub
        self.sessions = sessions
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._pending: OrderedDict[_Connection, None] = OrderedDict()
        self._sweeper: asyncio.Task[None] | None = None
        self.dropped_pending = 0
        self.described: dict[int, int] = {}  # user id -> cameras held by DESCRIBEs awaiting SETUP

    @property
    def port(self) -> int:
        """The port listened on (the setting, or the one picked for port 0)."""
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen."""
        try:
            self._server = await asyncio.start_server(
                self._accept, self.host, self.settings.port, limit=self.settings.max_head_bytes
            )
        except OSError as e:
            raise RuntimeError(
                f"rtsp_out.port: cannot listen on {self.host}:{self.settings.port} ({e.strerror or e})"
            ) from None
        self._sweeper = asyncio.create_task(self._sweep(), name="rtsp-sweeper")
        log.info("RTSP server on rtsp://%s:%d/cameras/{id}", self.host, self.port)

    async def close(self) -> None:
        """Stop listening and end every connection (their sessions end with them)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.abort()
        for conn in list(self._connections):
            await conn.finished.wait()
        if self._server is not None:
            await self._server.wait_closed()

    def pending(self, conn: _Connection, waiting: bool) -> None:
        """``conn`` has no playing session (``waiting``) or now has one."""
        if waiting:
            self._pending[conn] = None
            while len(self._pending) > self.settings.max_pending:
                oldest, _ = self._pending.popitem(last=False)
                self.dropped_pending += 1
                oldest.abort()
        else:
            self._pending.pop(conn, None)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self.settings.max_connections:
            writer.transport.abort()
            return
        conn = _Connection(self, reader, writer)
        self._connections.add(conn)
        self.pending(conn, True)
        try:
            await conn.serve()
        finally:
            self._pending.pop(conn, None)
            self._connections.discard(conn)
            conn.finished.set()

    async def _sweep(self) -> None:
        """End UDP sessions whose client has shown no sign of life for ``session_timeout_s``."""
        while True:
            await asyncio.sleep(1.0)
            limit = time.monotonic() - self.settings.session_timeout_s
            for conn in list(self._connections):
                for s in list(conn.sessions.values()):
                    if s.transport == "udp" and s.last_seen < limit:
                        await conn.end_session(s, "session timed out")


class _Connection:
    """One client connection: its requests in order, the camera it described, its sessions."""

    def __init__(self, server: RtspServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.settings = server.settings
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.address: str | None = peer[0] if peer else None
        self.sessions: dict[str, RtspSession] = {}
        self.described: _Described | None = None
        self.nonces: OrderedDict[str, None] = OrderedDict()  # nonces this connection has used
        self.finished = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    def abort(self) -> None:
        """Drop the connection now (its sessions end as it closes)."""
        self.writer.transport.abort()

    # -- the request loop ------------------------------------------------------------------------
    async def serve(self) -> None:
        try:
            while True:
                req = await self._read_request()
                if req is None:
                    break
                try:
                    out = await self._handle(req)
                except _Reply as r:
                    out = response(r.status, req.cseq, r.headers)
                self.writer.write(out)
                async with asyncio.timeout(self.settings.write_timeout_s):
                    await self.writer.drain()
        except BadRequest as e:
            with contextlib.suppress(Exception):
                self.writer.write(response(e.status, "0", {"X-Liandong-Reason": str(e)}))
                await asyncio.wait_for(self.writer.drain(), 1.0)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError, OSError):
            pass
        except Exception:
            log.exception("RTSP connection from %s failed", self.address)
        finally:
            await self._cleanup()

    async def _read_request(self) -> Request | None:
        s = self.settings
        while True:
            wait = None if self.sessions else s.idle_timeout_s
            try:
                async with asyncio.timeout(wait):
                    first = await self.reader.readexactly(1)
            except asyncio.IncompleteReadError:
                return None
            except TimeoutError:
                return None
            async with asyncio.timeout(s.head_timeout_s):
                if first == b"$":  # an interleaved RTCP report from the client: proof of life
                    head = await self.reader.readexactly(3)
                    await self.reader.readexactly(int.from_bytes(head[1:3], "big"))
                    for sess in self.sessions.values():
                        sess.seen()
                    continue
                try:
                    rest = await self.reader.readuntil(b"\r\n\r\n")
                except asyncio.LimitOverrunError:
                    raise BadRequest("request head too large (rtsp_out.max_head_bytes)") from None
                if len(rest) + 1 > s.max_head_bytes:
                    raise BadRequest("request head too large (rtsp_out.max_head_bytes)")
                req = parse_request((first + rest)[:-4])
                length = req.header("content-length")
                if length:
                    if not length.isdigit() or int(length) > MAX_BODY:
                        raise BadRequest("request body too large", 413)
                    req.body = await self.reader.readexactly(int(length))
                return req

    async def _handle(self, req: Request) -> bytes:
        handler = {
            "OPTIONS": self._options,
            "DESCRIBE": self._describe,
            "SETUP": self._setup,
            "PLAY": self._play,
            "TEARDOWN": self._teardown,
            "GET_PARAMETER": self._keepalive,
            "SET_PARAMETER": self._keepalive,
        }.get(req.method)
        if handler is None:
            raise _Reply(501, f"{req.method[:32]} is not served", {"Public": PUBLIC})
        return await handler(req)

    # -- methods ---------------------------------------------------------------------------------
    async def _options(self, req: Request) -> bytes:
        return response(200, req.cseq, {"Public": PUBLIC})

    async def _describe(self, req: Request) -> bytes:
        path = self._camera(req)
        subject = await self._subject(req)
        await self._permitted(subject, path.camera_id, req.method)
        described = await self._open(path.camera_id, subject.user_id)
        params = parameter_sets(described.info.codec, described.first.data)
        sdp = session_description(described.info.codec, params, self.server.host, secrets.randbits(31))
        base = req.url.rstrip("/") + "/"
        return response(200, req.cseq, {"Content-Base": base, "Content-Type": "application/sdp"}, sdp.encode())

    async def _setup(self, req: Request) -> bytes:
        path = self._camera(req)
        if self._find_session(req) is not None:
            raise _Reply(459, "one track per session: a camera has one video track")
        subject = await self._subject(req)
        await self._permitted(subject, path.camera_id, req.method)
        transport = parse_transport(req.header("transport"))
        if transport is None:
            raise _Reply(461, "unicast RTP/AVP over TCP (interleaved) or UDP (client_port) only")
        try:
            self.server.sessions.check_room(subject.user_id, subject.username)
        except SessionLimit as e:
            raise _Reply(453, str(e)) from None
        described = self.described
        if described is None or described.camera_id != path.camera_id:
            described = await self._open(path.camera_id, subject.user_id)
        self._release_described()
        sid = secrets.token_hex(8)
        session = RtspSession(
            sid, self.server.hub, described.reader, described.info.codec, self.settings.mtu, described.first
        )
        try:
            if transport.tcp:
                session.over_tcp(self.writer, transport.interleaved, self.settings.write_timeout_s)
                answer = f"RTP/AVP/TCP;unicast;interleaved={transport.interleaved[0]}-{transport.interleaved[1]}"
            else:
                ports = await open_udp_ports(self.server.host, session.seen)
                session.over_udp(ports, self.address or self.server.host, transport.client_ports)
                lo, hi = transport.client_ports
                answer = f"RTP/AVP;unicast;client_port={lo}-{hi};server_port={ports.port}-{ports.port + 1}"
            answer += f";ssrc={session.packetizer.ssrc:08X}"

            async def closer(reason: str) -> None:
                await self._closed_by_registry(session, reason)

            reg = await self.server.sessions.open(
                user_id=subject.user_id,
                username=subject.username,
                camera_id=path.camera_id,
                protocol=PROTOCOL,
                address=self.address,
                token_id=subject.token_id,
                closer=closer,
                subject=subject,
            )
        except SessionLimit as e:
            await session.close("session refused")
            raise _Reply(453, str(e)) from None
        except BaseException:
            await session.close("setup failed")
            raise
        session.registry_id = reg.id
        session.stats_sink = reg.stats  # the session list shows live figures
        session.on_failed = lambda reason: self._spawn(self.end_session(session, reason))
        self.sessions[sid] = session
        return response(
            200, req.cseq, {"Transport": answer, "Session": f"{sid};timeout={self.settings.session_timeout_s}"}
        )

    async def _play(self, req: Request) -> bytes:
        session = self._session(req)
        session.seen()
        seq, rtptime = session.rtp_info()
        control = req.url.rstrip("/")
        if not control.endswith("trackID=0"):
            control += "/trackID=0"
        session.play()
        self.server.pending(self, False)
        return response(
            200,
            req.cseq,
            {
                "Session": f"{session.id};timeout={self.settings.session_timeout_s}",
                "Range": "npt=0.000-",
                "RTP-Info": f"url={control};seq={seq};rtptime={rtptime}",
            },
        )

    async def _teardown(self, req: Request) -> bytes:
        session = self._session(req)
        await self.end_session(session, "ended by viewer")
        return response(200, req.cseq)

    async def _keepalive(self, req: Request) -> bytes:
        session = self._find_session(req)
        if session is not None:
            session.seen()
        return response(200, req.cseq)

    # -- checks ----------------------------------------------------------------------------------
    def _camera(self, req: Request) -> CameraPath:
        path = parse_camera_path(req.url)
        if path is None:
            raise _Reply(404, "not a camera: rtsp://HOST:PORT/cameras/{id}")
        if path.sub:
            # The registry knows one stream per camera; no camera has a sub stream to pass through.
            raise _Reply(404, f"camera '{path.camera_id}' has no sub stream")
        return path

    def _find_session(self, req: Request) -> RtspSession | None:
        value = (req.header("session") or "").split(";", 1)[0].strip()
        return self.sessions.get(value) if value else None

    def _session(self, req: Request) -> RtspSession:
        session = self._find_session(req)
        if session is None:
            raise _Reply(454, "no such session on this connection")
        return session

    async def _subject(self, req: Request) -> Subject:
        """The request's subject (Digest), or a 401 with a challenge."""
        gate = self.server.gate
        answer = parse_authorization(req.header("authorization"))
        stale = False
        if answer is not None and _camera_of(answer.uri) != _camera_of(req.url):
            # An answer made for another camera's URL: a replayed one cannot open another camera.
            gate.refused(self.address, "Digest uri is not the request's camera", req.method)
            raise _Reply(401, headers={"WWW-Authenticate": gate.challenge()})
        if answer is not None and answer.nonce not in self.nonces:
            state = gate.nonce_state(answer.nonce)
            if state != "fresh":
                stale = state == "stale"
                gate.refused(self.address, f"Digest nonce {state}", req.method)
                raise _Reply(401, headers={"WWW-Authenticate": gate.challenge(stale=stale)})
        subject = await gate.authenticate(req.method, answer, self.address)
        if subject is None:
            raise _Reply(401, headers={"WWW-Authenticate": gate.challenge()})
        assert answer is not None
        self.nonces[answer.nonce] = None  # a connection keeps using the nonce it authenticated with
        while len(self.nonces) > 8:
            self.nonces.popitem(last=False)
        return subject

    async def _permitted(self, subject: Subject, camera_id: str, method: str) -> None:
        if not await self.server.gate.may_pull(subject, camera_id, self.address, method):
            raise _Reply(403, f"'{subject.username}' may not view camera '{camera_id}' live")

    # -- the camera --------------------------------------------------------------------------------
    async def _open(self, camera_id: str, user_id: int) -> _Described:
        """A hub reader of the camera, its stream info and its first unit (a keyframe: from the GOP
        cache when the camera is being pulled already)."""
        self._drop_described("described again")
        if self.server.described.get(user_id, 0) >= MAX_DESCRIBED_PER_USER:
            raise _Reply(453, f"{MAX_DESCRIBED_PER_USER} cameras described and not set up already: SETUP or close them")
        hub, timeout_s = self.server.hub, self.settings.open_timeout_s
        try:
            reader = await hub.attach(camera_id, PROTOCOL)
        except NotFound:
            raise _Reply(404, f"no camera '{camera_id}'") from None
        except StreamUnavailable as e:
            raise _Reply(503, str(e)) from None
        try:
            info = hub.info(camera_id) or await hub.wait_info(camera_id, timeout_s)
            if info.codec not in CODECS:
                raise _Reply(415, f"camera '{camera_id}' sends {info.codec}: H.264 and H.265 are passed through")
            async with asyncio.timeout(timeout_s):
                first = await reader.get()
        except StreamUnavailable as e:
            hub.detach(reader, "describe failed")
            raise _Reply(503, str(e)) from None
        except TimeoutError:
            hub.detach(reader, "describe failed")
            raise _Reply(503, f"camera '{camera_id}' sent no picture in {timeout_s:g} s") from None
        except BaseException:
            hub.detach(reader, "describe failed")
            raise
        described = _Described(camera_id, user_id, reader, info, first)
        self.server.described[user_id] = self.server.described.get(user_id, 0) + 1
        # A DESCRIBE holds the camera for its SETUP, not for ever.
        described.expiry = asyncio.get_running_loop().call_later(
            self.settings.head_timeout_s + 5.0, self._drop_described, "no SETUP followed"
        )
        self.described = described
        return described

    def _release_described(self) -> _Described | None:
        """Take the described camera off this connection (and off its user's count)."""
        d, self.described = self.described, None
        if d is not None:
            if d.expiry is not None:
                d.expiry.cancel()
            left = self.server.described.pop(d.user_id, 1) - 1
            if left > 0:
                self.server.described[d.user_id] = left
        return d

    def _drop_described(self, reason: str) -> None:
        d = self._release_described()
        if d is not None:
            self.server.hub.detach(d.reader, reason)

    # -- ending ----------------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def end_session(self, session: RtspSession, reason: str) -> None:
        """End one session through the registry (audited; its closer stops the sending)."""
        if session.registry_id is None or not await self.server.sessions.end(session.registry_id, reason):
            await self._closed_by_registry(session, reason)

    async def _closed_by_registry(self, session: RtspSession, reason: str) -> None:
        self.sessions.pop(session.id, None)
        await session.close(reason)
        if reason != "ended by viewer":
            # Revoked, ended by an admin, the client gone or timed out: the client must notice now,
            # and a TCP session's data shares this connection.
            self.abort()
        elif not self.sessions:
            self.server.pending(self, True)

    async def _cleanup(self) -> None:
        self._drop_described("connection closed")
        for session in list(self.sessions.values()):
            await self.end_session(session, "client disconnected")
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        self.writer.close()
