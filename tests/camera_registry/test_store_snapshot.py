"""The store's in-memory inventory: own writes show at once, other processes' writes within the
TTL, and no request waits for a periodic re-read."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from camera_registry.schemas import CameraIn
from camera_registry.store import CameraFilter, CameraStore
from storage.db import Database
from storage.secretbox import SecretBox


def cam(cid: str) -> CameraIn:
    return CameraIn(id=cid, name=cid, source_url="rtsp://127.0.0.1:9/x")


async def ids(store: CameraStore) -> list[str]:
    rows, _ = await store.search(CameraFilter(), limit=1000)
    return [c.id for c in rows]


async def test_snapshot_refreshes_in_the_background(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'inv.db'}"
    box = SecretBox.from_data_dir(tmp_path)
    gateway_db, cli_db = Database(url), Database(url)
    await asyncio.to_thread(gateway_db.migrate)
    gateway, cli = CameraStore(gateway_db, box), CameraStore(cli_db, box)  # two processes
    gateway.SNAPSHOT_TTL_S = 0.2
    try:
        await gateway.create(cam("a"))
        assert await ids(gateway) == ["a"]  # our own write: at once
        await cli.create(cam("b"))
        assert await ids(gateway) == ["a"]  # another process's write: not yet
        await asyncio.sleep(0.25)
        t0 = time.perf_counter()
        assert await ids(gateway) == ["a"]  # the stale copy answers; the re-read runs behind it
        assert time.perf_counter() - t0 < 0.05
        deadline = time.monotonic() + 2
        while await ids(gateway) != ["a", "b"] and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert await ids(gateway) == ["a", "b"]
        # A background re-read that started before our own write must not overwrite it.
        await asyncio.sleep(0.25)
        await ids(gateway)  # starts a refresh
        await gateway.create(cam("c"))
        assert await ids(gateway) == ["a", "b", "c"]
        await asyncio.sleep(0.1)
        assert await ids(gateway) == ["a", "b", "c"]
    finally:
        await gateway_db.close()
        await cli_db.close()


async def test_status_reports_patch_the_snapshot(tmp_path: Path) -> None:
    from camera_registry.models import CameraStatus

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'inv.db'}")
    await asyncio.to_thread(db.migrate)
    store = CameraStore(db, SecretBox.from_data_dir(tmp_path))
    try:
        for cid in ("a", "b", "c"):
            await store.create(cam(cid))
        await ids(store)
        snap = store._snap
        await store.set_status("b", CameraStatus.offline, reason="connection refused")
        await store.set_status("zz", CameraStatus.offline)  # unknown: ignored
        rows, _ = await store.search(CameraFilter(status=CameraStatus.offline))
        assert [(c.id, c.status_reason) for c in rows] == [("b", "connection refused")]
        assert store._snap is snap  # no re-read of every camera
        async with db.session() as s:
            from camera_registry.models import Camera

            assert (await s.get(Camera, "b")).status is CameraStatus.offline  # type: ignore[union-attr]
    finally:
        await db.close()
