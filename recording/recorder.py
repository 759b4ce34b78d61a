"""The recorder: per camera, one hub reader writing segments while anything asks for the camera to be
recorded (an incident, an operator's manual recording), cut at keyframes, indexed as they close.

A camera flap, a dropped GOP or a paused recording ends the segment being written: the index shows a
gap there, and every file stays whole. Below ``min_free_mb`` of free space recording pauses (an event
says so) and resumes by itself at a keyframe once space is back; live viewing never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from recording.fmp4 import truncate_torn
from recording.index import RecordingIndex, segment_path
from recording.ports import HubReaders, RecordingEvents
from recording.preroll import PreRoll
from recording.settings import RecordingSettings
from recording.writer import SegmentFile, SegmentWriter
from streams.packets import AccessUnit
from streams.reader import Reader, ReaderClosed

__all__ = ["Demand", "Recorder"]

log = logging.getLogger(__name__)
PROTOCOL = "record"
_RESUME_HEADROOM = 1024 * 1024
_MAX_DRIFT_S = 2.0  # a camera clock further off the arrival times than this is re-anchored at a cut


@dataclass(frozen=True, slots=True)
class Demand:
    """Why a camera is being recorded, and until when (epoch seconds)."""

    key: str  # e.g. "incident:INC-1", "manual:alice"
    reason: str  # incident | manual | rule
    until: float
    incident: str | None = None


@dataclass
class _Camera:
    camera_id: str
    demands: dict[str, Demand] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    writer: SegmentWriter | None = None
    reader: Reader | None = None
    indexing: asyncio.Task[None] | None = None
    reasons: set[str] = field(default_factory=set)
    incidents: set[str] = field(default_factory=set)
    paused: str | None = None
    segments: int = 0

    def active(self, now: float) -> list[Demand]:
        return [d for d in self.demands.values() if d.until > now]


class Recorder:
    """Records cameras on demand (see :meth:`record`); one task and one hub reader per camera."""

    def __init__(
        self,
        settings: RecordingSettings,
        hub: HubReaders,
        index: RecordingIndex,
        events: RecordingEvents | None = None,
        *,
        open_timeout_s: float = 10.0,
        preroll: PreRoll | None = None,
    ) -> None:
        self.settings = settings
        self.hub = hub
        self.index = index
        self.root = index.root
        self._events = events
        self._open_timeout_s = open_timeout_s
        # Without one (or for a camera nobody pulled) a recording starts with the hub's cached GOP.
        self.preroll = preroll
        self._cams: dict[str, _Camera] = {}
        self._closing = False
        self._sweeper: asyncio.Task[None] | None = None

    # -- what to record ----------------------------------------------------------------------
    def record(self, camera_id: str, demand: Demand) -> None:
        """Record ``camera_id`` until ``demand.until`` (or :meth:`release`); several demands share one recording."""
        if self._closing or not self.settings.enabled:
            return
        cam = self._cams.setdefault(camera_id, _Camera(camera_id))
        cam.demands[demand.key] = demand
        cam.reasons.add(demand.reason)
        if demand.incident:
            cam.incidents.add(demand.incident)
        if cam.task is None or cam.task.done():
            cam.task = asyncio.create_task(self._run(cam), name=f"record {camera_id}")
        cam.wake.set()

    def release(self, key: str, camera_id: str | None = None) -> int:
        """End demand ``key`` (on one camera or on all); returns how many cameras it was on."""
        n = 0
        for cam in [self._cams[camera_id]] if camera_id in self._cams else self._cams.values():
            if cam.demands.pop(key, None) is not None:
                n += 1
                self._expire(cam)
        return n

    def _expire(self, cam: _Camera) -> None:
        """End the camera's recording if nothing asks for it any more (its reader closes: the task ends)."""
        now = time.time()
        for k in [k for k, d in cam.demands.items() if d.until <= now]:
            del cam.demands[k]
        if not cam.active(now):
            cam.wake.set()
            if cam.reader is not None:
                self.hub.detach(cam.reader, "recording ended")

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for cam in list(self._cams.values()):
                self._expire(cam)
                idle = cam.task is None or cam.task.done()
                if not cam.demands and idle and (cam.indexing is None or cam.indexing.done()):
                    self._cams.pop(cam.camera_id, None)

    async def start(self) -> None:
        """Index what an unclean stop left on disk, then watch demands' deadlines."""
        recovered = await self.index.reconcile()
        if recovered:
            log.warning("recordings: %d segment(s) recovered after an unclean stop", recovered)
        self._sweeper = asyncio.create_task(self._sweep(), name="recording sweep")

    def incident_cameras(self, incident_id: str, cameras: list[str]) -> None:
        """An incident's cameras (at the alarm, or picked up while following a bus): record them
        until the incident closes or ``incident_max_h`` has passed."""
        until = time.time() + self.settings.incident_max_h * 3600
        for c in cameras:
            self.record(c, Demand(f"incident:{incident_id}", "incident", until, incident_id))

    def incident_closed(self, incident_id: str) -> None:
        """The incident closed: its recordings end (others of the same cameras go on)."""
        self.release(f"incident:{incident_id}")

    def status(self, camera_id: str) -> dict[str, Any]:
        """Whether and why the camera is being recorded now."""
        cam = self._cams.get(camera_id)
        now = time.time()
        if cam is None or not cam.active(now):
            return {"recording": False}
        return {
            "recording": cam.writer is not None,
            "paused": cam.paused,
            "demands": [
                {"key": d.key, "reason": d.reason, "until": d.until, "incident": d.incident} for d in cam.active(now)
            ],
        }

    def recording(self) -> list[str]:
        """Cameras with a segment open now."""
        return sorted(c for c, cam in self._cams.items() if cam.writer is not None)

    async def close(self) -> None:
        """Stop every recording; open segments are closed and indexed."""
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        tasks = [c.task for c in self._cams.values() if c.task is not None]
        for cam in self._cams.values():
            cam.demands.clear()
            self._expire(cam)
        # Readers closed: writing tasks end their segments cleanly; one still waiting for a camera holds none.
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5.0)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.flush_index()

    async def flush_index(self) -> None:
        """Wait until every closed segment is in the index."""
        await asyncio.gather(
            *(c.indexing for c in self._cams.values() if c.indexing is not None), return_exceptions=True
        )

    # -- one camera --------------------------------------------------------------------------
    async def _run(self, cam: _Camera) -> None:
        try:
            while cam.active(time.time()):
                reader: Reader | None = None
                try:
                    reader = cam.reader = await self.hub.attach(cam.camera_id, PROTOCOL, with_backlog=True)
                    info = await self.hub.wait_info(cam.camera_id, self._open_timeout_s)
                    held = self.preroll.take(cam.camera_id) if self.preroll is not None else []
                    await self._read(cam, reader, info.codec, info.width, info.height, held)
                except ReaderClosed as e:
                    log.info("camera %s: recording reader closed (%s)", cam.camera_id, e)
                except Exception as e:  # the camera is unknown, offline or not ours: try again later
                    log.warning("camera %s: cannot record now: %s", cam.camera_id, e)
                finally:
                    await self._end_segment(cam)
                    cam.reader = None
                    if reader is not None:
                        self.hub.detach(reader, "recording ended")
                if cam.active(time.time()):
                    with contextlib.suppress(TimeoutError):
                        cam.wake.clear()
                        await asyncio.wait_for(cam.wake.wait(), self.settings.retry_s)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._end_segment(cam))
            if not cam.active(time.time()):
                cam.reasons.clear()
                cam.incidents.clear()

    async def _read(
        self, cam: _Camera, reader: Reader, codec: str, width: int, height: int, held: list[AccessUnit]
    ) -> None:
        """Write the pre-roll ``held`` (up to the newest unit the hub delivered), then what the reader brings."""
        generation, dropped = reader.generation, reader.dropped_gops
        held_to = held[-1].pts if held else None
        for au in held:
            await self._write(cam, au, codec, width, height)
        while True:
            au = await reader.get()  # ReaderClosed when the camera goes, or _expire ended the recording
            if reader.generation != generation or reader.dropped_gops != dropped:
                # The camera reconnected (timestamps start again) or we fell a GOP behind: a gap, not a splice.
                generation, dropped = reader.generation, reader.dropped_gops
                held_to = None
                await self._end_segment(cam)
            if held_to is not None:
                if au.pts <= held_to:
                    continue  # the reader's GOP backlog and what came since: the pre-roll already wrote it
                held_to = None
            await self._write(cam, au, codec, width, height)

    async def _write(self, cam: _Camera, au: AccessUnit, codec: str, width: int, height: int) -> None:
        w = cam.writer
        follows: float | None = None
        if w is not None and au.keyframe and w.duration_s >= self.settings.segment_s:
            follows = await self._end_segment(cam)
            w = None
        if w is None:
            if not au.keyframe or not self._space_ok(cam):
                return
            path = self.root / segment_path(cam.camera_id, au.wallclock)
            n = 0
            while path.exists():  # a pre-roll may start at a keyframe an earlier segment holds too: never overwrite
                n += 1
                path = path.with_name(f"{path.stem.split('-')[0]}-{n}.mp4")
            try:
                cam.writer = SegmentWriter(cam.camera_id, path, codec, width, height, au, self.settings.fragment_s)
                if follows is not None and abs(au.wallclock - follows) < _MAX_DRIFT_S:
                    # The next picture of the same stream: the new segment starts where the last ended
                    # (by the samples' timestamps), not when its first picture happened to arrive.
                    cam.writer.start = follows
            except (OSError, av.FFmpegError) as e:
                self._pause(cam, f"cannot write: {e}")
                path.unlink(missing_ok=True)
            return
        try:
            w.write(au)
        except (OSError, av.FFmpegError) as e:
            self._pause(cam, f"write failed: {e}")
            await self._end_segment(cam, failed=True)

    def _space_ok(self, cam: _Camera) -> bool:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(self.root).free
        except OSError as e:
            self._pause(cam, f"recordings directory unusable: {e}")
            return False
        # Once paused, resume only with some room beyond the watermark (not at every keyframe on the edge).
        need = self.settings.min_free_mb * 1024 * 1024 + (_RESUME_HEADROOM if cam.paused is not None else 0)
        if free < need:
            self._pause(cam, f"disk almost full ({free // (1024 * 1024)} MB free)")
            return False
        if cam.paused is not None:
            log.warning("camera %s: recording resumed", cam.camera_id)
            cam.paused = None
            self._publish("recording.resumed", cam, {})
        return True

    def _pause(self, cam: _Camera, why: str) -> None:
        if cam.paused is None:
            log.error("camera %s: recording paused: %s", cam.camera_id, why)
            self._publish("recording.paused", cam, {"reason": why})
        cam.paused = why

    def _publish(self, type_: str, cam: _Camera, data: dict[str, Any]) -> None:
        if self._events is not None:
            self._events(type_, {"camera_id": cam.camera_id, **data}, [cam.camera_id])

    async def _end_segment(self, cam: _Camera, *, failed: bool = False) -> float | None:
        """Close the segment being written and queue it for the index; returns where it ends."""
        w, cam.writer = cam.writer, None
        if w is None:
            return None
        seg: SegmentFile | None
        try:
            seg = await asyncio.to_thread(w.close) if not failed else None
        except (OSError, av.FFmpegError):
            seg = None
        if seg is None:
            w.abandon()
            seg = await asyncio.to_thread(_salvage, w)
            if seg is None:
                return None
        reasons = set(cam.reasons)
        incidents = set(cam.incidents)
        # What the segment was recorded for from here on: the demands still standing.
        now = time.time()
        cam.reasons = {d.reason for d in cam.active(now)}
        cam.incidents = {d.incident for d in cam.active(now) if d.incident}
        # Indexed off the write path (hashing and a database write must not hold the next segment
        # up while the reader's queue fills), one after the other per camera (the chain's order).
        cam.indexing = asyncio.create_task(self._index(cam, cam.indexing, seg, sorted(reasons), sorted(incidents)))
        return seg.end

    async def _index(
        self,
        cam: _Camera,
        before: asyncio.Task[None] | None,
        seg: SegmentFile,
        reasons: list[str],
        incidents: list[str],
    ) -> None:
        if before is not None:
            await asyncio.gather(before, return_exceptions=True)
        try:
            await self.index.add(cam.camera_id, seg, reasons, incidents)
            cam.segments += 1
        except Exception:
            log.exception("camera %s: segment %s could not be indexed", cam.camera_id, seg.path)


def _salvage(w: SegmentWriter) -> SegmentFile | None:
    """What a failed segment holds: cut the torn fragment off and keep the rest (None: nothing whole)."""
    path: Path = w.path
    try:
        truncate_torn(path)
    except OSError:
        return None
    from recording.index import _recover

    seg = _recover(path)
    if seg is None:
        path.unlink(missing_ok=True)
        return None
    return SegmentFile(path, w.start, w.start + (seg.end - seg.start), seg.bytes, seg.codec, seg.width, seg.height)
