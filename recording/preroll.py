"""Pre-roll: the last ``recording.pre_roll_s`` of cameras that are pulled anyway, held in memory, so a
recording that starts at an alarm begins that long before it (the hub's GOP cache alone gives one GOP)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from recording.ports import HubReaders
from streams.packets import AccessUnit
from streams.reader import Reader, ReaderClosed

__all__ = ["PreRoll"]

log = logging.getLogger(__name__)
PROTOCOL = "preroll"
# Bound on what one camera holds whatever its frame rate or GOP (about 2 min at 30 fps): the
# oldest GOPs go first, so a camera gone wild cannot take the memory.
MAX_UNITS = 4000


class _Buffer:
    """Whole GOPs of one camera, the oldest dropped once the next one is old enough on its own."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.gops: deque[list[AccessUnit]] = deque()
        self.units = 0
        self.generation = 0
        self.dropped = 0

    def add(self, reader: Reader, au: AccessUnit) -> None:
        if reader.generation != self.generation or reader.dropped_gops != self.dropped:
            # The camera reconnected (timestamps start again) or we fell behind: what we hold does not continue.
            self.generation, self.dropped = reader.generation, reader.dropped_gops
            self.clear()
        if au.keyframe:
            self.gops.append([au])
        elif self.gops:
            self.gops[-1].append(au)
        else:
            return
        self.units += 1
        # Keep the newest keyframe at least ``seconds`` old (and everything after it).
        while len(self.gops) > 1 and (
            self.gops[1][0].wallclock <= au.wallclock - self.seconds or self.units > MAX_UNITS
        ):
            self.units -= len(self.gops.popleft())

    def clear(self) -> None:
        self.gops.clear()
        self.units = 0

    def units_list(self) -> list[AccessUnit]:
        return [au for gop in self.gops for au in gop]


class PreRoll:
    """A passive hub reader per camera that goes live (it never keeps a camera pulled), holding the
    last ``seconds`` from a keyframe on. :meth:`take` gives a recording its start."""

    def __init__(self, seconds: float, hub: HubReaders) -> None:
        self.seconds = seconds
        self.hub = hub
        self._held: dict[str, tuple[Reader, _Buffer]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    def camera_live(self, camera_id: str) -> None:
        """Hub hook (``StreamHub.on_live``): start holding the camera's last seconds."""
        if self.seconds <= 0 or self._closed:
            return
        task = self._tasks.get(camera_id)
        if task is None or task.done():
            self._tasks[camera_id] = asyncio.create_task(self._hold(camera_id), name=f"preroll {camera_id}")

    async def _hold(self, camera_id: str) -> None:
        if self.hub.info(camera_id) is None:
            return  # it went idle before we got here: a passive reader must not pull it again
        try:
            reader = await self.hub.attach(camera_id, PROTOCOL, with_backlog=True, passive=True)
        except Exception as e:  # gone again before we got there
            log.debug("camera %s: no pre-roll: %s", camera_id, e)
            return
        buf = _Buffer(self.seconds)
        buf.generation, buf.dropped = reader.generation, reader.dropped_gops
        self._held[camera_id] = (reader, buf)
        try:
            while True:
                buf.add(reader, await reader.get())
        except ReaderClosed:
            pass  # the camera is no longer pulled: nothing to hold
        finally:
            self._held.pop(camera_id, None)
            self._tasks.pop(camera_id, None)
            self.hub.detach(reader, "pre-roll ended")

    def take(self, camera_id: str) -> list[AccessUnit]:
        """What is held of the camera up to the newest unit the hub delivered (keyframe first; empty: none)."""
        held = self._held.get(camera_id)
        if held is None:
            return []
        reader, buf = held
        for au in reader.drain():  # units queued but not yet consumed: the buffer ends where the hub is
            buf.add(reader, au)
        return buf.units_list()

    def held_s(self, camera_id: str) -> float:
        """How far back the camera's pre-roll reaches now (0: nothing held)."""
        held = self._held.get(camera_id)
        if held is None or not held[1].gops:
            return 0.0
        gops = held[1].gops
        return gops[-1][-1].wallclock - gops[0][0].wallclock

    async def close(self) -> None:
        """Stop holding every camera."""
        self._closed = True
        for reader, _ in list(self._held.values()):
            self.hub.detach(reader, "pre-roll closed")
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
