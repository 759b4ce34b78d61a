"""Camera flaps under WebRTC viewers: every viewer resumes within 3 s of the camera being back,
and once the viewers are gone nothing is left behind: no session, no upstream, no socket, no task.

The gateway runs in this process (``tests.live``), so its sockets and asyncio tasks are counted
directly; the viewers are in this process too, which makes the check stricter, not looser.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fixtures.camera_server import FixtureCameraServer
from tests.live import LiveGateway, WhepViewer, eventually, gateway_with, start_viewer
from tests.media import QUICK_HUB, cameras_fixture

pytestmark = pytest.mark.media
CAMERA = "cam-flap"
FLAPS = 3
VIEWERS = 4
RESUME_S = 3.0
STALL_S = 0.3  # a gap this long between frames is the outage, not jitter (25 fps: 40 ms a frame)


cams = cameras_fixture("h264_360p")


@pytest.fixture
async def gw(tmp_path: Path, cams: FixtureCameraServer) -> AsyncIterator[tuple[LiveGateway, dict[str, str]]]:
    camera = {CAMERA: cams.url("h264_360p", credentials="u:flap-secret")}
    async with gateway_with(tmp_path / "data", camera, hub=QUICK_HUB, webrtc={"session_timeout_s": 10.0}) as pair:
        yield pair


def _sockets() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass  # closed meanwhile
    return n


async def _resumed_after(v: WhepViewer, t0: float, timeout: float = 10.0) -> float:
    """Seconds from ``t0`` to the first frame after the outage (0 if the picture never stopped)."""
    last = t0
    async with asyncio.timeout(timeout):
        while True:
            await v.track.recv()
            now = time.monotonic()
            if now - last >= STALL_S:
                return now - t0
            if now - t0 > 2 * RESUME_S + STALL_S and now - last < STALL_S:
                return 0.0  # frames all along: the outage was hidden from this viewer
            last = now


async def _settled(g: LiveGateway, cams: FixtureCameraServer) -> bool:
    return (
        await eventually(lambda: not g.ld.sessions.list(), 15)
        and await eventually(lambda: g.ld.hub.describe(CAMERA)["readers"] == 0, 10)
        and await eventually(lambda: g.ld.hub.describe(CAMERA)["state"] == "idle", 10)
        and await asyncio.to_thread(cams.wait_clients, "h264_360p", 0, 10)
    )


async def test_flaps_resume_within_3s_and_leak_nothing(
    gw: tuple[LiveGateway, dict[str, str]], cams: FixtureCameraServer
) -> None:
    g, admin = gw
    # Warm up once (codecs, thread pools, the first upstream) so the baseline is the steady state.
    v = await start_viewer(g, CAMERA, admin)
    await v.frames(5, timeout=15)
    await g.client.delete(v.location, headers=admin)
    await v.close()
    assert await _settled(g, cams)
    gc.collect()
    sockets0, tasks0 = _sockets(), len(asyncio.all_tasks())

    viewers = [await start_viewer(g, CAMERA, admin) for _ in range(VIEWERS)]
    try:
        for v in viewers:
            await v.frames(5, timeout=15)
        for _ in range(FLAPS):
            await asyncio.to_thread(cams.flap)
            t0 = time.monotonic()  # the server has dropped its sessions and takes new ones again
            waits = await asyncio.gather(*(_resumed_after(v, t0) for v in viewers))
            assert max(waits) <= RESUME_S, f"viewers resumed after {[round(w, 2) for w in waits]} s"
            for v in viewers:
                await v.frames(10, timeout=5)
        assert g.ld.hub.describe(CAMERA)["reconnects"] >= FLAPS
        assert len(g.ld.sessions.list()) == VIEWERS  # a flap ends no session
    finally:
        # Half the viewers say goodbye (DELETE, as WHEP clients should); half just vanish.
        for i, v in enumerate(viewers):
            if i % 2 == 0:
                await g.client.delete(v.location, headers=admin)
            await v.close()
    assert await _settled(g, cams), (g.ld.sessions.list(), g.ld.hub.describe(CAMERA))
    gc.collect()
    await asyncio.sleep(0.5)  # closed transports release their sockets on the next loop turns
    leaked_tasks = [t for t in asyncio.all_tasks() if not t.done()]
    assert _sockets() <= sockets0, f"sockets: {sockets0} before, {_sockets()} after"
    assert len(leaked_tasks) <= tasks0, [t.get_name() for t in leaked_tasks]


async def test_viewer_resumes_within_3s_after_a_long_outage(
    gw: tuple[LiveGateway, dict[str, str]], cams: FixtureCameraServer
) -> None:
    # Offline for 10 s (every mount answers 404): the hub keeps retrying while its viewer waits,
    # and does not back off so far that the camera's return goes unnoticed for long.
    g, admin = gw
    v = await start_viewer(g, CAMERA, admin)
    try:
        await v.frames(5, timeout=15)
        await asyncio.to_thread(cams.set_offline, True)
        await asyncio.sleep(10)
        await asyncio.to_thread(cams.set_offline, False)
        t0 = time.monotonic()
        waited = await _resumed_after(v, t0, timeout=15)
        assert waited <= RESUME_S, f"resumed {waited:.2f} s after the camera came back"
    finally:
        await asyncio.to_thread(cams.set_offline, False)
        await g.client.delete(v.location, headers=admin)
        await v.close()
