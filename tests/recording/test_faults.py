"""Recording faults with the real fixture camera: a camera flap leaves a gap and whole files; a full
disk pauses recording (an event says so) and it resumes by itself; kill -9 mid-segment loses at most
the unflushed fragment, and the next start indexes what was written (a torn fragment cut off)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from camera_registry.opener import CheckedOpener
from fixtures.camera_server import FixtureCameraServer
from recording.fmp4 import complete_length, init_length
from recording.index import RecordingIndex
from recording.recorder import Demand, Recorder
from recording.settings import RecordingSettings
from recording.verify import verify_chain
from storage.db import Database
from streams import RtspUpstream, StreamHub
from streams.settings import HubSettings
from tests.media import cameras_fixture

pytestmark = pytest.mark.media
RTSP = partial(RtspUpstream, opener=CheckedOpener())
cams = cameras_fixture("h264_360p")
REPO = Path(__file__).resolve().parents[2]


async def until(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def assert_whole(index: RecordingIndex, rows: list[Any]) -> None:
    """Every indexed file is whole fMP4 that ffprobe decodes, of the indexed size."""
    for r in rows:
        path = index.root / r.path
        assert path.stat().st_size == r.bytes == complete_length(path), r.path
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0",
             str(path)], capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0 and not out.stderr.strip(), out.stderr
        assert int(out.stdout.strip().strip(",")) >= 1


@contextlib.asynccontextmanager
async def recorder(
    root: Path, db_path: Path, cams: FixtureCameraServer, events: list[tuple[str, dict[str, Any]]] | None = None
) -> AsyncIterator[tuple[Recorder, RecordingIndex]]:
    async def resolve(_camera_id: str) -> str:
        return cams.url("h264_360p")

    db = Database(f"sqlite:///{db_path}")
    await asyncio.to_thread(db.migrate)
    hub = StreamHub(
        HubSettings(idle_close_s=0.5, read_timeout_s=2.0, reconnect_initial_s=0.2), resolve, upstream_factory=RTSP
    )
    index = RecordingIndex(db, root, "node-a")

    def publish(type_: str, data: dict[str, Any], _cameras: list[str]) -> None:
        if events is not None:
            events.append((type_, data))

    rec = Recorder(RecordingSettings(segment_s=2, min_free_mb=0, retry_s=0.3), hub, index, publish)
    await rec.start()
    try:
        yield rec, index
    finally:
        await rec.close()
        await hub.close()
        await db.close()


async def test_a_camera_flap_is_a_gap_and_recording_goes_on(tmp_path: Path, cams: FixtureCameraServer) -> None:
    async with recorder(tmp_path / "rec", tmp_path / "db.sqlite", cams) as (rec, index):
        rec.record("cam", Demand("manual:t", "manual", time.time() + 600))

        async def count() -> int:
            return len(await index.segments("cam", 0, 2e9))

        async def segments_at_least(n: int) -> bool:
            return await count() >= n

        await until(partial(segments_at_least, 1), 60, "a segment before the flap")
        flapped_at = time.time()
        await asyncio.to_thread(cams.flap)
        before = await count()
        await until(partial(segments_at_least, before + 1), 60, "a segment after the flap")
        rec.release("manual:t")
        await until(lambda: _idle(rec), 15, "the recording to end")
        await rec.flush_index()
        rows = await index.segments("cam", 0, 2e9)
        assert_whole(index, rows)
        spans, gaps = index.ranges(rows, rows[0].start, rows[-1].end)
        assert len(gaps) == 1 and flapped_at - 1 <= gaps[0].start <= flapped_at + 3 and len(spans) == 2, (
            spans,
            gaps,
            flapped_at,
        )
        assert verify_chain(await index.chain("cam", 0), index.root) == []


async def _idle(rec: Recorder) -> bool:
    return not rec.recording()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs, unmounted afterwards whatever happens."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


async def test_disk_full_pauses_recording_and_it_resumes_by_itself(
    tmp_path: Path, small_disk: Path, cams: FixtureCameraServer
) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (2 * 1024 * 1024 + 700 * 1024))  # ~0.3 MiB left: seconds of video
    async with recorder(small_disk / "rec", tmp_path / "db.sqlite", cams, events) as (rec, index):
        rec.record("cam", Demand("manual:t", "manual", time.time() + 600))

        async def paused() -> bool:
            return any(t == "recording.paused" for t, _ in events)

        await until(paused, 60, "recording to pause on a full disk")
        assert rec.status("cam")["paused"]
        before = len(await index.segments("cam", 0, 2e9))
        filler.unlink()  # space returns

        async def resumed() -> bool:
            return (
                any(t == "recording.resumed" for t, _ in events)
                and len(await index.segments("cam", 0, 2e9)) >= before + 1
            )

        await until(resumed, 60, "recording to resume")
        rec.release("manual:t")
        await until(lambda: _idle(rec), 15, "the recording to end")
        await rec.flush_index()
        rows = await index.segments("cam", 0, 2e9)
        assert_whole(index, rows)  # the segment the full disk cut is whole up to its last fragment
        on_disk = {str(p.relative_to(index.root)) for p in index.root.glob("*/*/*.mp4")}
        assert on_disk == {r.path for r in rows}  # the index matches the files
        assert verify_chain(await index.chain("cam", 0), index.root) == []


async def test_kill_9_mid_segment_loses_at_most_a_fragment(tmp_path: Path, cams: FixtureCameraServer) -> None:
    root, db_path = tmp_path / "rec", tmp_path / "db.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.recording.crash_recorder", cams.url("h264_360p"), str(root), str(db_path)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        db = Database(f"sqlite:///{db_path}")
        index = RecordingIndex(db, root, "node-a")

        async def written() -> bool:
            # A segment closed, and the newest one has a whole fragment past its init segment.
            files = sorted(root.glob("*/*/*.mp4"), key=lambda p: p.name)
            return db_path.exists() and len(files) >= 2 and complete_length(files[-1]) > init_length(files[-1]) > 0

        await until(written, 60, "segments on disk")
        killed_at = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        indexed = len(await index.segments("cam", 0, 2e9))
        files = sorted(root.glob("*/*/*.mp4"))
        assert len(files) > indexed  # the segment being written was not indexed
        recovered = await index.reconcile()
        rows = await index.segments("cam", 0, 2e9)
        assert recovered >= 1 and len(rows) == indexed + recovered
        assert_whole(index, rows)
        # At most the unflushed fragment (1 s) and the frame in flight were lost.
        assert rows[-1].end >= killed_at - 2.0, (rows[-1].end, killed_at)
        assert verify_chain(await index.chain("cam", 0), index.root) == []
        await db.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
