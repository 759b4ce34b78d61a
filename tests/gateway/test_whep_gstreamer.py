"""WHEP with a player on an independent WebRTC stack: GStreamer's webrtcbin (libnice, OpenSSL with an
RSA certificate), in a network namespace the test makes (libnice never uses loopback).

Each test runs the fixture camera, a real gateway listening on 198.18.0.1 with no
``webrtc.host_addresses`` (so it offers its interface addresses) and ``fixtures/whep_player.py``
under Debian's Python, all inside the namespace: nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.camera_server import SYSTEM_PYTHON, FixtureCameraServer
from fixtures.netns import GATEWAY_ADDRESS, PLAYER_ADDRESS, NetNamespace, netns_unavailable
from tests.live import LiveGateway, eventually, gateway_with
from tests.media import QUICK_HUB

PLAYER = Path(__file__).resolve().parents[2] / "fixtures" / "whep_player.py"
_why_not = netns_unavailable()
pytestmark = [pytest.mark.media, pytest.mark.skipif(_why_not is not None, reason=_why_not or "")]
FRAMES = 30


@pytest.fixture(scope="module")
def ns() -> Iterator[NetNamespace]:
    with NetNamespace() as n:
        yield n


@pytest.fixture(scope="module")
def cams(ns: NetNamespace) -> Iterator[FixtureCameraServer]:
    srv: FixtureCameraServer = ns.call(lambda: FixtureCameraServer(mounts=("h264_360p",)).start())
    try:
        yield srv
    finally:
        ns.call(srv.stop)


async def play(g: LiveGateway, token: str, *flags: str, timeout: float = 25.0) -> dict[str, Any]:
    """Run the GStreamer player against ``g`` (in the namespace's loop); its JSON result."""
    proc = await asyncio.create_subprocess_exec(
        SYSTEM_PYTHON,
        str(PLAYER),
        *("--url", g.base_url, "--camera", "cam", "--token", token, "--frames", str(FRAMES), "--delete"),
        *flags,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    result: dict[str, Any] = json.loads(out)
    return result


async def session_gone(g: LiveGateway, admin: dict[str, str]) -> None:
    """The DELETE ended the session: no session listed, no WebRTC reader left on the camera."""
    assert (await g.client.get("/api/sessions", headers=admin)).json() == []
    assert await eventually(lambda: not g.ld.hub.describe("cam").get("readers_by_protocol"), 5)


def check_played(r: dict[str, Any]) -> None:
    assert r["post"] == 201, r
    assert r.get("error") is None, r
    assert r["frames"] >= FRAMES, r
    # The gateway was the DTLS server (webrtcbin's RSA certificate shares no suite with aiortc's client).
    assert r["answer_setup"] == ["passive"], r
    # Listening beyond loopback with no host_addresses: the interface addresses, never loopback.
    assert GATEWAY_ADDRESS in r["answer_candidates"] and "127.0.0.1" not in r["answer_candidates"], r


async def test_gstreamer_player_trickles_plays_and_deletes(
    ns: NetNamespace, cams: FixtureCameraServer, tmp_path: Path
) -> None:
    async def scenario() -> dict[str, Any]:
        sections: dict[str, Any] = {"hub": QUICK_HUB, "server": {"host": GATEWAY_ADDRESS}}
        async with gateway_with(tmp_path / "d", {"cam": cams.url("h264_360p")}, **sections) as (g, admin):
            r = await play(g, admin["Authorization"].split()[1], "--trickle")
            await session_gone(g, admin)
            return r

    r = await ns.run(scenario())
    check_played(r)
    assert r["offer_candidates"] == 0
    assert r["patches"] and all(p["status"] == 204 for p in r["patches"]), r
    assert r["patches"][-1]["end"] and sum(p["candidates"] for p in r["patches"]) > 0, r
    assert r["delete"] == 200, r


async def test_gstreamer_player_candidates_in_offer(
    ns: NetNamespace, cams: FixtureCameraServer, tmp_path: Path
) -> None:
    async def scenario() -> dict[str, Any]:
        sections: dict[str, Any] = {"hub": QUICK_HUB, "server": {"host": GATEWAY_ADDRESS}}
        async with gateway_with(tmp_path / "d", {"cam": cams.url("h264_360p")}, **sections) as (g, admin):
            r = await play(g, admin["Authorization"].split()[1])
            await session_gone(g, admin)
            return r

    r = await ns.run(scenario())
    check_played(r)
    assert r["offer_candidates"] > 0 and r["patches"] == [], r
    assert r["delete"] == 200, r


async def test_gstreamer_player_with_a_stream_token_ends_its_session(
    ns: NetNamespace, cams: FixtureCameraServer, tmp_path: Path
) -> None:
    """A native player given a stream token POSTs with ?token= and sends the token as a bearer token
    on the session URL (as WHEP players do): it must be able to trickle and to end its session."""

    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        sections: dict[str, Any] = {"hub": QUICK_HUB, "server": {"host": GATEWAY_ADDRESS}}
        async with gateway_with(tmp_path / "d", {"cam": cams.url("h264_360p")}, **sections) as (g, admin):
            t = await g.client.post("/api/auth/stream-token/cam", headers=admin)
            assert t.status_code == 200, t.text
            r = await play(g, t.json()["token"], "--trickle", "--post-auth", "query")
            left = (await g.client.get("/api/sessions", headers=admin)).json()
            return r, left

    r, left = await ns.run(scenario())
    check_played(r)
    assert all(p["status"] == 204 for p in r["patches"]), r
    assert r["delete"] == 200, r
    assert left == [], left


def test_namespace_keeps_the_player_off_loopback(ns: NetNamespace) -> None:
    """The addresses the tests rely on exist only in the namespace, not on the machine."""
    import subprocess

    inside = ns.call(lambda: subprocess.run(["ip", "-br", "addr"], capture_output=True, text=True).stdout)
    outside = subprocess.run(["ip", "-br", "addr"], capture_output=True, text=True).stdout
    assert GATEWAY_ADDRESS in inside and PLAYER_ADDRESS in inside
    assert GATEWAY_ADDRESS not in outside
