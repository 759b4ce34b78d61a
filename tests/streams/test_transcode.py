"""Shared transcodes against the real fixture camera and a real ffmpeg."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fixtures.camera_server import FixtureCameraServer
from streams.transcode.command import Decoder, Encoder, TranscodeSpec, build_command
from streams.transcode.plan import Variant, needs_transcode
from tests.live import LiveGateway, gateway_with, start_viewer, whep_offer
from tests.media import QUICK_HUB, cameras_fixture

pytestmark = pytest.mark.media


def test_plan_transcodes_only_what_browsers_cannot_play() -> None:
    assert needs_transcode("h264", Variant.auto) is False
    assert needs_transcode("hevc", Variant.auto) is True
    assert needs_transcode(None, Variant.auto) is None
    assert needs_transcode("h264", Variant.low) is True


def test_commands_put_global_options_first_and_never_use_a_shell() -> None:
    cmd = build_command(TranscodeSpec("hevc", 25.0, height=360, bitrate_kbps=400), "ffmpeg")
    assert cmd[:4] == ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel"]
    assert cmd[cmd.index("-i") + 1] == "pipe:0" and cmd[-1] == "pipe:1"
    assert "scale=-2:360" in " ".join(cmd) and "400k" in cmd and "libx264" in cmd
    nv = build_command(TranscodeSpec("hevc", 25.0, encoder=Encoder.nvenc))
    assert "h264_nvenc" in nv and "libx264" not in nv
    cu = build_command(TranscodeSpec("hevc", 25.0, decoder=Decoder.cuda))
    assert cu[cu.index("-hwaccel") + 1] == "cuda" and cu.index("-hwaccel") < cu.index("-i")
    va = build_command(TranscodeSpec("h264", 30.0, encoder=Encoder.vaapi))
    assert va.index("-vaapi_device") < va.index("-i") and "hwupload" in " ".join(va)
    with pytest.raises(ValueError, match="input_codec"):
        build_command(TranscodeSpec("mjpeg", 25.0))


cams = cameras_fixture("h264_360p", "h265")


async def _gateway(tmp_path: Path, cams: FixtureCameraServer, **transcoder: object) -> AsyncIterator[LiveGateway]:
    cameras = {"cam-265": cams.url("h265", "viewer:tc-secret"), "cam-264": cams.url("h264_360p")}
    # One user (the admin) asks for every transcode here: the global cap is what these tests measure,
    # not the per-user one (sessions.max_transcodes_per_user, tests/gateway/test_sessions.py).
    per_user = {"max_transcodes_per_user": 8}
    async with gateway_with(tmp_path / "data", cameras, hub=QUICK_HUB, transcoder=transcoder, sessions=per_user) as (
        g,
        admin,
    ):
        g.client.headers.update(admin)
        yield g


@pytest.fixture
async def gw(tmp_path: Path, cams: FixtureCameraServer) -> AsyncIterator[LiveGateway]:
    async for g in _gateway(tmp_path, cams, max_concurrent=1):
        yield g


async def test_h265_plays_over_webrtc_and_viewers_share_one_transcode(
    gw: LiveGateway, cams: FixtureCameraServer
) -> None:
    viewers = [await start_viewer(gw, "cam-265", {}) for _ in range(3)]
    try:
        for v in viewers:
            frames = await v.frames(10, timeout=20)
            assert (frames[0].width, frames[0].height) == (1280, 720)
        assert len(gw.ld.media.running()) == 1
        assert cams.clients("h265") == 1
        assert gw.ld.hub.describe("cam-265")["readers_by_protocol"] == {"transcode": 1}
        sessions = (await gw.client.get("/api/sessions")).json()
        assert len(sessions) == 3
    finally:
        for v in viewers:
            await v.close()


async def test_cap_answers_503_with_the_reason(gw: LiveGateway) -> None:
    v = await start_viewer(gw, "cam-265", {})
    try:
        await v.frames(2, timeout=20)
        _, sdp = await whep_offer()
        r = await gw.client.post(
            "/api/cameras/cam-264/whep?variant=low", content=sdp, headers={"Content-Type": "application/sdp"}
        )
        assert r.status_code == 503 and "transcoder.max_concurrent" in r.text
        r = await gw.client.get("/api/cameras/cam-264/hls/index.m3u8?variant=low")
        assert r.status_code == 503 and "transcoder.max_concurrent" in r.text
        # The camera's own H.264 stream needs no slot.
        assert (await gw.client.get("/api/cameras/cam-264/hls/index.m3u8")).status_code == 200
    finally:
        await v.close()


async def test_a_killed_transcoder_restarts_and_viewers_resume(gw: LiveGateway) -> None:
    v = await start_viewer(gw, "cam-265", {})
    try:
        await v.frames(5, timeout=20)
        (pid,) = gw.ld.media.running().values()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        deadline = killed + 10
        while time.monotonic() < deadline:
            new = list(gw.ld.media.running().values())
            if new and new[0] not in (None, pid):
                break
            await asyncio.sleep(0.1)
        assert new and new[0] not in (None, pid)
        frames = await v.frames(10, timeout=15)  # the same viewer goes on
        assert frames[-1].width == 1280
        assert time.monotonic() - killed < 15
        assert gw.ld.media.pool.restarts >= 1
    finally:
        await v.close()


async def test_low_variant_is_smaller(tmp_path: Path, cams: FixtureCameraServer) -> None:
    async for g in _gateway(tmp_path, cams, max_concurrent=2, low_height=180, low_bitrate_kbps=200):
        viewer = await _viewer(g, "cam-264", "?variant=low")
        try:
            frames = await viewer.frames(5, timeout=20)
            assert (frames[0].width, frames[0].height) == (320, 180)
        finally:
            await viewer.close()


async def _viewer(g: LiveGateway, cam: str, query: str):  # type: ignore[no-untyped-def]
    from aiortc import RTCSessionDescription

    from tests.live import WhepViewer

    pc, sdp = await whep_offer()
    got: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    @pc.on("track")
    def _on_track(track: object) -> None:
        if not got.done():
            got.set_result(track)

    r = await g.client.post(f"/api/cameras/{cam}/whep{query}", content=sdp, headers={"Content-Type": "application/sdp"})
    assert r.status_code == 201, r.text
    await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
    return WhepViewer(pc, await asyncio.wait_for(got, 10), r.headers["location"])  # type: ignore[arg-type]


async def test_a_hardware_encoder_that_fails_falls_back_to_software(tmp_path: Path, cams: FixtureCameraServer) -> None:
    # No GPU here: NVDEC and NVENC cannot open; each stage falls back to software on its own.
    async for g in _gateway(tmp_path, cams, encoder="nvenc", decoder="cuda"):
        v = await start_viewer(g, "cam-265", {})
        try:
            frames = await v.frames(5, timeout=30)
            assert frames[0].width == 1280
            pool = g.ld.media.pool
            assert (pool.decoder_failed, pool.encoder_failed) == (True, True)
            assert pool.restarts >= 2
        finally:
            await v.close()


async def test_transcoding_disabled_says_so(tmp_path: Path, cams: FixtureCameraServer) -> None:
    async for g in _gateway(tmp_path, cams, enabled=False):
        _, sdp = await whep_offer()
        r = await g.client.post("/api/cameras/cam-265/whep", content=sdp, headers={"Content-Type": "application/sdp"})
        assert r.status_code == 415 and "hevc" in r.text and "transcoding is disabled" in r.text
        assert "tc-secret" not in r.text
