"""The cascade's pieces without a network: its settings, the superior's SDP offer, channel ids,
the superior's policy subject, and the PS a superior receives (muxed units demuxed back)."""

from __future__ import annotations

import asyncio
import time

import pytest

from acl.credentials import Kind, Scope, accepted_kinds, rule_for
from gateway.policy.cascade import superior_subject
from gateway.settings import load_settings
from gb28181.cascade import channel_id_for
from gb28181.ps import PsDemuxer, PsMuxer
from gb28181.push import OfferError, PsPusher, parse_offer
from gb28181.rtp import RtpPacket
from gb28181.settings import SuperiorSettings
from streams import AccessUnit

SUP = {"id": "44010000002000000001", "domain": "4401000000", "host": "10.1.2.3", "view_as": "dept:police"}


def test_superiors_from_env_keep_their_password_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "LIANDONG_GB28181__SUPERIORS",
        '[{"id": "44010000002000000001", "domain": "4401000000", "host": "10.1.2.3", "port": 5070,'
        ' "password": "up-s3cret", "view_as": "dept:城管"}]',
    )
    (sup,) = load_settings(None).gb28181.superiors
    assert (sup.port, sup.view_as, sup.expires_s) == (5070, "dept:城管", 3600)
    assert "up-s3cret" not in repr(sup) and sup.password.get_secret_value() == "up-s3cret"


@pytest.mark.parametrize(
    ("superior", "field"),
    [
        ({**SUP, "id": "4401"}, "id"),
        ({**SUP, "view_as": "police"}, "view_as"),
        ({**SUP, "view_as": "role:admin"}, "view_as"),
        ({**SUP, "bogus": 1}, "bogus"),
        ({**SUP, "port": 0}, "port"),
        ({k: v for k, v in SUP.items() if k != "host"}, "host"),
    ],
)
def test_bad_superiors_name_their_field(superior: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        load_settings(None, gb28181={"superiors": [superior]})


def test_a_superior_at_most_once() -> None:
    with pytest.raises(ValueError, match="superiors"):
        load_settings(None, gb28181={"superiors": [SUP, SUP]})


def test_offers() -> None:
    udp = (
        b"v=0\r\nc=IN IP4 10.0.0.9\r\nm=video 30000 RTP/AVP 96\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\n"
        b"y=0100000001\r\n"
    )
    o = parse_offer(udp)
    assert (o.host, o.port, o.tcp, o.setup, o.ssrc, o.ssrc_value) == (
        "10.0.0.9",
        30000,
        False,
        "",
        "0100000001",
        1e8 + 1,
    )
    tcp = udp.replace(b"RTP/AVP 96", b"TCP/RTP/AVP 96").replace(b"y=", b"a=setup:active\r\ny=")
    assert (parse_offer(tcp).tcp, parse_offer(tcp).setup) == (True, "active")
    no_setup = udp.replace(b"RTP/AVP 96", b"TCP/RTP/AVP 96")
    assert parse_offer(no_setup).setup == "passive"  # the superior listens unless it says otherwise
    for bad in (
        udp.replace(b"PS/90000", b"H264/90000"),
        udp.replace(b"c=IN IP4 10.0.0.9", b""),
        udp.replace(b"30000", b"70000"),
        udp.replace(b"a=recvonly", b"a=sendonly"),
        b"\xff" * 100,
    ):
        with pytest.raises(OfferError):
            parse_offer(bad)


def test_channel_ids_are_stable_and_twenty_digits() -> None:
    platform = "34020000002000000001"
    assert channel_id_for("34020000001320000077", [], platform) == "34020000001320000077"
    assert channel_id_for("cam-a", ["gb-id:34020000001310000005"], platform) == "34020000001310000005"
    derived = channel_id_for("cam-a", ["gb-id:123"], platform)
    assert derived == channel_id_for("cam-a", [], platform) != channel_id_for("cam-b", [], platform)
    assert len(derived) == 20 and derived.isdigit() and derived.startswith("3402000000132")


def test_a_superior_acts_as_an_operator_of_its_department_only() -> None:
    sup = SuperiorSettings.model_validate(SUP)
    s = superior_subject(sup)
    assert s.departments == frozenset({"police"}) and s.role.value == "operator" and not s.is_admin
    assert s.user_id < 0 and s.username == "gb28181:44010000002000000001"
    assert s.credential is Kind.gb28181_superior
    assert accepted_kinds(Scope.gb28181_cascade) == {Kind.gb28181_superior}
    assert rule_for(Kind.gb28181_superior).derived_from is None


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_muxed_units_demux_back(codec: str) -> None:
    units = [
        (b"\x00\x00\x00\x01\x67\x42" + bytes(100_000), 3600, True),
        (b"\x00\x00\x00\x01\x41" + bytes(900), 7200, False),
    ]
    mux, demux = PsMuxer(codec), PsDemuxer()
    stream = b"".join(mux.mux(d, pts, k) for d, pts, k in units) + mux.mux(b"\x00\x00\x00\x01\x41", 10800, False)
    frames = [f for i in range(0, len(stream), 1400) for f in demux.feed(stream[i : i + 1400])]
    assert [(f.codec, f.pts, f.data) for f in frames] == [(codec, p, d) for d, p, _ in units]


class _Units:
    """A unit source: a non-keyframe first (skipped), then an upstream restart with new timestamps."""

    codec = "h264"

    def __init__(self) -> None:
        self.generation = 0
        self.units = [
            (0, AccessUnit(b"\x00\x00\x00\x01\x41" + bytes(10), 500, False, time.time())),
            (0, AccessUnit(b"\x00\x00\x00\x01\x65" + bytes(5000), 1000, True, time.time())),
            (0, AccessUnit(b"\x00\x00\x00\x01\x41" + bytes(10), 4600, False, time.time())),
            (1, AccessUnit(b"\x00\x00\x00\x01\x65" + bytes(3000), 0, True, time.time())),
            (1, AccessUnit(b"\x00\x00\x00\x01\x41" + bytes(10), 3600, False, time.time())),
        ]
        self.done = asyncio.Event()

    async def next_unit(self) -> AccessUnit:
        if not self.units:
            self.done.set()
            await asyncio.Event().wait()
        self.generation, unit = self.units.pop(0)
        return unit


async def test_the_pusher_starts_at_a_keyframe_and_keeps_timestamps_continuous() -> None:
    got: list[RtpPacket] = []
    loop = asyncio.get_running_loop()

    class Sink(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            got.append(RtpPacket.parse(data))

    sink, _ = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
    port = sink.get_extra_info("sockname")[1]
    offer = parse_offer(
        f"v=0\r\nc=IN IP4 127.0.0.1\r\nm=video {port} RTP/AVP 96\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\n"
        "y=0200000002\r\n".encode()
    )
    source = _Units()
    pusher = PsPusher(offer, "127.0.0.1", source, mtu=1400)
    try:
        await pusher.prepare()
        assert b"a=sendonly" in pusher.answer("34020000001320000001") and b"y=0200000002" in pusher.answer("x")
        pusher.start()
        async with asyncio.timeout(10):
            await source.done.wait()
            while len(got) < pusher.packets:
                await asyncio.sleep(0.01)
    finally:
        await pusher.close()
        sink.close()
    assert {p.ssrc for p in got} == {200000002} and {p.payload_type for p in got} == {96}
    assert [p.seq for p in got] == [(got[0].seq + i) & 0xFFFF for i in range(len(got))]
    demux = PsDemuxer()
    frames = [*demux.feed(b"".join(p.payload for p in got)), *demux.flush()]
    assert [f.pts for f in frames] == [3600, 7200, 10800, 14400]
    stamps = sorted({p.timestamp for p in got})
    # 3600 for the first keyframe, +3600 per unit, and 3600 on from the last one after the restart
    assert stamps == [3600, 7200, 10800, 14400]
    assert [p.timestamp for p in got if p.marker] == stamps  # the marker on each unit's last packet
