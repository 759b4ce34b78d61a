"""Per-camera RTP fan-out: each access unit is packetized once and sent to every viewer of the camera.

One :class:`CameraFanout` per camera stream (the camera's own, or one transcoded variant) reads the
stream with a single hub reader, turns each access unit into RTP payloads once
(:func:`~gateway.webrtc.h264_rtp.packetize_h264`) and hands them to each viewer's
:class:`~gateway.webrtc.rtp_viewer.RtpViewer`, which only writes its header, encrypts and sends.

A viewer that connects starts with the current GOP (from its keyframe). That catch-up is paced by
one task per camera: a bounded number of packets per tick across all joining viewers, round robin
(every joiner gets its keyframe first), so a wall of viewers opening at once never delays the live
packets of the viewers already watching, which go out as each unit arrives.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable, Hashable

from gateway.webrtc.h264_rtp import packetize_h264
from gateway.webrtc.rtp_viewer import RtpViewer, SharedUnit, abs_send_time
from streams import Feed, Reader, ReaderClosed

__all__ = ["CameraFanout", "Fanouts"]

log = logging.getLogger(__name__)

# Catch-up pacing: per tick of _PACE_S each joining viewer gets at most one cached unit (its units
# 4 ms apart, as the per-viewer path paced them: a keyframe burst fits a receiver's socket buffer),
# and all joiners of a camera together at most _PACE_PACKETS packets (~1.5 ms of a core here), so a
# wall of joiners takes at most about a third of the loop and live packets are never held back.
_PACE_PACKETS = 96
_PACE_S = 0.004
# A keyframe request resends the cached GOP at most this often per viewer (a PLI storm costs nothing).
_KEYFRAME_ANSWER_S = 1.0


class CameraFanout:
    """The shared RTP payloads of one camera stream and the viewers they go to."""

    def __init__(self, key: Hashable, reader: Reader, feed: Feed, on_closed: Callable[[CameraFanout], None]) -> None:
        self.key = key
        self.camera_id = feed.camera_id
        self.reader = reader  # passive: the viewers' counting readers keep the camera open
        self._feed = feed
        self._on_closed = on_closed
        self.viewers: set[RtpViewer] = set()
        self.live: list[RtpViewer] = []
        self.catching: deque[RtpViewer] = deque()
        self.gop: list[SharedUnit] = []  # from the latest keyframe to the newest unit
        self.units = 0
        self.closed = False
        self._serial = itertools.count()
        self._generation = reader.generation
        self._last_answer: dict[RtpViewer, float] = {}
        self._pacer: asyncio.Task[None] | None = None
        self._task = asyncio.ensure_future(self._run())

    # -- viewers ----------------------------------------------------------------------------
    def add(self, viewer: RtpViewer) -> None:
        """A viewer being set up (nothing is sent until :meth:`start`)."""
        self.viewers.add(viewer)

    def start(self, viewer: RtpViewer) -> bool:
        """The viewer's DTLS is up: send it the current GOP (paced), then live units. False: not ready."""
        if viewer not in self.viewers or self.closed or not viewer.bind():
            return False
        if viewer in self.live or viewer in self.catching:
            return True
        self._catch_up(viewer)
        return True

    def remove(self, viewer: RtpViewer) -> None:
        """The viewer left: forget it; the last viewer closes the fan-out (and its hub reader)."""
        viewer.close()
        self.viewers.discard(viewer)
        self._last_answer.pop(viewer, None)
        if viewer in self.live:
            self.live.remove(viewer)
        if viewer in self.catching:
            self.catching.remove(viewer)
        if not self.viewers:
            self.close("no viewers")

    def keyframe_requested(self, viewer: RtpViewer) -> None:
        """PLI/FIR: the camera cannot be asked, so resend the cached GOP (at most once a second, and
        not within a second of the GOP a joining viewer was just sent: requests a receiver made
        before that arrived would replay it twice)."""
        if not self.answers_keyframe_request(viewer):
            return
        if viewer in self.live and self.gop:
            self.live.remove(viewer)
            self._catch_up(viewer)

    def answers_keyframe_request(self, viewer: RtpViewer) -> bool:
        """Whether a keyframe request from ``viewer`` now would be answered (the once-a-second limit)."""
        now = asyncio.get_running_loop().time()
        return now - self._last_answer.get(viewer, -_KEYFRAME_ANSWER_S) >= _KEYFRAME_ANSWER_S

    def _catch_up(self, viewer: RtpViewer) -> None:
        self._last_answer[viewer] = asyncio.get_running_loop().time()
        if not self.gop:  # nothing cached yet (cold camera): the first keyframe goes out live
            viewer.need_keyframe = True
            self.live.append(viewer)
            return
        viewer.backlog = self.gop
        viewer.cursor = 0
        self.catching.append(viewer)
        if self._pacer is None or self._pacer.done():
            self._pacer = asyncio.ensure_future(self._pace())

    # -- the camera's units -----------------------------------------------------------------
    async def _run(self) -> None:
        try:
            while True:
                try:
                    au = await self.reader.get()
                except ReaderClosed as e:
                    self.close(str(e) or "stream ended")
                    return
                if self.reader.generation != self._generation:
                    self._restarted()
                unit = SharedUnit(next(self._serial), au.pts, au.keyframe, packetize_h264(au.data))
                self.units += 1
                self._distribute(unit)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here must not leave every viewer of the camera silently frozen
            log.exception("camera %s: the WebRTC fan-out failed", self.camera_id)
            self.close("fan-out failed")

    def _restarted(self) -> None:
        """The upstream reconnected: its clock starts again and the cached GOP is stale."""
        self._generation = self.reader.generation
        self.gop = []
        for v in self.catching:
            v.backlog = None
            v.need_keyframe = True
            self.live.append(v)
        self.catching.clear()
        for v in self.live:
            v.restart_clock()

    def _distribute(self, unit: SharedUnit) -> None:
        if unit.keyframe:
            self.gop = [unit]
            # Joiners still replaying the old GOP can start right here, at a keyframe.
            while self.catching:
                v = self.catching.popleft()
                v.backlog = None
                if v.sent:
                    v.continue_from_keyframe(unit)
                self.live.append(v)
        else:
            self.gop.append(unit)
        abs24 = abs_send_time()
        for v in self.live:
            if v.need_keyframe:
                if not unit.keyframe:
                    continue
                v.need_keyframe = False
            v.send_unit(unit, v.stamp_live(unit), abs24)

    async def _pace(self) -> None:
        """Replay the cached GOP to joining viewers: per tick at most one unit per viewer (a burst one
        receiver's socket buffer takes) and at most _PACE_PACKETS packets in all, round robin."""
        while self.catching and not self.closed:
            budget = _PACE_PACKETS
            abs24 = abs_send_time()
            for _ in range(len(self.catching)):
                if budget <= 0 or not self.catching:
                    break
                v = self.catching.popleft()
                backlog = v.backlog
                if backlog is None or v.cursor >= len(backlog):  # (defensive: it went live meanwhile)
                    continue
                unit = backlog[v.cursor]
                v.cursor += 1
                v.send_unit(unit, v.stamp_backlog(), abs24)
                v.need_keyframe = False
                budget -= len(unit.payloads)
                if v.cursor >= len(backlog):
                    # Caught up: the next unit the camera sends goes to this viewer live.
                    v.backlog = None
                    v.continue_from(unit)
                    self.live.append(v)
                else:
                    self.catching.append(v)
            await asyncio.sleep(_PACE_S)

    def close(self, reason: str) -> None:
        """Stop reading and sending; viewers still attached get nothing more (their sessions end them)."""
        if self.closed:
            return
        self.closed = True
        for v in self.viewers:
            v.close()
        self.live.clear()
        self.catching.clear()
        self.gop = []
        self._last_answer.clear()
        if self._pacer is not None:
            self._pacer.cancel()
        if not self._task.done() and asyncio.current_task() is not self._task:
            self._task.cancel()
        self._feed.source.detach(self.reader, reason)
        self._on_closed(self)


class Fanouts:
    """The fan-outs of this process, one per camera stream (shared by every WebRTC viewer of it)."""

    def __init__(self) -> None:
        self._by_key: dict[Hashable, CameraFanout] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}

    async def join(self, feed: Feed) -> CameraFanout:
        """The fan-out of the stream ``feed`` reads (made, with one passive hub reader, for its first viewer)."""
        key = (id(feed.source), feed.camera_id)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            fanout = self._by_key.get(key)
            if fanout is None or fanout.closed:
                reader = await feed.source.attach(feed.camera_id, "webrtc-fanout", passive=True)
                fanout = CameraFanout(key, reader, feed, self._closed)
                self._by_key[key] = fanout
        return fanout

    def _closed(self, fanout: CameraFanout) -> None:
        if self._by_key.get(fanout.key) is fanout:
            del self._by_key[fanout.key]

    def get(self, camera_id: str) -> list[CameraFanout]:
        """The live fan-outs of a camera (its own stream and any transcoded variants)."""
        return [f for f in self._by_key.values() if f.camera_id == camera_id]

    def __len__(self) -> int:
        return len(self._by_key)
