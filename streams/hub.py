"""The stream hub: one upstream per camera, shared by every reader (WebRTC, HLS, snapshots, transcoder)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.gop import GopCache
from streams.packets import AccessUnit
from streams.ports import (
    NO_METRICS,
    HubMetrics,
    LocalOwnership,
    Ownership,
    StreamInfo,
    Upstream,
    UpstreamCallbacks,
    UpstreamFactory,
    UpstreamState,
    UpstreamTimeouts,
    UrlResolver,
)
from streams.reader import Reader
from streams.settings import HubSettings

__all__ = ["CameraStream", "StreamHub", "StreamUnavailable"]

log = logging.getLogger(__name__)


class StreamUnavailable(Exception):
    """The camera's stream cannot be had (unknown camera, hub closed, no data in time)."""


@dataclass
class CameraStream:
    """The hub's state for one camera."""

    camera_id: str
    gop: GopCache
    state: UpstreamState = UpstreamState.idle
    reason: str | None = None
    info: StreamInfo | None = None
    upstream: Upstream | None = None
    readers: set[Reader] = field(default_factory=set)
    hold_until: float = 0.0
    idle_timer: asyncio.TimerHandle | None = None
    started_at: float | None = None
    live_since: float | None = None
    units: int = 0
    bytes_window: list[tuple[float, int]] = field(default_factory=list)
    info_event: asyncio.Event = field(default_factory=asyncio.Event)
    keyframe_event: asyncio.Event = field(default_factory=asyncio.Event)

    def active_readers(self) -> bool:
        """Readers that keep the upstream open (passive ones, like an always-on HLS muxer, do not)."""
        return any(not r.passive for r in self.readers)

    def bitrate_bps(self) -> float:
        """Upstream bitrate over the last 5 seconds."""
        now = time.monotonic()
        self.bytes_window = [(t, n) for t, n in self.bytes_window if now - t <= 5.0]
        if not self.bytes_window:
            return 0.0
        span = max(now - self.bytes_window[0][0], 1.0)
        return sum(n for _, n in self.bytes_window) * 8 / span


class StreamHub:
    """Owns the upstream sessions. ``attach`` a reader to get a camera's access units.

    A camera's upstream starts with its first reader (or a pre-warm) and closes
    ``idle_close_s`` after the last reader leaves and any pre-warm hold has passed.
    """

    def __init__(
        self,
        settings: HubSettings,
        resolve_url: UrlResolver,
        metrics: HubMetrics = NO_METRICS,
        *,
        upstream_factory: UpstreamFactory,
        ownership: Ownership = LocalOwnership(),
    ) -> None:
        self.settings = settings
        self._factory = upstream_factory
        # Asked before every pull: a cluster node's leases (gateway.wiring passes them), else always ours.
        self.ownership = ownership
        # Called with the camera id when an upstream goes live (e.g. HLS starts remuxing it).
        self.on_live: list[Callable[[str], None]] = []
        self._resolve_url = resolve_url
        self.metrics = metrics
        self._streams: dict[str, CameraStream] = {}
        self._closed = False
        self._timeouts = UpstreamTimeouts(
            open_s=settings.open_timeout_s,
            read_s=settings.read_timeout_s,
            backoff_initial_s=settings.reconnect_initial_s,
            backoff_max_s=settings.reconnect_max_s,
        )

    # -- readers ---------------------------------------------------------------------------
    async def attach(
        self,
        camera_id: str,
        protocol: str,
        *,
        with_backlog: bool = True,
        passive: bool = False,
        consume: bool = True,
    ) -> Reader:
        """A new reader of ``camera_id``; it starts with the cached GOP (a keyframe) when there is one.

        A ``passive`` reader does not keep the upstream open: it is closed when the others have left.
        A reader that does not ``consume`` queues nothing: it stands for a viewer fed by a shared
        consumer (see :attr:`Reader.counts_only`)."""
        if self._closed:
            raise StreamUnavailable("the stream hub is shutting down")
        stream = await self._ensure(camera_id)
        reader = Reader(
            camera_id,
            protocol,
            self.settings.reader_queue_packets,
            on_drop=self._count_drop,
            on_first=self._observe_first_unit,
        )
        reader.counts_only = not consume
        if with_backlog and consume:
            backlog = stream.gop.snapshot()
            for au in backlog[: self.settings.reader_queue_packets - 1]:
                reader.push(au)
            reader.backlog_units = min(len(backlog), self.settings.reader_queue_packets - 1)
        reader.passive = passive
        stream.readers.add(reader)
        if not passive:  # a passive reader is no viewer: not counted, does not hold the camera
            self._cancel_idle(stream)
            self.metrics.viewers_changed(camera_id, protocol, 1)
        return reader

    def detach(self, reader: Reader, reason: str = "detached") -> None:
        """Remove a reader; the upstream closes later if nobody else reads."""
        stream = self._streams.get(reader.camera_id)
        reader.close(reason)
        if stream is None or reader not in stream.readers:
            return
        stream.readers.discard(reader)
        if not reader.passive:
            self.metrics.viewers_changed(reader.camera_id, reader.protocol, -1)
        self._schedule_idle(stream)

    def set_passive(self, reader: Reader, passive: bool) -> None:
        """Make a reader keep the upstream open (or stop doing so)."""
        stream = self._streams.get(reader.camera_id)
        was, reader.passive = reader.passive, passive
        if stream is None or reader not in stream.readers or was == passive:
            return
        self.metrics.viewers_changed(reader.camera_id, reader.protocol, -1 if passive else 1)
        if passive:
            self._schedule_idle(stream)
        else:
            self._cancel_idle(stream)

    async def prewarm(self, camera_id: str, hold_s: float = 30.0) -> None:
        """Start pulling a camera now and keep it for at least ``hold_s`` (alarm workflow)."""
        stream = await self._ensure(camera_id)
        stream.hold_until = max(stream.hold_until, time.monotonic() + hold_s)
        self._schedule_idle(stream)

    async def wait_info(self, camera_id: str, timeout_s: float) -> StreamInfo:
        """Stream info (codec, size) once the upstream has opened; :class:`StreamUnavailable` on timeout."""
        stream = self._streams.get(camera_id)
        if stream is None:
            raise StreamUnavailable(f"camera '{camera_id}' is not being pulled")
        if stream.info is None:
            try:
                await asyncio.wait_for(stream.info_event.wait(), timeout_s)
            except TimeoutError:
                raise StreamUnavailable(
                    f"camera '{camera_id}' did not answer in {timeout_s:g} s"
                    + (f" ({stream.reason})" if stream.reason else "")
                ) from None
        assert stream.info is not None
        return stream.info

    def info(self, camera_id: str) -> StreamInfo | None:
        """Stream info if the camera is (or was) open in this process."""
        stream = self._streams.get(camera_id)
        return stream.info if stream else None

    def latest_keyframe(self, camera_id: str) -> AccessUnit | None:
        """The cached keyframe of a live camera (snapshots decode it instead of opening the camera)."""
        stream = self._streams.get(camera_id)
        if stream is None or stream.state is not UpstreamState.live:
            return None
        return stream.gop.keyframe

    def describe(self, camera_id: str) -> dict[str, Any]:
        """The camera's stream state for the API."""
        stream = self._streams.get(camera_id)
        if stream is None:
            return {"state": UpstreamState.idle.value, "readers": 0}
        by_proto: dict[str, int] = {}
        viewers = [r for r in stream.readers if not r.passive]  # an always-on HLS muxer is not a viewer
        for r in viewers:
            by_proto[r.protocol] = by_proto.get(r.protocol, 0) + 1
        out: dict[str, Any] = {
            "state": stream.state.value,
            "reason": stream.reason,
            "readers": len(viewers),
            "readers_by_protocol": by_proto,
            "hls_remux": any(r.protocol == "hls" for r in stream.readers),
            "bitrate_bps": round(stream.bitrate_bps()),
            "reconnects": max((stream.upstream.attempts - 1) if stream.upstream else 0, 0),
        }
        if stream.info:
            out.update(codec=stream.info.codec, width=stream.info.width, height=stream.info.height, fps=stream.info.fps)
        return out

    def cameras(self) -> list[str]:
        """Cameras with an upstream (or state) in this hub."""
        return sorted(self._streams)

    # -- lifecycle -------------------------------------------------------------------------
    async def _ensure(self, camera_id: str) -> CameraStream:
        stream = self._streams.get(camera_id)
        if stream is not None and stream.upstream is not None and stream.upstream.alive:
            return stream
        url = await self._resolve_url(camera_id)  # raises for unknown cameras
        await self.ownership.claim(camera_id)  # raises when another node pulls it
        stream = self._streams.get(camera_id)  # another task may have started it meanwhile
        if stream is not None and stream.upstream is not None and stream.upstream.alive:
            return stream
        created = stream is None
        if stream is None:
            stream = CameraStream(camera_id, GopCache(self.settings.max_gop_cache_packets))
            self._streams[camera_id] = stream
        loop = asyncio.get_running_loop()
        stream.started_at = time.monotonic()
        try:
            upstream = self._new_upstream(stream, url, loop)
            upstream.start()  # a factory may refuse here (e.g. the transcoder is at its cap)
        except BaseException:
            if created and not stream.readers:
                self._streams.pop(camera_id, None)
            raise
        stream.upstream = upstream
        log.info("camera %s: upstream started", camera_id)
        return stream

    def _new_upstream(self, stream: CameraStream, url: str, loop: asyncio.AbstractEventLoop) -> Upstream:
        camera_id = stream.camera_id
        return self._factory(
            camera_id,
            url,
            loop,
            callbacks=UpstreamCallbacks(
                on_unit=functools.partial(self._on_unit, stream),
                on_state=functools.partial(self._on_state, stream),
                on_info=functools.partial(self._on_info, stream),
                on_bytes=functools.partial(self._on_bytes, stream),
            ),
            timeouts=self._timeouts,
        )

    def _schedule_idle(self, stream: CameraStream) -> None:
        self._cancel_idle(stream)
        if stream.active_readers():
            return
        delay = max(self.settings.idle_close_s, stream.hold_until - time.monotonic())
        stream.idle_timer = asyncio.get_running_loop().call_later(delay, self._idle_check, stream)

    def _cancel_idle(self, stream: CameraStream) -> None:
        if stream.idle_timer is not None:
            stream.idle_timer.cancel()
            stream.idle_timer = None

    def _idle_check(self, stream: CameraStream) -> None:
        stream.idle_timer = None
        if stream.active_readers():
            return
        if time.monotonic() < stream.hold_until:
            self._schedule_idle(stream)
            return
        self._stop_stream(stream, "idle")

    def _stop_stream(self, stream: CameraStream, why: str) -> None:
        for r in list(stream.readers):  # passive readers left when the others had gone
            r.close(why)
            stream.readers.discard(r)
            if not r.passive:
                self.metrics.viewers_changed(r.camera_id, r.protocol, -1)
        self._cancel_idle(stream)
        up, stream.upstream = stream.upstream, None
        if up is not None:
            up.stop()
            log.info("camera %s: upstream closed (%s)", stream.camera_id, why)
        self._set_state(stream, UpstreamState.idle, None)
        stream.gop.clear()
        stream.info_event = asyncio.Event()
        stream.info = None
        self._streams.pop(stream.camera_id, None)
        self.ownership.released(stream.camera_id)

    async def close(self) -> None:
        """Stop every upstream and close every reader."""
        self._closed = True
        ups = []
        for stream in list(self._streams.values()):
            for r in list(stream.readers):
                self.detach(r, "hub closed")
            self._cancel_idle(stream)
            if stream.upstream is not None:
                ups.append(stream.upstream)
            self._stop_stream(stream, "shutdown")
        await asyncio.gather(*(u.join(self.settings.read_timeout_s + 2) for u in ups))

    async def end_camera(self, camera_id: str, reason: str) -> None:
        """Close a camera's readers and upstream now (camera deleted)."""
        stream = self._streams.get(camera_id)
        if stream is None:
            return
        for r in list(stream.readers):
            self.detach(r, reason)
        self._cancel_idle(stream)
        self._stop_stream(stream, reason)

    def suspend(self, camera_id: str, reason: str) -> bool:
        """Stop pulling the camera but keep its readers (they wait for :meth:`resume`, then start
        again at a keyframe). Used when this node may no longer pull it for a while."""
        stream = self._streams.get(camera_id)
        if stream is None or stream.upstream is None:
            return False
        up, stream.upstream = stream.upstream, None
        up.stop()
        log.info("camera %s: upstream suspended (%s)", camera_id, reason)
        stream.gop.clear()
        stream.keyframe_event.clear()
        for r in stream.readers:
            r.restart()
        self._set_state(stream, UpstreamState.reconnecting, reason)
        return True

    async def resume(self, camera_id: str) -> bool:
        """Pull a suspended camera again (claims it first); False if nobody reads it any more."""
        stream = self._streams.get(camera_id)
        if stream is None:
            return False
        await self._ensure(camera_id)
        return True

    # -- upstream callbacks (event loop) ---------------------------------------------------
    def _on_unit(self, stream: CameraStream, au: AccessUnit) -> None:
        if stream.upstream is None:
            return
        stream.units += 1
        stream.gop.add(au)
        if au.keyframe:
            stream.keyframe_event.set()
        for r in stream.readers:
            r.push(au)

    def _on_state(self, stream: CameraStream, state: UpstreamState, reason: str | None) -> None:
        if stream.upstream is None and state is not UpstreamState.idle:
            return
        if state in (UpstreamState.reconnecting, UpstreamState.failed) and stream.state is UpstreamState.live:
            stream.gop.clear()
            stream.keyframe_event.clear()
            for r in stream.readers:
                r.restart()
        if state is UpstreamState.reconnecting or state is UpstreamState.failed:
            self.metrics.upstream_retrying(stream.camera_id)
        if state is UpstreamState.live:
            stream.live_since = time.monotonic()
        self._set_state(stream, state, reason)
        if state is UpstreamState.live:
            for hook in self.on_live:
                hook(stream.camera_id)

    def _set_state(self, stream: CameraStream, state: UpstreamState, reason: str | None) -> None:
        stream.state = state
        stream.reason = reason
        self.metrics.upstream_state_changed(stream.camera_id, state)

    def _on_info(self, stream: CameraStream, info: StreamInfo) -> None:
        stream.info = info
        stream.info_event.set()

    def _on_bytes(self, stream: CameraStream, n: int) -> None:
        stream.bytes_window.append((time.monotonic(), n))
        if len(stream.bytes_window) > 2000:
            stream.bytes_window = stream.bytes_window[-1000:]
        self.metrics.upstream_received(stream.camera_id, n, stream.bitrate_bps())

    def _observe_first_unit(self, reader: Reader) -> None:
        # From attach to the consumer taking its first unit: for WebRTC that is after ICE and DTLS,
        # so the histogram shows what viewers wait for, warm (GOP cache) and cold alike.
        if reader.first_unit_at is not None:
            self.metrics.first_unit_delivered(reader.protocol, reader.first_unit_at - reader.created)

    def _count_drop(self, reader: Reader) -> None:
        self.metrics.gop_dropped(reader.camera_id, reader.protocol)
