"""The ONVIF driver against the fixture's ONVIF device (real HTTP SOAP on loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from fixtures.onvif_camera import OnvifCamera
from ptz.onvif import OnvifDevice, OnvifPtz, SoapFault
from ptz.onvif.device import main_and_sub


@pytest.fixture(scope="module")
def camera() -> Iterator[OnvifCamera]:
    # The camera's clock runs an hour ahead: digests signed on our clock would be refused.
    with OnvifCamera(
        clock_skew_s=3600, rtsp_url="rtsp://127.0.0.1:8554/h264", sub_rtsp_url="rtsp://127.0.0.1:8554/h264_360p"
    ) as cam:
        yield cam


async def _ptz(cam: OnvifCamera, password: str = "onvif-pass") -> OnvifPtz:
    dev = await OnvifDevice(cam.url, "admin", password, timeout_s=5).connect()
    return OnvifPtz(dev, "main")


async def test_profiles_stream_uris_and_clock_offset(camera: OnvifCamera) -> None:
    dev = await OnvifDevice(camera.url, "admin", "onvif-pass").connect()
    try:
        assert 3590 < dev.soap.clock_offset_s < 3610
        info = await dev.info()
        assert info.model == "LD-PTZ-1"
        main, sub = main_and_sub(await dev.profiles())
        assert (main.token, main.width, main.ptz) == ("main", 1280, True)
        assert sub.token == "sub"
        assert await dev.stream_uri(main.token) == "rtsp://127.0.0.1:8554/h264"
        assert await dev.stream_uri(sub.token) == "rtsp://127.0.0.1:8554/h264_360p"
        assert (await dev.snapshot_uri("main") or "").endswith("/snapshot.jpg")
    finally:
        await dev.close()


async def test_wrong_password_and_unsynced_clock_are_refused(camera: OnvifCamera) -> None:
    dev = OnvifDevice(camera.url, "admin", "wrong")
    try:
        with pytest.raises(SoapFault, match="NotAuthorized"):
            await dev.connect()
    finally:
        await dev.close()
    ptz = await _ptz(camera)
    ptz.device.soap.clock_offset_s = 0.0  # as a client that ignores the camera's clock would sign
    try:
        with pytest.raises(SoapFault, match="NotAuthorized"):
            await ptz.stop()
    finally:
        await ptz.close()


async def test_moves_presets_and_position_read_back(camera: OnvifCamera) -> None:
    ptz = await _ptz(camera)
    try:
        caps = await ptz.capabilities()
        assert caps.continuous and caps.absolute and caps.relative and caps.home and caps.max_presets == 32
        await ptz.absolute(0.5, -0.25, 0.2)
        pos = await ptz.position()
        assert pos is not None and (round(pos.pan, 3), round(pos.tilt, 3), round(pos.zoom, 3)) == (0.5, -0.25, 0.2)
        token = await ptz.set_preset("gate")
        assert [(p.token, p.name) for p in await ptz.presets()] == [(token, "gate")]
        await ptz.relative(-0.5, 0.25, None)
        assert camera.position()[:2] == pytest.approx((0.0, 0.0), abs=1e-3)
        await ptz.goto_preset(token)
        assert camera.position() == pytest.approx((0.5, -0.25, 0.2), abs=1e-3)
        await ptz.home()
        assert camera.position() == pytest.approx((0.0, 0.0, 0.0), abs=1e-3)
        await ptz.continuous(1.0, 0.0, 0.0, timeout_s=30)
        assert camera.moving()
        status = await ptz.position()
        assert status is not None and status.moving
        await asyncio.sleep(0.05)
        await ptz.stop()
        assert not camera.moving()
        assert camera.position()[0] > 0.0  # it moved right while the move ran
        ops = camera.ops()
        assert ops[-2:] == ["ContinuousMove", "Stop"]
        assert camera.commands[-2][2]["timeout_s"] == 30.0
        with pytest.raises(SoapFault, match="NoToken"):
            await ptz.goto_preset("nope")
    finally:
        await ptz.close()
