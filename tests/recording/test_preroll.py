"""Pre-roll (``recording.pre_roll_s``): a camera pulled anyway has its last seconds held in memory by a
passive reader, and a recording that starts now begins that far back, with no picture written twice."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from camera_registry.opener import CheckedOpener
from fixtures.camera_server import FixtureCameraServer
from recording.index import RecordingIndex
from recording.preroll import MAX_UNITS, PreRoll, _Buffer
from recording.recorder import Demand, Recorder
from recording.settings import RecordingSettings
from storage.db import Database
from streams import RtspUpstream, StreamHub
from streams.packets import AccessUnit
from streams.reader import Reader
from streams.settings import HubSettings
from tests.media import cameras_fixture

RTSP = partial(RtspUpstream, opener=CheckedOpener())
cams = cameras_fixture("h264_360p")
PRE_ROLL_S = 5.0


def _au(t: float, key: bool) -> AccessUnit:
    return AccessUnit(b"\0\0\1\x65" if key else b"\0\0\1\x41", int(t * 90_000), key, 1000.0 + t)


def test_the_buffer_keeps_whole_gops_reaching_back_at_least_the_pre_roll() -> None:
    reader = Reader("c", "preroll", 10)
    buf = _Buffer(3.0)
    for i in range(100):  # 10 fps, a keyframe every second
        buf.add(reader, _au(i / 10, i % 10 == 0))
    units = buf.units_list()
    assert units[0].keyframe and units[-1].wallclock == 1009.9
    assert units[-1].wallclock - units[0].wallclock >= 3.0  # at least the pre-roll ...
    assert units[-1].wallclock - units[0].wallclock < 4.0  # ... and not a GOP more
    reader.restart()  # the camera reconnected: what is held does not continue the new stream
    buf.add(reader, _au(20.0, False))
    assert buf.units_list() == []
    buf.add(reader, _au(20.1, True))
    assert len(buf.units_list()) == 1


def test_the_buffer_is_bounded_whatever_the_gop() -> None:
    reader = Reader("c", "preroll", 10)
    buf = _Buffer(60.0)
    for i in range(3 * MAX_UNITS):  # 1,000 fps, a keyframe every 100 units: far more than MAX_UNITS in 60 s
        buf.add(reader, _au(i / 1000, i % 100 == 0))
    assert MAX_UNITS - 100 <= buf.units <= MAX_UNITS and buf.units == len(buf.units_list())


async def until(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def parts(tmp_path: Path, cams: FixtureCameraServer) -> AsyncIterator[tuple[StreamHub, Recorder, PreRoll]]:
    async def resolve(camera_id: str) -> str:
        return cams.url(camera_id)

    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await asyncio.to_thread(db.migrate)
    hub = StreamHub(
        HubSettings(idle_close_s=0.5, read_timeout_s=2.0, reconnect_initial_s=0.2), resolve, upstream_factory=RTSP
    )
    settings = RecordingSettings(segment_s=60, min_free_mb=0, retry_s=0.3, pre_roll_s=PRE_ROLL_S)
    preroll = PreRoll(settings.pre_roll_s, hub)
    hub.on_live.append(preroll.camera_live)
    rec = Recorder(settings, hub, RecordingIndex(db, tmp_path / "recordings", "node-a"), preroll=preroll)
    await rec.start()
    try:
        yield hub, rec, preroll
    finally:
        await rec.close()
        await preroll.close()
        await hub.close()
        await db.close()


def _packet_pts(path: Path) -> list[float]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time", "-of", "csv=p=0",
         str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return [float(x.strip(",")) for x in out.stdout.split()]


@pytest.mark.media
async def test_a_recording_of_a_watched_camera_starts_the_pre_roll_before_it(
    parts: tuple[StreamHub, Recorder, PreRoll],
) -> None:
    hub, rec, preroll = parts
    viewer = await hub.attach("h264_360p", "test", consume=False)  # someone watches live: the camera is pulled

    async def held() -> bool:
        return preroll.held_s("h264_360p") >= PRE_ROLL_S

    await until(held, 60, f"{PRE_ROLL_S:g} s held")
    alarm = time.time()
    rec.record("h264_360p", Demand("incident:INC-1", "incident", alarm + 600, "INC-1"))

    async def recorded() -> bool:
        return rec.status("h264_360p").get("recording") is True

    await until(recorded, 30, "the recording to start")

    async def later() -> bool:  # live pictures after the pre-roll
        return time.time() > alarm + 2.5

    await until(later, 30, "2.5 s after the alarm")
    rec.release("incident:INC-1")
    await until(lambda: _none_recording(rec), 15, "the recording to end")
    await rec.flush_index()
    (row, *_) = await rec.index.segments("h264_360p", 0, 2e9)
    assert alarm - PRE_ROLL_S - 2.5 < row.start <= alarm - PRE_ROLL_S + 0.05, row.start - alarm
    assert row.end > alarm + 0.5, row.end - alarm
    pts = _packet_pts(rec.index.root / row.path)
    assert all(b > a for a, b in itertools.pairwise(pts)), "a picture written twice or out of order"
    steps = sorted(b - a for a, b in itertools.pairwise(pts))
    assert steps[-1] < 0.5, f"a hole of {steps[-1]:.3f} s where the pre-roll meets the live units"

    hub.detach(viewer)  # the viewer leaves: the pre-roll's passive reader does not keep the camera pulled

    async def idle() -> bool:
        return "h264_360p" not in hub.cameras()

    await until(idle, 15, "the camera to be closed")
    assert preroll.held_s("h264_360p") == 0.0


async def _none_recording(rec: Recorder) -> bool:
    return not rec.recording()
