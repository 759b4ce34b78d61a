"""The shared WebRTC egress (issue 20) end to end: aiortc viewers against the real gateway and camera.

Each access unit is packetized once per camera; these tests check what a viewer sees of that: every
frame decodes, lost packets come back on a NACK, a keyframe request is answered from the GOP cache,
sequence numbers and timestamps stay continuous across a camera flap, and a viewer that leaves
leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from fixtures.camera_server import FixtureCameraServer
from gateway.webrtc.fanout import CameraFanout
from gateway.webrtc.rtp_viewer import RtpViewer
from tests.live import LiveGateway, WhepViewer, eventually, gateway_with, start_viewer
from tests.media import QUICK_HUB, cameras_fixture

# One gateway for the module (its start-up is most of a test's time on a loaded machine).
pytestmark = [pytest.mark.media, pytest.mark.asyncio(loop_scope="module")]

cams = cameras_fixture("h264_360p")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(
    tmp_path_factory: pytest.TempPathFactory, cams: FixtureCameraServer
) -> AsyncIterator[tuple[LiveGateway, dict[str, str]]]:
    async with gateway_with(
        tmp_path_factory.mktemp("egress") / "data",
        {"cam": cams.url("h264_360p")},
        hub=QUICK_HUB,
        webrtc={"session_timeout_s": 10.0},
    ) as pair:
        yield pair


@pytest_asyncio.fixture(autouse=True, loop_scope="module")
async def no_viewers_left(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Each test starts with no viewer of the shared gateway (a closed client's session ends by itself)."""
    yield
    if "gw" in request.fixturenames:
        g, _ = request.getfixturevalue("gw")
        assert await eventually(lambda: not g.ld.whep._viewers and len(g.ld.whep.fanouts) == 0, 20)


def server_viewers(g: LiveGateway) -> list[RtpViewer]:
    return list(g.ld.whep._viewers.values())


def fanout(g: LiveGateway) -> CameraFanout:
    (f,) = g.ld.whep.fanouts.get("cam")
    return f


def record_rtp(v: WhepViewer) -> list[tuple[int, int, int]]:
    """(ssrc, sequence number, timestamp) of every media RTP packet the viewer's receiver gets."""
    receiver: RTCRtpReceiver = v.pc.getReceivers()[0]
    seen: list[tuple[int, int, int]] = []
    original = receiver._handle_rtp_packet

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        seen.append((packet.ssrc, packet.sequence_number, packet.timestamp))
        await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]
    return seen


async def test_many_viewers_decode_every_frame_from_one_packetization(gw: tuple[LiveGateway, dict[str, str]]) -> None:
    g, admin = gw
    viewers = [await start_viewer(g, "cam", admin) for _ in range(4)]
    try:
        for v in viewers:
            frames = await v.frames(40, timeout=20)
            pts = [f.pts for f in frames]
            assert pts == sorted(pts) and len(set(pts)) == len(pts)
            assert {(f.width, f.height) for f in frames} == {(640, 360)}
        # One fan-out, one packetization for the four; the hub counts four viewers and one passive reader.
        f = fanout(g)
        assert len(f.viewers) == 4
        assert g.ld.hub.describe("cam")["readers_by_protocol"] == {"webrtc": 4}
        sent = [sv.sent for sv in server_viewers(g)]
        assert all(n >= 40 for n in sent)
        # Each viewer decoded every unit it was sent: no frame is lost on the way.
        more = [await v.frames(25, timeout=10) for v in viewers]
        assert all(len(m) == 25 for m in more)
    finally:
        for v in viewers:
            await v.close()


async def test_nacked_packets_are_retransmitted(gw: tuple[LiveGateway, dict[str, str]]) -> None:
    g, admin = gw
    v = await start_viewer(g, "cam", admin)
    try:
        await v.frames(5, timeout=15)
        (sv,) = server_viewers(g)
        real = sv._datagram_sender
        dropped = 0
        counted = 0

        def lossy() -> Callable[[bytes], None] | None:
            send = real()
            if send is None:
                return None

            def maybe(data: bytes) -> None:
                nonlocal dropped, counted
                counted += 1
                # Lose one packet in 15, once the previous loss was repaired (retransmissions go out
                # on the RTX stream and are never lost), 20 in all.
                if counted % 15 == 7 and dropped < 20 and sv.retransmitted >= dropped:
                    dropped += 1
                    return
                send(data)

            return maybe

        sv._datagram_sender = lossy  # type: ignore[method-assign]
        frames = await v.frames(60, timeout=20)
        assert dropped > 0
        assert await eventually(lambda: sv.retransmitted > 0, 10)
        pts = [f.pts for f in frames]
        assert pts == sorted(pts)
    finally:
        await v.close()


async def test_keyframe_request_is_answered_from_the_gop_cache(gw: tuple[LiveGateway, dict[str, str]]) -> None:
    g, admin = gw
    v = await start_viewer(g, "cam", admin)
    try:
        await v.frames(10, timeout=15)
        (sv,) = server_viewers(g)
        f = fanout(g)
        # Past the joining GOP's once-a-second limit, live, mid-GOP.
        assert await eventually(lambda: f.answers_keyframe_request(sv) and sv in f.live and len(f.gop) > 1, 10)
        receiver: RTCRtpReceiver = v.pc.getReceivers()[0]
        ssrc = sv._ssrc
        before = sv.sent
        await receiver._send_rtcp_pli(ssrc)
        assert await eventually(lambda: sv.keyframe_requests == 1, 10)
        # The cached GOP went out again (paced) before live units: more units than the camera made meanwhile.
        assert await eventually(lambda: sv in f.live, 10)
        assert sv.sent - before >= 2
        frames = await v.frames(10, timeout=10)
        assert len(frames) == 10
        # A request within a second of the last answer is not answered (a PLI storm costs nothing);
        # on a slow machine the second may have passed: then it is answered like the first.
        due = f.answers_keyframe_request(sv)
        await receiver._send_rtcp_pli(ssrc)
        assert await eventually(lambda: sv.keyframe_requests == 2, 10)
        if not due:
            assert sv not in f.catching and sv in f.live
    finally:
        await v.close()


async def test_rtp_stays_continuous_across_a_camera_flap(
    gw: tuple[LiveGateway, dict[str, str]], cams: FixtureCameraServer
) -> None:
    g, admin = gw
    v = await start_viewer(g, "cam", admin)
    seen = record_rtp(v)
    try:
        await v.frames(10, timeout=15)
        await asyncio.to_thread(cams.flap)
        assert await eventually(lambda: g.ld.hub.describe("cam")["reconnects"] >= 1, 15)
        await v.frames(25, timeout=15)  # frames again after the camera came back
        (sv,) = server_viewers(g)
        media = [(seq, ts) for ssrc, seq, ts in seen if ssrc == sv._ssrc]
        assert len(media) > 50
        for (s0, t0), (s1, t1) in itertools.pairwise(media):
            assert (s1 - s0) & 0xFFFF == 1, (s0, s1)
            # Same picture, or the next one; across the flap exactly one frame later (3600 = 40 ms).
            assert 0 <= (t1 - t0) & 0xFFFFFFFF <= 9000, (t0, t1)
    finally:
        await v.close()


async def test_a_viewer_leaving_frees_its_state(gw: tuple[LiveGateway, dict[str, str]]) -> None:
    g, admin = gw
    a = await start_viewer(g, "cam", admin)
    b = await start_viewer(g, "cam", admin)
    await a.frames(5, timeout=15)
    await b.frames(5, timeout=15)
    f = fanout(g)
    r = await g.client.delete(a.location, headers=admin)
    assert r.status_code == 200
    await a.close()
    assert len(f.viewers) == 1 and not f.closed
    await b.frames(10, timeout=10)  # the other viewer goes on
    r = await g.client.delete(b.location, headers=admin)
    assert r.status_code == 200
    await b.close()
    # The last viewer closed the fan-out and its hub reader; no viewer object stays in memory.
    assert f.closed and len(g.ld.whep.fanouts) == 0
    assert f.reader.closed_reason is not None

    def leftovers() -> list[object]:
        gc.unfreeze()  # objects frozen after a policy compile (acl.gc_freeze) are not in gc.get_objects()
        gc.collect()
        return [o for o in gc.get_objects() if isinstance(o, (RtpViewer, CameraFanout))]

    del f  # (this test's own reference)
    assert await eventually(lambda: not leftovers(), 5)


async def test_the_old_path_still_plays(tmp_path: Path, cams: FixtureCameraServer) -> None:
    """``webrtc.egress = "per_viewer"`` (aiortc packetizes per viewer) stays selectable for comparison."""
    async with gateway_with(
        tmp_path / "data", {"cam": cams.url("h264_360p")}, hub=QUICK_HUB, webrtc={"egress": "per_viewer"}
    ) as (g, admin):
        v = await start_viewer(g, "cam", admin)
        try:
            assert len(await v.frames(10, timeout=15)) == 10
            assert len(g.ld.whep.fanouts) == 0 and not g.ld.whep._viewers
        finally:
            await v.close()
