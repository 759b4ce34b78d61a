"""GB/T 28181 end to end: the gateway's SIP endpoint against the device emulator (a real SIP UA
process, fixtures/gb28181_device.py) streaming real H.264 (made by ffmpeg) as PS over RTP.

Registration (digest, a wrong password, an unknown device waiting for acceptance), the catalog as
cameras, live video over UDP and TCP read from the hub and decoded by PyAV, BYE after the last
reader, offline after missed keepalives and online again, a device restart mid-stream."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import av
import pytest
import pytest_asyncio
from prometheus_client import generate_latest

from camera_registry.models import CameraStatus
from fixtures.camera_server import free_port
from gateway.settings import Settings
from gateway.wiring import build_services

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg"),
]
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "emu-secret"
DEV_UDP = "34020000001320000001"  # one channel carrying the device's own id
DEV_TCP = "34020000001110000002"  # an NVR with 3 channels
DEV_BAD = "34020000001320000003"
_PROCS: list[Any] = []


async def until(cond: Callable[[], Any], what: str, deadline_s: float = 20.0) -> Any:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        v = cond()
        if asyncio.iscoroutine(v):
            v = await v
        if v:
            return v
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; devices said: {[p.lines for p in _PROCS]}")


class DeviceProc:
    """One emulator process; its stdout lines are collected."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "fixtures" / "gb28181_device.py"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.lines: list[str] = []
        self._partial = b""
        loop = asyncio.get_running_loop()
        assert self.proc.stdout is not None
        loop.add_reader(self.proc.stdout.fileno(), self._read)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        chunk = os.read(self.proc.stdout.fileno(), 65536)  # not readline: its buffer would hide lines
        if not chunk:
            asyncio.get_running_loop().remove_reader(self.proc.stdout.fileno())
            return
        self._partial += chunk
        *done, self._partial = self._partial.split(b"\n")
        self.lines += [line.decode().strip() for line in done]

    def saw(self, line: str) -> bool:
        return line in self.lines

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        assert self.proc.stdout is not None
        asyncio.get_running_loop().remove_reader(self.proc.stdout.fileno())


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gb") / "clip.h264"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "4",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-bf", "0", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    sip_port = free_port()
    media = free_port()
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("gbdata"),
        hub={"idle_close_s": 0.5},
        gb28181={
            "enabled": True,
            "sip_port": sip_port,
            "password": PASSWORD,
            "media_ports": (media, media + 20),
            "media_transport": "auto",
            "keepalive_timeout_s": 2.5,
            "rtp_timeout_s": 3.0,
        },
    )
    ld = build_services(settings)
    await asyncio.to_thread(ld.db.migrate)
    stops = []
    for start in ld.startups:
        stop = await start()
        if stop is not None:
            stops.append(stop)
    ld.sip_addr = f"127.0.0.1:{sip_port}"
    procs: list[DeviceProc] = []
    ld.procs = procs
    try:
        yield ld
    finally:
        for p in procs:
            p.kill()
        for stop in reversed(stops):
            await stop()
        await ld.db.close()


def device(gw: Any, clip: Path, device_id: str, *extra: str, password: str = PASSWORD) -> DeviceProc:
    args = ["--server", gw.sip_addr, "--device-id", device_id, "--password", password, "--video", str(clip)]
    p = DeviceProc([*args, "--keepalive-s", "0.5", "--retry-s", "0.3", *extra])
    gw.procs.append(p)
    _PROCS.append(p)
    return p


async def read_units(gw: Any, camera_id: str, n: int) -> list[Any]:
    feed = await gw.media.attach(camera_id, "test", timeout_s=15)
    try:
        return [await asyncio.wait_for(feed.reader.get(), 15) for _ in range(n)]
    finally:
        feed.detach("test done")


def decoded(units: list[Any]) -> int:
    ctx = av.CodecContext.create("h264", "r")
    frames = 0
    for u in units:
        for pkt in ctx.parse(u.data):
            frames += len(ctx.decode(pkt))
    return frames


async def test_unknown_device_waits_then_is_accepted_and_plays_over_udp(gw: Any, clip: Path) -> None:
    dev = device(gw, clip, DEV_UDP)
    await until(lambda: dev.saw("register 403"), "the unknown device refused")
    assert any(d["device_id"] == DEV_UDP and d["state"] == "waiting" for d in gw.gb28181.devices())
    gw.gb28181.accept(DEV_UDP, "qibao", "police")
    await until(lambda: dev.saw("registered"), "the accepted device registered")

    async def camera() -> Any:
        try:
            return await gw.store.get(DEV_UDP)
        except LookupError:
            return None

    cam = await until(camera, "the catalog's channel as a camera")
    assert cam.source_url == f"gb28181://{DEV_UDP}/{DEV_UDP}"
    assert (cam.area, cam.department) == ("qibao", "police")
    assert "gb28181" in cam.tags and f"gb-device:{DEV_UDP}" in cam.tags
    units = await read_units(gw, DEV_UDP, 30)
    assert units[0].keyframe
    assert decoded(units) >= 25
    assert all(b.pts > a.pts for a, b in itertools.pairwise(units))
    assert dev.saw("invite udp")
    await until(lambda: dev.saw("bye"), "BYE after the last reader left")


async def test_nvr_over_tcp_with_field_quirks_and_a_catalog_of_three(gw: Any, clip: Path) -> None:
    gw.gb28181.accept(DEV_TCP, "xinzhuang", "transport")
    dev = device(gw, clip, DEV_TCP, "--transport", "tcp", "--channels", "3", "--field-quirks")
    await until(lambda: dev.saw("registered"), "the TCP device registered")
    ids = [f"{DEV_TCP[:10]}131{i:07d}" for i in (1, 2, 3)]

    async def cameras() -> bool:
        return {c for c in await gw.store.all_ids() if c in ids} == set(ids)

    await until(cameras, "three channel cameras")
    units = await read_units(gw, ids[1], 30)
    assert units[0].keyframe and decoded(units) >= 25
    assert dev.saw("invite tcp")
    # A cold thumbnail of a channel nobody watches: one short hub reader (FFmpeg cannot open it).
    thumb = await gw.snapshots.get(ids[2], 320)
    assert thumb.source == "cold" and thumb.thumb.jpeg[:2] == b"\xff\xd8"
    # A later catalog updates, never duplicates.
    await gw.gb28181.server.query_catalog(DEV_TCP)
    await asyncio.sleep(0.5)
    mine = [c for c in (await gw.store.search())[0] if c.source_url.startswith(f"gb28181://{DEV_TCP}/")]
    assert sorted(c.id for c in mine) == ids


async def test_wrong_password_is_refused(gw: Any, clip: Path) -> None:
    gw.gb28181.accept(DEV_BAD, "", "")
    dev = device(gw, clip, DEV_BAD, password="wrong")
    await until(lambda: dev.saw("register 403"), "the wrong digest refused")
    assert gw.gb28181.server.counters.auth_failed >= 1
    scrape = generate_latest(gw.metrics.registry).decode()
    assert 'liandong_gb28181_sip_refused_total{reason="auth_failed"}' in scrape
    assert 'liandong_gb28181_devices{state="online"}' in scrape
    assert DEV_BAD not in gw.gb28181.server.devices


async def test_offline_after_missed_keepalives_then_back_and_viewers_recover(gw: Any, clip: Path) -> None:
    dev = next(p for p in gw.procs if p.proc.args[5] == DEV_UDP and p.proc.poll() is None)
    feed = await gw.media.attach(DEV_UDP, "test", timeout_s=15)
    try:
        await asyncio.wait_for(feed.reader.get(), 15)
        dev.kill()  # the device dies mid-stream
        status = await gw.store.get(DEV_UDP)

        async def offline() -> bool:
            return (await gw.store.get(DEV_UDP)).status is CameraStatus.offline

        await until(offline, "offline after missed keepalives", 15)
        del status
        again = device(gw, clip, DEV_UDP)  # restarted: registers, and the hub INVITEs it again
        await until(lambda: again.saw("registered"), "re-registered")

        async def online() -> bool:
            return (await gw.store.get(DEV_UDP)).status is CameraStatus.online

        await until(online, "online again", 15)
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 10 and time.monotonic() < deadline:
            u = await asyncio.wait_for(feed.reader.get(), 20)
            if got or u.keyframe:
                got.append(u)
        assert len(got) == 10 and decoded(got) >= 8
    finally:
        feed.detach("test done")
