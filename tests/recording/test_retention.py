"""Retention, quota and evidence locks over an index of small files (no camera needed), and the
continuous-recording rules' demands."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from recording.index import RecordingIndex, segment_path
from recording.locks import LockError, Locks
from recording.recorder import Demand
from recording.retention import DAY, Retention
from recording.settings import RecordingSettings, RecordRule
from recording.verify import verify_chain
from recording.writer import SegmentFile
from storage.db import Database


class Demands:
    """Stands in for the recorder: what the rules asked to record."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Demand]] = []

    def record(self, camera_id: str, demand: Demand) -> None:
        self.asked.append((camera_id, demand))


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[RecordingIndex]:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await asyncio.to_thread(db.migrate)
    yield RecordingIndex(db, tmp_path / "rec", "node-a")
    await db.close()


async def add(index: RecordingIndex, cam: str, start: float, reason: str, size: int = 1000) -> Any:
    path = index.root / segment_path(cam, start)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes([int(start) % 256]) * size)
    return await index.add(cam, SegmentFile(path, start, start + 10, size, "h264", 640, 360), [reason], [])


async def test_retention_per_rule_locks_and_quota(index: RecordingIndex) -> None:
    day0 = 1_790_000_000.0
    rows = [await add(index, "c1", day0 + i * 10, "rule:short" if i < 3 else "incident") for i in range(6)]
    settings = RecordingSettings(
        rules=[RecordRule(name="short", cameras=["c1"], retention_days=1)], retention_days=5, low_space_mb=0
    )
    locks = Locks(index.db)
    retention = Retention(settings, index, Demands(), locks, lambda g: [])  # type: ignore[arg-type]
    with pytest.raises(LockError, match="reason"):
        await locks.add("c1", day0, day0 + 15, " ", "sec")
    lock = await locks.add("c1", day0, day0 + 15, "case 2026-17", "sec")  # holds rows 0 and 1

    # Two days on: the rule's 1-day segments go, except the locked ones; incident ones (5 days) stay.
    assert await retention.sweep(day0 + 2 * DAY) == 1
    left = {r.id for r in await index.segments("c1", 0, 2e9)}
    assert left == {r.id for r in rows} - {rows[2].id}
    assert not (index.root / rows[2].path).exists()
    chain = await index.chain("c1", 0)
    assert verify_chain(chain, index.root) == []  # the deleted row stays, marked: the chain still verifies

    # Lifted, the lock no longer protects them.
    assert await locks.lift(lock.id, "case closed", "sec") is not None
    assert await locks.lift(lock.id, "again", "sec") is None
    assert await retention.sweep(day0 + 2 * DAY) == 2

    # A quota deletes the oldest unlocked first.
    quota = RecordingSettings(retention_days=5, quota_gb=1500 / 1e9, low_space_mb=0)
    await locks.add("c1", day0 + 50, day0 + 55, "keep the newest", "sec")
    assert await Retention(quota, index, Demands(), locks, lambda g: []).sweep(day0 + DAY) == 2  # type: ignore[arg-type]
    assert [r.id for r in await index.segments("c1", 0, 2e9)] == [rows[5].id]


def test_rules_ask_to_record_their_groups_and_cameras() -> None:
    settings = RecordingSettings(
        rules=[RecordRule(name="gates", groups=["g1"], cameras=["c9"], retention_days=7)], retention_check_s=60
    )
    demands = Demands()
    retention = Retention(settings, None, demands, None, lambda g: {"g1": ["c1", "c2"]}[g])  # type: ignore[arg-type]
    t0 = time.time()
    assert retention.apply_rules() == {"gates": {"c1", "c2", "c9"}}
    assert sorted(c for c, _ in demands.asked) == ["c1", "c2", "c9"]
    d = demands.asked[0][1]
    assert d.reason == "rule:gates" and t0 + 120 < d.until < t0 + 240
