"""RTSP messages, Digest answers, transports and RTP packetization, without a network."""

from __future__ import annotations

import itertools
import struct

import av
import pytest

from acl.digest import DigestAnswer, digest_response
from gateway.rtsp.messages import (
    BadRequest,
    parse_authorization,
    parse_camera_path,
    parse_request,
    parse_transport,
    response,
)
from gateway.rtsp.rtp import RtpPacketizer, parameter_sets, session_description
from streams import AccessUnit


def test_requests_are_read_and_malformed_ones_refused() -> None:
    req = parse_request(b"DESCRIBE rtsp://h:1/cameras/a RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp")
    assert (req.method, req.cseq, req.header("ACCEPT")) == ("DESCRIBE", "2", "application/sdp")
    for bad in (b"GET / HTTP/1.1", b"\xff\xfe", b"DESCRIBE x", b"DESCRIBE x RTSP/1.0\r\nno colon"):
        with pytest.raises(BadRequest):
            parse_request(bad)
    with pytest.raises(BadRequest) as e:
        parse_request(b"OPTIONS * RTSP/2.0")
    assert e.value.status == 505
    out = response(200, "7", {"Public": "OPTIONS"}, b"v=0")
    assert out.startswith(b"RTSP/1.0 200 OK\r\nCSeq: 7\r\n") and out.endswith(b"Content-Length: 3\r\n\r\nv=0")


def test_camera_paths() -> None:
    assert parse_camera_path("rtsp://h:8554/cameras/cam-1") == parse_camera_path("rtsp://h/cameras/cam-1/")
    p = parse_camera_path("rtsp://h:8554/cameras/cam-1/trackID=0")
    assert p is not None and (p.camera_id, p.sub, p.track) == ("cam-1", False, True)
    p = parse_camera_path("rtsp://h:8554/cameras/cam%3A1/sub")
    assert p is not None and (p.camera_id, p.sub) == ("cam:1", True)
    for bad in ("rtsp://h/cameras", "rtsp://h/cameras/a/main", "rtsp://h/x/a", "rtsp://h/cameras/..%2F..", "*"):
        assert parse_camera_path(bad) is None, bad


def test_digest_answers_and_transports() -> None:
    header = (
        'Digest username="wall", realm="liandong", nonce="n1", uri="rtsp://h/cameras/a", '
        'response="0123456789abcdef0123456789abcdef", qop=auth, nc=00000001, cnonce="c"'
    )
    a = parse_authorization(header)
    assert a is not None and (a.username, a.uri, a.qop, a.nc) == ("wall", "rtsp://h/cameras/a", "auth", "00000001")
    assert parse_authorization("Basic d2FsbDpwdw==") is None
    assert parse_authorization('Digest username="x"') is None
    # RFC 2617's worked example (HTTP, qop=auth).
    example = DigestAnswer(
        "Mufasa", "testrealm@host.com", "dcd98b7102dd2f0e8b11d0f600bfb0c093", "/dir/index.html", "", "auth",
        "00000001", "0a4f113b",
    )  # fmt: skip
    assert digest_response("Circle Of Life", "GET", example) == "6629fae49393a05397450978507c4ef1"
    t = parse_transport("RTP/AVP/TCP;unicast;interleaved=2-3")
    assert t is not None and t.tcp and t.interleaved == (2, 3)
    t = parse_transport("RTP/AVP;multicast,RTP/AVP;unicast;client_port=5000-5001")
    assert t is not None and not t.tcp and t.client_ports == (5000, 5001)
    assert parse_transport("RTP/AVP;unicast;client_port=5000-5001;destination=10.0.0.9") is None
    assert parse_transport("RTP/SAVP;unicast;client_port=1-2") is None
    assert parse_transport(None) is None


def _reassemble_h264(packets: list[bytes]) -> list[bytes]:
    nals: list[bytes] = []
    fu = b""
    for p in packets:
        payload = p[12:]
        t = payload[0] & 0x1F
        if t == 28:
            if payload[1] & 0x80:
                fu = bytes([(payload[0] & 0xE0) | (payload[1] & 0x1F)])
            fu += payload[2:]
            if payload[1] & 0x40:
                nals.append(fu)
        else:
            nals.append(payload)
    return nals


def _h264_stream(n: int) -> list[bytes]:
    """``n`` encoded 320x240 pictures (the first a keyframe), Annex B, from FFmpeg's encoder."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = 320, 240, "yuv420p"
    enc.options = {"preset": "ultrafast", "tune": "zerolatency", "x264-params": "keyint=30:repeat-headers=1"}
    out: list[bytes] = []
    for i in range(n):
        frame = av.VideoFrame(320, 240, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(i * 7 + 40) % 256]) * plane.buffer_size)
        frame.pts = i
        out += [bytes(p) for p in enc.encode(frame)]
    out += [bytes(p) for p in enc.encode(None)]
    return out


def test_h264_units_survive_packetization() -> None:
    units = _h264_stream(5)
    key = units[0]
    params = parameter_sets("h264", key)
    assert set(params) == {"sps", "pps"}
    sdp = session_description("h264", params, "127.0.0.1", 1)
    assert "a=rtpmap:96 H264/90000" in sdp and "sprop-parameter-sets=" in sdp and "a=control:trackID=0" in sdp
    rtp = RtpPacketizer("h264", mtu=200)  # small: the keyframe is fragmented
    decoder = av.CodecContext.create("h264", "r")
    decoded = 0
    seqs: list[int] = []
    for i, data in enumerate(units):
        packets = rtp.packetize(AccessUnit(data, pts=i * 3600, keyframe=i == 0, wallclock=0.0))
        assert all(len(p) <= 200 for p in packets)
        markers = [p[1] & 0x80 for p in packets]
        assert markers[-1] and not any(markers[:-1])
        seqs += [struct.unpack("!H", p[2:4])[0] for p in packets]
        ts = {struct.unpack("!I", p[4:8])[0] for p in packets}
        assert ts == {rtp.rtp_time(i * 3600)}
        annexb = b"".join(b"\x00\x00\x00\x01" + n for n in _reassemble_h264(packets))
        decoded += len(decoder.decode(av.Packet(annexb)))
    assert decoded >= 4
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
    sr = rtp.sender_report()
    assert sr[1] == 200 and len(sr) == 28


def test_h265_fragments_and_restart_keeps_time_going() -> None:
    nal = bytes([0x26, 0x01]) + bytes(range(256)) * 4  # an IDR slice header, 1 KiB of payload
    rtp = RtpPacketizer("hevc", mtu=300)
    packets = rtp.packetize(AccessUnit(b"\x00\x00\x00\x01" + nal, pts=900, keyframe=True, wallclock=0.0))
    assert len(packets) > 3
    assert all((p[12] >> 1) & 0x3F == 49 for p in packets)  # fragmentation units
    assert packets[0][14] & 0x80 and packets[-1][14] & 0x40 and (packets[0][14] & 0x3F) == 19
    assert b"".join(p[15:] for p in packets) == nal[2:]
    before = rtp.rtp_time(900)
    rtp.restart(1, 0)  # the upstream restarted: its clock begins again at 0
    assert rtp.rtp_time(0) == (before + 3600) & 0xFFFFFFFF
