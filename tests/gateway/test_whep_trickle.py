"""Trickle ICE on WHEP sessions: PATCH with RFC 8840 fragments (aiortc viewers, real gateway and camera)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from acl.models import Role
from fixtures.camera_server import FixtureCameraServer
from gateway.webrtc.trickle import FragmentError, parse_fragment
from tests.live import LiveGateway, gateway_with, whep_offer
from tests.media import QUICK_HUB, cameras_fixture

pytestmark = pytest.mark.media
FRAG = "application/trickle-ice-sdpfrag"
cams = cameras_fixture("h264_360p")


@pytest.fixture
async def gw(tmp_path: Path, cams: FixtureCameraServer) -> AsyncIterator[tuple[LiveGateway, dict[str, str]]]:
    async with gateway_with(tmp_path / "data", {"cam": cams.url("h264_360p")}, hub=QUICK_HUB) as pair:
        yield pair


def split_offer(sdp: str) -> tuple[str, list[str], str, str]:
    """(the offer without candidates, its a=candidate lines, ufrag, pwd): what a trickling player sends first."""
    lines = sdp.splitlines()
    cands = [ln for ln in lines if ln.startswith("a=candidate:")]
    rest = [ln for ln in lines if not ln.startswith(("a=candidate:", "a=end-of-candidates"))]
    ufrag = next(ln for ln in lines if ln.startswith("a=ice-ufrag:")).split(":", 1)[1]
    pwd = next(ln for ln in lines if ln.startswith("a=ice-pwd:")).split(":", 1)[1]
    return "\r\n".join(rest) + "\r\n", cands, ufrag, pwd


def fragment(ufrag: str, pwd: str, cands: list[str], end: bool = False, mid: str = "0") -> str:
    body = [f"a=ice-ufrag:{ufrag}", f"a=ice-pwd:{pwd}", "m=video 9 UDP/TLS/RTP/SAVPF 0", f"a=mid:{mid}", *cands]
    return "\r\n".join(body + (["a=end-of-candidates"] if end else [])) + "\r\n"


def remote_ports(g: LiveGateway, session_id: str) -> set[int]:
    """The candidates the gateway's ICE agent knows for a session (white box: the peer connection)."""
    pc = g.ld.whep._pcs[session_id]
    ice = pc.getTransceivers()[0].receiver.transport.transport
    return {c.port for c in ice.getRemoteCandidates()}


async def test_trickled_candidates_reach_ice(gw: tuple[LiveGateway, dict[str, str]]) -> None:
    """Offer without candidates, candidates by PATCH (204, ETag), then video (PATCH was 405 once)."""
    g, admin = gw
    pc, full = await whep_offer()
    got: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
    pc.on("track", lambda t: got.done() or got.set_result(t))
    try:
        offer, cands, ufrag, pwd = split_offer(full)
        assert cands
        r = await g.client.post(
            "/api/cameras/cam/whep", content=offer, headers={**admin, "Content-Type": "application/sdp"}
        )
        assert r.status_code == 201, r.text
        location, etag = r.headers["location"], r.headers["etag"]
        session_id = location.rsplit("/", 1)[1]
        assert remote_ports(g, session_id) == set()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
        headers = {**admin, "Content-Type": FRAG, "If-Match": etag}
        r = await g.client.patch(location, content=fragment(ufrag, pwd, cands[:1]), headers=headers)
        assert r.status_code == 204, r.text
        assert r.headers["etag"] == etag
        r = await g.client.patch(location, content=fragment(ufrag, pwd, cands[1:], end=True), headers=headers)
        assert r.status_code == 204, r.text
        assert remote_ports(g, session_id) == {int(c.split()[5]) for c in cands}
        track = await asyncio.wait_for(got, 10)
        async with asyncio.timeout(15):
            frame = await track.recv()
        assert frame.width == 640
        # After end-of-candidates more candidates are accepted and ignored (ICE is done with them).
        r = await g.client.patch(location, content=fragment(ufrag, pwd, [], end=True), headers=headers)
        assert r.status_code == 204
    finally:
        await pc.close()


async def test_patch_refusals(gw: tuple[LiveGateway, dict[str, str]]) -> None:
    g, admin = gw
    pc, full = await whep_offer()
    try:
        offer, cands, ufrag, pwd = split_offer(full)
        r = await g.client.post(
            "/api/cameras/cam/whep", content=offer, headers={**admin, "Content-Type": "application/sdp"}
        )
        assert r.status_code == 201, r.text
        location, etag = r.headers["location"], r.headers["etag"]
        good = fragment(ufrag, pwd, cands)
        frag_headers = {**admin, "Content-Type": FRAG, "If-Match": etag}
        r = await g.client.patch(location, content=good, headers={**admin, "Content-Type": "application/sdp"})
        assert r.status_code == 415 and r.headers["accept-patch"] == FRAG, r.text
        r = await g.client.patch(location, content=good, headers={**frag_headers, "If-Match": '"stale-ice-session"'})
        assert r.status_code == 412 and r.headers["etag"] == etag, r.text
        # ICE restarts: new credentials, or If-Match: * (RFC 9725); aiortc cannot restart ICE.
        for body, if_match in ((fragment("newufrag", "newpassword0123456789ab", cands), etag), (good, "*")):
            r = await g.client.patch(location, content=body, headers={**frag_headers, "If-Match": if_match})
            assert r.status_code == 422 and "ICE restart is not supported" in r.text, r.text
        bad = {
            b"": "empty body",
            b"\xff\xfe": "UTF-8",
            b"a=candidate:1 1 udp 2130706431 198.51.100.7 5000 typ host\r\nnot a line\r\n": "line 2: malformed",
            fragment(ufrag, pwd, ["a=candidate:1 1 udp 2130706431 198.51.100.7 70000 typ host"]).encode(): "port",
            fragment(ufrag, pwd, ["a=candidate:1 1 udp 2130706431 198.51.100.7 5000 typ nope"]).encode(): "type",
            fragment(ufrag, pwd, ["a=candidate:1 1 sctp 2130706431 198.51.100.7 5000 typ host"]).encode(): "transport",
            fragment(ufrag, pwd, ["a=candidate:1 1 udp 2130706431 not_an_ip 5000 typ host"]).encode(): "address",
            fragment(ufrag, pwd, ["a=candidate:1 1 udp"]).encode(): "line 5 (a=candidate)",
            fragment(ufrag, pwd, cands, mid="9").encode(): "a=mid",
            (good + "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n").encode(): "media section",
            b"a=ice-options:trickle\r\n": "no a=candidate",
        }
        for body, reason in bad.items():
            r = await g.client.patch(location, content=body, headers=frag_headers)
            assert r.status_code == 422, (body[:60], r.status_code, r.text)
            assert reason in r.text, (body[:60], r.text)
        # Not yours, not there, not logged in.
        op = await g.add_user("op1", Role.operator)
        assert (await g.client.patch(location, content=good, headers={**op, "Content-Type": FRAG})).status_code == 404
        r = await g.client.patch("/api/whep/nosuchsession", content=good, headers=frag_headers)
        assert r.status_code == 404
        assert (await g.client.patch(location, content=good, headers={"Content-Type": FRAG})).status_code == 401
        # A good fragment without If-Match is taken (RFC 9110: no precondition).
        r = await g.client.patch(location, content=good, headers={**admin, "Content-Type": FRAG})
        assert r.status_code == 204, r.text
    finally:
        await pc.close()


def test_fragment_parsing() -> None:
    """RFC 8840 fragments: candidates take their section's a=mid; session-level ones the first section."""
    body = (
        "a=ice-options:trickle ice2\r\na=group:BUNDLE 0\r\n"
        "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"
        "a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n"
        "a=candidate:3471623853 1 udp 1686052607 198.51.100.2 61765 typ srflx raddr 192.0.2.1 rport 61764\r\n"
        "a=end-of-candidates\r\n"
    )
    f = parse_fragment(body.encode(), 4096, ["0"])
    assert (f.ufrag, f.pwd, f.end_of_candidates) == ("EsAw", "P2uYro0UCOQ4zxjKXaWCBui1", True)
    assert [(c.ip, c.port, c.type, c.sdpMid) for c in f.candidates] == [
        ("192.0.2.1", 61764, "host", "0"),
        ("198.51.100.2", 61765, "srflx", "0"),
    ]
    assert f.candidates[1].relatedPort == 61764
    bare = parse_fragment(b"a=candidate:1 1 udp 2130706431 abcd-1234.local 5000 typ host\n", 4096, ["v"])
    assert (bare.candidates[0].ip, bare.candidates[0].sdpMid, bare.candidates[0].sdpMLineIndex) == (
        "abcd-1234.local",
        "v",
        0,
    )
    with pytest.raises(FragmentError, match="larger than 64 bytes"):
        parse_fragment(b"a=end-of-candidates\r\n" * 10, 64, ["0"])
    with pytest.raises(FragmentError, match="rport"):
        parse_fragment(b"a=candidate:1 1 udp 1 192.0.2.1 5000 typ srflx raddr 192.0.2.9 rport 99999\n", 4096, ["0"])
