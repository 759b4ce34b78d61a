"""The cold puller's single flight at its edge: the frame is handed on before the pull ends."""

from __future__ import annotations

import asyncio

import numpy as np

from snapshot.cold import ColdFrame, ColdPuller


async def test_the_frame_is_kept_before_the_shared_pull_counts_as_finished() -> None:
    """CI saw two upstream sessions for 100 concurrent requests: a request arriving just after the
    shared pull ended found neither the pull in flight nor its frame kept (the first waiter kept it
    a few loop turns later) and pulled again. ``on_pulled`` runs inside the pull, so by the time the
    pull is no longer in flight the frame is kept."""
    kept: list[str] = []
    when_done: list[list[str]] = []

    async def resolve(camera_id: str) -> str:
        return f"gb28181://dev/{camera_id}"  # not RTSP: pulled through the hub callable below

    async def through_hub(camera_id: str) -> ColdFrame:
        await asyncio.sleep(0.01)
        return ColdFrame(np.zeros((4, 4, 3), np.uint8), 1.0)

    puller = ColdPuller(
        resolve, 1, 5.0, through_hub=through_hub, on_pulled=lambda camera_id, _frame: kept.append(camera_id)
    )
    try:
        waiter = asyncio.ensure_future(puller.pull("cam"))
        await asyncio.sleep(0)
        (shared,) = puller._inflight.values()  # the one pull every caller shares
        shared.add_done_callback(lambda _f: when_done.append(list(kept)))
        frame = await waiter
        assert frame.taken_at == 1.0 and puller.pulls == 1
        assert when_done == [["cam"]]  # kept before the pull ended, not after a waiter resumed
    finally:
        await puller.close()
