"""The background refresher keeps watched cameras fresh, most-watched first, and forgets stale interest."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

from gateway.settings import SnapshotSettings
from snapshot.cold import ColdFrame
from snapshot.service import SnapshotService
from storage.db import Database


async def test_refresh_once_pulls_watched_cameras(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    await asyncio.to_thread(db.migrate)

    class NoHub:
        def latest_keyframe(self, _c: str) -> Any:
            return None

        def info(self, _c: str) -> Any:
            return None

    async def resolve(camera_id: str) -> str:
        return f"rtsp://127.0.0.1:9/{camera_id}"

    svc = SnapshotService(SnapshotSettings(interest_ttl_s=5, cache_ttl_s=0), NoHub(), resolve, db)
    pulled: list[str] = []
    clock = itertools.count(1)

    async def fake_pull(camera_id: str) -> ColdFrame:
        # The RTSP side is covered against the real fixture in test_snapshots.py; here, the scheduling.
        import numpy as np

        pulled.append(camera_id)
        return ColdFrame(np.zeros((90, 160, 3), dtype=np.uint8), float(next(clock)))

    svc.cold.pull = fake_pull  # type: ignore[method-assign]
    svc.interest(["a", "b"])
    svc.interest(["b"])
    svc.interest(["c", "b"])
    assert svc.watched() == ["b", "a", "c"]  # most-watched first
    assert await svc.refresh_once() == 3
    assert sorted(pulled) == ["a", "b", "c"]
    svc._interest["a"] = (0.0, 1)  # its interest expired
    assert "a" not in svc.watched()
    await svc.close()
    await db.close()
