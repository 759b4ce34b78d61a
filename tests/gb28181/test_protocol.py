"""The protocol pieces on their own: SIP parsing (fuzzed), digest, nonces, RTP, PS round trips
(also through FFmpeg's MPEG-PS demuxer), MANSCDP bodies that try entity expansion."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gb28181 import manscdp
from gb28181.ps import PsDemuxer, PsMuxer
from gb28181.rtp import Rfc4571Reader, RtpError, RtpPacket, frame_4571
from gb28181.sip import MAX_MESSAGE, SipMessage, SipParseError, StreamParser, param, parse, uri_user
from httpdigest import digest

REGISTER = (
    b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1\r\n"
    b"f: <sip:34020000001320000001@3402000000>;tag=abc\r\n"
    b"To: <sip:34020000001320000001@3402000000>\r\n"
    b"Call-ID: 1@192.168.1.64\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Expires: 3600\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_parse_register_with_compact_headers_and_answer_it() -> None:
    m = parse(REGISTER)
    assert m.method == "REGISTER" and m.cseq == (1, "REGISTER")
    assert uri_user(m.get("From") or "") == "34020000001320000001"
    assert param(m.get("From") or "", "tag") == "abc"
    r = m.response(200, "OK", to_tag="t1")
    wire = r.encode()
    back = parse(wire)
    assert back.status == 200 and param(back.get("To") or "", "tag") == "t1"
    assert b"Content-Length: 0\r\n" in wire


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage\r\n\r\n",
        REGISTER.replace(b"CSeq: 1 REGISTER", b"CSeq: x"),
        REGISTER.replace(b"Call-ID: 1@192.168.1.64\r\n", b""),
        REGISTER.replace(b"Content-Length: 0", b"Content-Length: 99"),
        REGISTER.replace(b"Content-Length: 0", b"Content-Length: 99999999"),
        REGISTER + b"x" * MAX_MESSAGE,
        REGISTER.replace(b"Expires: 3600\r\n", b"".join(b"X-%d: 1\r\n" % i for i in range(100))),
        b"SIP/2.0 99 Odd\r\n" + REGISTER.split(b"\r\n", 1)[1],
    ],
)
def test_malformed_and_oversized_messages_are_refused(data: bytes) -> None:
    with pytest.raises(SipParseError):
        parse(data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=2000), st.integers(0, len(REGISTER)))
def test_fuzzed_messages_parse_or_are_refused(noise: bytes, at: int) -> None:
    for data in (noise, REGISTER[:at] + noise + REGISTER[at:]):
        try:
            m = parse(data)
        except SipParseError:
            continue
        m.encode()  # what we accepted we can write again


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=20))
def test_stream_parser_frames_messages_however_tcp_cuts_them(cuts: list[int]) -> None:
    wire = b"\r\n" + REGISTER + REGISTER.replace(b"Content-Length: 0", b"Content-Length: 3") + b"abc"
    p = StreamParser()
    got: list[SipMessage] = []
    pos = 0
    for n in cuts * 40:
        got += p.feed(wire[pos : pos + n])
        pos += n
        if pos >= len(wire):
            break
    got += p.feed(wire[pos:])
    assert [m.body for m in got] == [b"", b"abc"]


def test_header_injection_is_refused_on_write() -> None:
    m = SipMessage(method="MESSAGE", uri="sip:a@b")
    m.add("Subject", "x\r\nVia: evil")
    with pytest.raises(ValueError, match="line break"):
        m.encode()


def test_digest_round_trip_replay_and_expiry() -> None:
    now = [0.0]
    store = digest.NonceStore(ttl_s=10, capacity=3, clock=lambda: now[0])
    nonce = store.issue()
    auth = digest.authorization(digest.challenge("3402000000", nonce), "dev", "pw", "REGISTER", "sip:x@y")
    p = digest.parse_params(auth)
    assert store.known(nonce) and digest.verify(p, "REGISTER", "pw", "3402000000")
    assert not digest.verify(p, "REGISTER", "other", "3402000000")
    store.consume(nonce)
    assert not store.known(nonce)  # single use
    late = store.issue()
    now[0] = 11
    assert not store.known(late)  # expired
    for _ in range(10):
        store.issue()
    assert len(store) == 3  # bounded


def test_digest_with_qop_and_hostile_headers() -> None:
    ch = 'Digest realm="r",nonce="n",qop="auth"'
    p = digest.parse_params(digest.authorization(ch, "u", "pw", "REGISTER", "sip:a@b"))
    assert p["qop"] == "auth" and digest.verify(p, "REGISTER", "pw", "r")
    for bad in ("Basic abc", "Digest " + "a" * 3000, 'Digest realm="unterminated', "Digest ,,,"):
        with pytest.raises(digest.DigestError):
            digest.parse_params(bad)


def test_rtp_and_rfc4571() -> None:
    pkt = RtpPacket(96, 65535, 123, 0x0102_0304, True, b"payload")
    wire = pkt.encode()
    assert RtpPacket.parse(wire) == pkt
    r = Rfc4571Reader()
    stream = frame_4571(wire) * 3
    out = [p for i in range(0, len(stream), 5) for p in r.feed(stream[i : i + 5])]
    assert out == [wire] * 3
    for bad in (b"", b"\x00" * 12, bytes([0xA0]) + wire[1:11] + b"\x00" + b"\x00"):
        with pytest.raises(RtpError):
            RtpPacket.parse(bad)


@pytest.fixture(scope="module")
def units() -> list[tuple[bytes, int, bool]]:
    """Real H.264 access units (libx264 through PyAV)."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = 160, 96, "yuv420p"
    enc.time_base = Fraction(1, 25)
    enc.options = {"g": "10", "bf": "0", "preset": "ultrafast"}
    out = []
    for i in range(30):
        frame = av.VideoFrame(160, 96, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(i * 7) % 256]) * plane.buffer_size)
        frame.pts = i
        for p in enc.encode(frame):
            out.append((bytes(p), int(p.pts) * 3600, bool(p.is_keyframe)))
    for p in enc.encode(None):
        out.append((bytes(p), int(p.pts) * 3600, bool(p.is_keyframe)))
    return out


def test_ps_round_trip_in_any_slicing_and_through_ffmpeg(units: list[tuple[bytes, int, bool]]) -> None:
    mux = PsMuxer("h264")
    ps = b"".join(mux.mux(data, pts, key) for data, pts, key in units)
    for size in (1, 188, 1400, 100_000):
        d = PsDemuxer()
        frames = [f for i in range(0, len(ps), size) for f in d.feed(ps[i : i + size])] + list(d.flush())
        assert [(f.data, f.pts) for f in frames] == [(data, pts) for data, pts, _ in units]
        assert d.resyncs == 0
    c = av.open(io.BytesIO(ps), format="mpeg")
    assert c.streams.video[0].codec_context.name == "h264"
    assert sum(1 for p in c.demux(c.streams.video[0]) if p.size) == len(units)


def test_ps_demuxer_resyncs_after_garbage_and_bounds_memory(units: list[tuple[bytes, int, bool]]) -> None:
    mux = PsMuxer("h264")
    d = PsDemuxer(max_buffer=64 * 1024)
    frames = list(d.feed(b"\x17" * 5000 + b"".join(mux.mux(a, p, k) for a, p, k in units[:10])))
    frames += d.flush()
    assert len(frames) == 10 and d.resyncs >= 1
    # A PES that claims 65 KB and never delivers stays bounded.
    list(d.feed(b"\x00\x00\x01\xe0\xff\xff" + b"\x01" * 200_000))
    assert len(d._buf) <= 64 * 1024


def test_hevc_stream_map_is_read() -> None:
    mux = PsMuxer("hevc")
    d = PsDemuxer()
    frames = list(d.feed(mux.mux(b"\x00\x00\x00\x01\x40\x01\x0c", 3600, True))) + list(d.flush())
    assert frames[0].codec == "hevc"


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><Response>&b;</Response>',
        b'<?xml version="1.0" encoding="ebcdic"?><Response/>',
        b"<Response><unclosed></Response>",
        b"<Response>" + b"x" * 60_000 + b"</Response>",
    ],
)
def test_hostile_xml_is_refused(body: bytes) -> None:
    with pytest.raises(manscdp.ManscdpError):
        manscdp.parse(body)


def test_gb2312_catalog_and_its_bound() -> None:
    items = "".join(
        f"<Item><DeviceID>3402000000131{i:07d}</DeviceID><Name>摄像机{i}</Name><Status>ON</Status></Item>"
        for i in range(50)
    )
    body = '<?xml version="1.0" encoding="GB2312"?><Response><CmdType>Catalog</CmdType><SumNum>100000</SumNum>'
    body += f"<DeviceList>{items}<Item><DeviceID>bad</DeviceID></Item></DeviceList></Response>"
    root = manscdp.parse(body.encode("gbk"))
    total, got = manscdp.catalog_items(root, limit=10)
    assert total == 100000 and len(got) == 10 and got[0].name == "摄像机0"
