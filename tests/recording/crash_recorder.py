"""A recorder in its own process, for the kill -9 test: ``python -m tests.recording.crash_recorder URL DIR DB``."""

from __future__ import annotations

import asyncio
import sys
import time
from functools import partial
from pathlib import Path

from camera_registry.opener import CheckedOpener
from recording.index import RecordingIndex
from recording.recorder import Demand, Recorder
from recording.settings import RecordingSettings
from storage.db import Database
from streams import RtspUpstream, StreamHub
from streams.settings import HubSettings


async def main(url: str, root: Path, db_path: Path) -> None:
    async def resolve(_camera_id: str) -> str:
        return url

    db = Database(f"sqlite:///{db_path}")
    await asyncio.to_thread(db.migrate)
    hub = StreamHub(HubSettings(), resolve, upstream_factory=partial(RtspUpstream, opener=CheckedOpener()))
    rec = Recorder(RecordingSettings(segment_s=2, min_free_mb=0), hub, RecordingIndex(db, root, "crash"))
    await rec.start()
    rec.record("cam", Demand("manual:test", "manual", time.time() + 3600))
    print("recording", flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])))
