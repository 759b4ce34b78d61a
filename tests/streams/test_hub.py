"""The stream hub against the real fixture cameras: sharing, GOP cache, idle close, flaps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from functools import partial

import pytest

from camera_registry.opener import CheckedOpener
from fixtures.camera_server import FixtureCameraServer
from streams import Reader, RtspUpstream, StreamHub, UpstreamState
from streams.settings import HubSettings
from tests.media import decode_units

pytestmark = pytest.mark.media

# The app's upstream: PyAV pulls, opened through the camera registry's checks (no network limit here).
RTSP = partial(RtspUpstream, opener=CheckedOpener())


@pytest.fixture(scope="module")
def cams() -> Iterator[FixtureCameraServer]:
    with FixtureCameraServer(mounts=("h264", "h264_slices", "h264_oob", "h264_360p")) as srv:
        yield srv


@pytest.fixture
async def hub(cams: FixtureCameraServer) -> AsyncIterator[StreamHub]:
    async def resolve(camera_id: str) -> str:
        return cams.url(camera_id, credentials="user:pw")

    h = StreamHub(
        HubSettings(idle_close_s=1.0, read_timeout_s=2.0, reconnect_initial_s=0.2), resolve, upstream_factory=RTSP
    )
    yield h
    await h.close()


async def take(reader: Reader, n: int, timeout: float = 10.0) -> list:
    out = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            out.append(await reader.get())
    return out


async def wait_for(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_many_readers_one_upstream_session(hub: StreamHub, cams: FixtureCameraServer) -> None:
    readers = [await hub.attach("h264", "test") for _ in range(8)]
    units = await asyncio.gather(*(take(r, 30) for r in readers))
    assert all(u[0].keyframe for u in units)
    assert await asyncio.to_thread(cams.wait_clients, "h264", 1, 5)
    assert hub.describe("h264")["readers"] == 8
    assert hub.describe("h264")["state"] == "live"
    assert 300_000 < hub.describe("h264")["bitrate_bps"] < 8_000_000  # the fixture sends ~2 Mbit/s
    frames = decode_units(units[3])
    assert len(frames) >= 29
    assert (frames[0].width, frames[0].height) == (1280, 720)
    for r in readers:
        hub.detach(r)


async def test_late_joiner_starts_at_cached_keyframe_and_catches_up(hub: StreamHub) -> None:
    first = await hub.attach("h264", "test")
    await take(first, 30)  # now ~1.2 s into the GOP
    t0 = time.monotonic()
    late = await hub.attach("h264", "test")
    got = await take(late, 1)
    assert time.monotonic() - t0 < 0.1  # from the cache, not the next keyframe
    assert got[0].keyframe
    assert late.backlog_units >= 20
    backlog = got + await take(late, late.backlog_units - 1)
    assert len(decode_units(backlog)) == len(backlog)
    hub.detach(first)
    hub.detach(late)


async def test_idle_close_after_last_reader(hub: StreamHub, cams: FixtureCameraServer) -> None:
    r = await hub.attach("h264_360p", "test")
    await take(r, 5)
    assert await asyncio.to_thread(cams.wait_clients, "h264_360p", 1, 5)
    hub.detach(r)
    await asyncio.sleep(0.5)
    assert hub.describe("h264_360p")["state"] == "live"  # still within idle_close_s
    assert await asyncio.to_thread(cams.wait_clients, "h264_360p", 0, 6)
    assert hub.describe("h264_360p")["state"] == "idle"


async def test_prewarm_holds_the_camera(hub: StreamHub, cams: FixtureCameraServer) -> None:
    await hub.prewarm("h264_360p", hold_s=4.0)
    assert await asyncio.to_thread(cams.wait_clients, "h264_360p", 1, 6)
    await wait_for(lambda: hub.latest_keyframe("h264_360p") is not None)
    await asyncio.sleep(1.0)
    assert cams.clients("h264_360p") == 1  # no reader, but held
    assert await asyncio.to_thread(cams.wait_clients, "h264_360p", 0, 8)


async def test_flap_reconnects_and_readers_resume(hub: StreamHub, cams: FixtureCameraServer) -> None:
    r = await hub.attach("h264_360p", "test")
    await take(r, 5)
    before = cams.total_connections("h264_360p")
    await asyncio.to_thread(cams.flap)
    await wait_for(lambda: r.generation >= 1, timeout=8)
    after = await take(r, 10, timeout=10)
    assert after[0].keyframe  # resumes on a decodable picture
    assert cams.total_connections("h264_360p") == before + 1
    assert hub.describe("h264_360p")["reconnects"] >= 1
    hub.detach(r)


async def test_offline_camera_state_and_recovery(hub: StreamHub, cams: FixtureCameraServer) -> None:
    await asyncio.to_thread(cams.set_offline, True)
    try:
        r = await hub.attach("h264_360p", "test")
        await wait_for(lambda: hub.describe("h264_360p")["state"] in ("reconnecting", "failed"), timeout=10)
        assert hub.describe("h264_360p")["reason"]
        assert "pw" not in str(hub.describe("h264_360p"))
    finally:
        await asyncio.to_thread(cams.set_offline, False)
    got = await take(r, 3, timeout=20)
    assert got[0].keyframe
    assert hub.describe("h264_360p")["state"] == UpstreamState.live.value
    hub.detach(r)


async def test_multi_slice_frames_merged(hub: StreamHub) -> None:
    r = await hub.attach("h264_slices", "test")
    units = await take(r, 30)
    assert units[0].keyframe
    assert all(u.slices >= 2 for u in units[1:])
    pts = [u.pts for u in units]
    assert len(set(pts)) == len(pts)  # one unit per picture
    frames = decode_units(units)
    assert len(frames) >= 29
    hub.detach(r)


async def test_out_of_band_parameter_sets_prepended(hub: StreamHub) -> None:
    r = await hub.attach("h264_oob", "test")
    units = await take(r, 3)
    assert units[0].keyframe
    assert units[0].data.startswith(b"\x00\x00\x00\x01\x67")  # SPS first
    assert len(decode_units(units[:1])) == 1
    hub.detach(r)


async def test_slow_reader_drops_whole_gops(cams: FixtureCameraServer) -> None:
    async def resolve(camera_id: str) -> str:
        return cams.url(camera_id)

    hub = StreamHub(HubSettings(reader_queue_packets=20, idle_close_s=0.5), resolve, upstream_factory=RTSP)
    try:
        slow = await hub.attach("h264_360p", "slow")
        fast = await hub.attach("h264_360p", "fast")
        got_fast = await take(fast, 60)
        assert len(got_fast) == 60
        assert slow.dropped_gops >= 1
        assert slow.pending() <= 20
        nxt = await take(slow, 1)
        assert nxt[0].keyframe  # a lagging reader resumes at a keyframe
    finally:
        await hub.close()


async def test_a_stream_that_ran_well_is_retried_at_once_after_a_flap(cams: FixtureCameraServer) -> None:
    async def resolve(camera_id: str) -> str:
        return cams.url(camera_id)

    # A 3 s backoff would show: the retry after a drop of a stream that ran for 5 s skips it.
    hub = StreamHub(
        HubSettings(idle_close_s=1.0, read_timeout_s=2.0, reconnect_initial_s=3.0), resolve, upstream_factory=RTSP
    )
    try:
        r = await hub.attach("h264_360p", "test")
        await take(r, 5)
        await asyncio.sleep(5.5)  # what arrives meanwhile is dropped when the upstream restarts
        await asyncio.to_thread(cams.flap)
        t0 = time.monotonic()
        await wait_for(lambda: r.generation >= 1, timeout=8)
        await take(r, 1, timeout=5)
        assert time.monotonic() - t0 < 2.4  # a 3 s backoff (x0.8 jitter) alone is 2.4 s
    finally:
        await hub.close()


async def test_a_counting_reader_holds_the_camera_and_queues_nothing(hub: StreamHub, cams: FixtureCameraServer) -> None:
    """A viewer fed by a shared consumer (WebRTC's fan-out): counted and keeping the camera open, no queue."""
    counting = await hub.attach("h264_360p", "webrtc", consume=False)
    shared = await hub.attach("h264_360p", "webrtc-fanout", passive=True)
    await take(shared, 30)
    assert counting.counts_only and counting.pending() == 0 and counting.delivered == 0
    assert hub.describe("h264_360p")["readers_by_protocol"] == {"webrtc": 1}
    counting.note_first_unit()
    assert counting.first_unit_at is not None
    hub.detach(counting)
    # The passive reader alone does not hold the camera: it is closed with the upstream.
    await wait_for(lambda: shared.closed_reason is not None, 10)
    assert await asyncio.to_thread(cams.wait_clients, "h264_360p", 0, 8)
