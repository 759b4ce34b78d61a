"""HLS viewer sessions and the per-camera muxers they read.

A player starts at ``index.m3u8`` (authorized by a login or a signed stream token); that opens a
viewer session in the session registry and answers a multivariant playlist whose media playlist URI
carries the session key (``?s=``). Every later request names that key; it is checked together with
the ACL on every request, so revocation, logout and camera deletion end playback. The key is a
credential for that session's files only and resolves only while the session is open (an ended
key answers 410; see :mod:`acl.credentials`).
A session no player asked for in ``session_idle_s`` ends; a muxer nobody asked for in
``idle_stop_s`` stops and releases the camera.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

from acl.credentials import CredentialEnded, Kind
from acl.identity import Subject, hash_token
from gateway.hls.muxer import HlsMuxer, MuxerSettings
from gateway.metrics import Metrics
from gateway.sessions import SessionRegistry
from gateway.settings import HlsSettings
from streams import BROWSER_CODECS, StreamFeeds, StreamUnavailable, Variant, needs_transcode

__all__ = ["HlsService", "HlsSession", "SessionGone"]

log = logging.getLogger(__name__)
_ENDED_KEPT = 10_000


class SessionGone(Exception):
    """The HLS session ended (revoked, logged out, idle); the message says why."""


@dataclass
class HlsSession:
    """One player of one camera."""

    key: str
    session_id: str
    camera_id: str
    variant: Variant
    subject: Subject
    last_seen: float = field(default_factory=time.monotonic)
    requests: int = 0
    bytes_sent: int = 0


class HlsService:
    """Muxers per (camera, variant) and the players' sessions."""

    def __init__(
        self,
        feeds: StreamFeeds,
        sessions: SessionRegistry,
        settings: HlsSettings,
        metrics: Metrics,
        open_timeout_s: float = 8.0,
    ) -> None:
        self.feeds = feeds
        self.sessions = sessions
        self.settings = settings
        self.metrics = metrics
        self.open_timeout_s = open_timeout_s
        self.muxers: dict[tuple[str, Variant], HlsMuxer] = {}
        self._starting: dict[tuple[str, Variant], asyncio.Task[HlsMuxer]] = {}
        self._by_key: dict[str, HlsSession] = {}
        # Keys of ended sessions, only to say why (410); an ended key resolves to no one.
        self._ended: OrderedDict[str, tuple[str, int, str]] = OrderedDict()
        self._sweeper: asyncio.Task[None] | None = None
        self._mux = MuxerSettings(
            part_s=settings.part_duration_s,
            segment_min_s=settings.segment_min_s,
            segment_count=settings.segment_count,
            target_duration_s=max(1, round(settings.segment_min_s)),
        )

    # -- muxers ------------------------------------------------------------------------------
    def on_camera_live(self, camera_id: str) -> None:
        """The hub started pulling a camera: with ``always_remux``, mux it too (a passive reader that
        does not keep the camera open), so a first HLS viewer finds segments ready."""
        if not (self.settings.enabled and self.settings.always_remux):
            return
        key = (camera_id, Variant.auto)
        info = self.feeds.hub.info(camera_id)
        if key in self.muxers or key in self._starting or info is None or info.codec not in BROWSER_CODECS:
            return
        task = asyncio.ensure_future(self._start_muxer(camera_id, Variant.auto, info.codec, passive=True))
        self._starting[key] = task
        task.add_done_callback(lambda t: (self._starting.pop(key, None), t.cancelled() or t.exception()))

    async def muxer(self, camera_id: str, variant: Variant, known_codec: str | None) -> HlsMuxer:
        """The camera's running muxer (started if needed, with its first keyframe in)."""
        key = (camera_id, variant)
        mux = self.muxers.get(key)
        if mux is not None and mux.closed is None:
            mux.last_request = time.monotonic()
            return mux
        task = self._starting.get(key)
        if task is None:
            task = asyncio.ensure_future(self._start_muxer(camera_id, variant, known_codec))
            self._starting[key] = task
            task.add_done_callback(lambda _t: self._starting.pop(key, None))
        return await asyncio.shield(task)

    async def _start_muxer(
        self, camera_id: str, variant: Variant, known_codec: str | None, passive: bool = False
    ) -> HlsMuxer:
        feed = await self.feeds.attach(
            camera_id, "hls", known_codec=known_codec, variant=variant, timeout_s=self.open_timeout_s, passive=passive
        )
        mux = HlsMuxer(camera_id, feed, self._mux, size=(feed.info.width, feed.info.height), transcoded=feed.transcoded)
        mux.start()
        ok = await mux.wait(lambda: bool(mux.segments), self.open_timeout_s)
        if not ok:
            reason = mux.closed or f"no picture from camera '{camera_id}' in {self.open_timeout_s:g} s"
            await mux.stop("did not start")
            raise StreamUnavailable(reason)
        old = self.muxers.get((camera_id, variant))
        if old is not None and old.closed is None:  # a viewer's muxer started meanwhile: keep that one
            await mux.stop("not needed")
            return old
        self.muxers[(camera_id, variant)] = mux
        self.metrics.hls_muxers.set(len(self.muxers))
        log.info("camera %s: HLS muxer started (%s)", camera_id, "transcoded" if feed.transcoded else "passthrough")
        return mux

    # -- sessions ----------------------------------------------------------------------------
    async def open_session(
        self, camera_id: str, variant: Variant, subject: Subject, address: str | None, known_codec: str | None
    ) -> tuple[HlsSession, HlsMuxer]:
        """Start (or join) the camera's muxer and register a viewer session (:class:`SessionLimit`
        when the user holds ``sessions.max_per_user`` already, checked before the camera is opened)."""
        transcode = (camera_id, variant.value) if needs_transcode(known_codec, variant) else None
        self.sessions.check_room(subject.user_id, subject.username, transcode)
        mux = await self.muxer(camera_id, variant, known_codec)
        if mux.reader.passive:  # an always-on muxer: a viewer now keeps the camera open
            mux.feed_source.set_passive(mux.reader, False)
        key = secrets.token_urlsafe(18)
        holder: dict[str, HlsSession] = {}

        async def closer(reason: str) -> None:
            s = holder.get("s")
            if s is not None and self._by_key.pop(s.key, None) is not None:
                self._ended[s.key] = (s.camera_id, s.subject.user_id, reason)
                while len(self._ended) > _ENDED_KEPT:
                    self._ended.popitem(last=False)

        reg = await self.sessions.open(
            user_id=subject.user_id,
            username=subject.username,
            camera_id=camera_id,
            protocol="hls",
            address=address,
            token_id=subject.token_id,
            closer=closer,
            subject=subject,
        )
        s = HlsSession(key, reg.id, camera_id, variant, subject)
        holder["s"] = s
        self._by_key[key] = s
        reg.stats["transcoded"] = mux.transcoded
        reg.stats["variant"] = variant.value
        return s, mux

    def subject_for(self, key: str, camera_id: str | None) -> Subject | None:
        """Who holds a live session key (the authenticator's :class:`~gateway.auth.SessionKeys`);
        None for unknown keys or another camera. A key whose session ended raises
        :class:`~acl.credentials.CredentialEnded`, wherever it is presented."""
        s = self._by_key.get(key)
        if s is None:
            ended = self._ended.get(key)
            if ended is not None:
                raise CredentialEnded(f"this HLS session has ended: {ended[2]}")
            return None
        if camera_id is not None and s.camera_id != camera_id:
            return None
        return replace(s.subject, credential=Kind.session_key, credential_ref=hash_token(key)[:24])

    def touch(self, key: str, camera_id: str, subject: Subject) -> tuple[HlsSession, HlsMuxer]:
        """The live session of ``key`` and its muxer; raises :class:`SessionGone` or LookupError."""
        s = self._by_key.get(key)
        if s is None:
            ended = self._ended.get(key)
            if ended is not None and ended[0] == camera_id and ended[1] == subject.user_id:
                raise SessionGone(f"this HLS session has ended: {ended[2]}")
            raise LookupError("no such HLS session: start again at index.m3u8")
        if s.camera_id != camera_id or s.subject.user_id != subject.user_id:
            raise LookupError("no such HLS session: start again at index.m3u8")
        mux = self.muxers.get((camera_id, s.variant))
        if mux is None or mux.closed is not None:
            raise SessionGone("the camera's HLS stream stopped; start again at index.m3u8")
        now = time.monotonic()
        s.last_seen = now
        s.requests += 1
        mux.last_request = now
        return s, mux

    def sent(self, s: HlsSession, n: int) -> None:
        s.bytes_sent += n
        reg = self.sessions.get(s.session_id)
        if reg is not None:
            reg.stats["bytes_sent"] = s.bytes_sent
            reg.stats["requests"] = s.requests

    # -- housekeeping ------------------------------------------------------------------------
    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="hls-sweeper")

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.sweep()
            except Exception:
                log.exception("HLS sweep failed")

    async def sweep(self) -> None:
        """End idle sessions, stop idle muxers."""
        now = time.monotonic()
        for s in [s for s in self._by_key.values() if now - s.last_seen > self.settings.session_idle_s]:
            await self.sessions.end(s.session_id, "player stopped asking")
        for key, mux in list(self.muxers.items()):
            users = any((s.camera_id, s.variant) == key for s in self._by_key.values())
            idle = not users and now - mux.last_request > self.settings.idle_stop_s
            if idle and mux.closed is None and self.settings.always_remux and not mux.transcoded:
                if not mux.reader.passive:  # keep muxing while others pull the camera, without holding it
                    mux.feed_source.set_passive(mux.reader, True)
                continue
            if mux.closed is not None or idle:
                self.muxers.pop(key, None)
                await mux.stop(mux.closed or "no HLS client")
                log.info("camera %s: HLS muxer stopped (%s)", key[0], mux.closed)
        self.metrics.hls_muxers.set(len(self.muxers))

    async def end_camera(self, camera_id: str, reason: str) -> None:
        for key in [k for k in self.muxers if k[0] == camera_id]:
            await self.muxers.pop(key).stop(reason)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for mux in list(self.muxers.values()):
            await mux.stop("shutting down")
        self.muxers.clear()

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"camera_id": c, "variant": v.value, "segments": len(m.segments), "transcoded": m.transcoded}
            for (c, v), m in self.muxers.items()
        ]
