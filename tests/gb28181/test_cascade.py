"""The GB/T 28181 cascade end to end: a live gateway reading the fixture RTSP cameras registers to
the superior platform emulator (``fixtures/gb28181_superior.py``) with digest, answers its
Catalog query with exactly the cameras ``dept:police`` may view live, plays a permitted camera as
PS over RTP (UDP and TCP) that ffprobe decodes as the fixture's H.264, refuses a camera outside
the catalog, ends on BYE, notifies the catalog after a policy change, ends a running INVITE with
BYE when the policy takes its camera away, and registers again when the superior forgets it."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from fixtures.camera_server import FixtureCameraServer
from fixtures.gb28181_superior import Call, SuperiorPlatform
from gb28181.cascade import channel_id_for
from tests.live import LiveGateway, gateway_with
from tests.media import QUICK_HUB, cameras_fixture

pytestmark = [pytest.mark.media, pytest.mark.asyncio(loop_scope="module")]
cams = cameras_fixture("h264_360p")
LOWER = "34020000002000000001"  # gb28181.platform_id's default
SUPERIOR = "44010000002000000001"
PASSWORD = "cascade-pw-7"


@dataclass
class Ctx:
    g: LiveGateway
    admin: dict[str, str]
    sup: SuperiorPlatform
    police_rule: int


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ctx(tmp_path_factory: pytest.TempPathFactory, cams: FixtureCameraServer) -> AsyncIterator[Ctx]:
    url = cams.url("h264_360p")
    cameras = {"cam-a": url, "cam-b": url, "34020000001320000077": url}
    async with SuperiorPlatform(platform_id=SUPERIOR, domain="4401000000", password=PASSWORD) as sup:
        superior = {
            "id": SUPERIOR, "domain": "4401000000", "host": "127.0.0.1", "port": sup.port, "password": PASSWORD,
            "view_as": "dept:police", "keepalive_s": 0.5, "keepalive_misses": 2, "retry_s": 0.3,
        }  # fmt: skip
        gb = {"superiors": [superior], "transaction_timeout_s": 2.0}
        data = tmp_path_factory.mktemp("cascade") / "data"
        async with gateway_with(data, cameras, hub=QUICK_HUB, gb28181=gb) as (g, admin):
            r = await g.client.put("/api/admin/departments/police", json={"name": "police"}, headers=admin)
            assert r.status_code in (200, 201), r.text
            r = await g.client.patch("/api/cameras/cam-a", json={"lat": 31.15, "lon": 121.35}, headers=admin)
            assert r.status_code == 200, r.text
            rules = []
            for cam in ("cam-a", "34020000001320000077"):
                rule = {"subject": "dept:police", "target": f"cam:{cam}", "action": "view_live"}
                r = await g.client.post("/api/admin/rules", json=rule, headers=admin)
                assert r.status_code == 201, r.text
                rules.append(r.json()["id"])
            await sup.until(lambda: LOWER in sup.lowers, 20, "the gateway's registration")
            yield Ctx(g, admin, sup, rules[0])


def ch(camera_id: str) -> str:
    return channel_id_for(camera_id, [], LOWER)


def received(call: Call, n: int) -> Callable[[], bool]:
    return lambda: len(call.packets) > n


def probe(ps: bytes, path: Path) -> dict[str, object]:
    path.write_bytes(ps)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-f", "mpeg", "-count_frames", "-show_entries",
         "stream=codec_name,width,height,nb_read_frames", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    streams = json.loads(out.stdout)["streams"]
    assert len(streams) == 1, streams
    return dict(streams[0])


async def test_registers_with_digest_and_lists_only_what_the_department_may_view(ctx: Ctx) -> None:
    sup = ctx.sup
    assert sup.challenges >= 1 and sup.refused == []  # the first REGISTER was challenged, the answer right
    items = await sup.catalog(LOWER)
    assert sorted(i.device_id for i in items) == sorted([ch("cam-a"), "34020000001320000077"])
    a = next(i for i in items if i.device_id == ch("cam-a"))
    assert a.name == "cam-a" and a.civil_code == LOWER[:6] and a.parent_id == LOWER and a.status == "ON"
    assert sup.coordinates == {ch("cam-a"): (121.35, 31.15)}  # the only camera with a position
    await sup.until(lambda: sup.lowers[LOWER].keepalives >= 2, 20, "keepalives")


async def test_invite_plays_the_camera_as_ps_over_udp_and_tcp(ctx: Ctx, tmp_path: Path) -> None:
    sup = ctx.sup
    await sup.catalog(LOWER)
    for tcp, connect in ((False, False), (True, False), (True, True)):
        call = await sup.invite(LOWER, ch("cam-a"), tcp=tcp, connect=connect)
        assert call.status == 200, call.status
        assert b"PS/90000" in call.answer and f"y={call.ssrc}".encode() in call.answer
        sessions = (await ctx.g.client.get("/api/sessions", headers=ctx.admin)).json()
        mine = [s for s in sessions if s["protocol"] == "gb28181"]
        assert [(s["camera_id"], s["username"]) for s in mine] == [("cam-a", f"gb28181:{SUPERIOR}")]
        await sup.until(received(call, 80), 30, "PS over RTP")
        assert await sup.bye(LOWER, call) == 200
        assert call.wrong_ssrc == 0
        info = probe(call.ps(), tmp_path / f"got-{tcp}-{connect}.ps")
        assert (info["codec_name"], info["width"], info["height"]) == ("h264", 640, 360), info
        assert int(str(info["nb_read_frames"])) >= 10
        status = ctx.g.ld.cascade.status()[0]
        await sup.until(lambda: not ctx.g.ld.cascade.status()[0]["invites"], 10, "the INVITE ended by BYE")
        assert status["registered"] is True


async def test_admins_see_the_superior_and_its_invites_and_end_one(ctx: Ctx) -> None:
    sup, g, admin = ctx.sup, ctx.g, ctx.admin
    await sup.catalog(LOWER)
    call = await sup.invite(LOWER, "34020000001320000077")  # a camera id that is a GB id is used as is
    assert call.status == 200
    await sup.until(received(call, 20), 30, "PS over RTP")
    listed = (await g.client.get("/api/admin/gb28181/superiors", headers=admin)).json()
    assert [(x["id"], x["registered"], x["view_as"]) for x in listed] == [(SUPERIOR, True, "dept:police")]
    (invite,) = listed[0]["invites"]
    assert invite["camera_id"] == "34020000001320000077" and invite["media"].startswith("udp:127.0.0.1:")
    metrics = (await g.client.get("/metrics", headers=admin)).text
    assert 'liandong_gb28181_superiors{state="registered"} 1.0' in metrics
    assert f'liandong_gb28181_cascade_invites{{superior="{SUPERIOR}"}} 1.0' in metrics
    op = await g.add_user("op-x")
    assert (await g.client.get("/api/admin/gb28181/superiors", headers=op)).status_code == 403
    r = await g.client.delete(f"/api/sessions/{invite['session_id']}", headers=admin)
    assert r.status_code in (200, 204), r.text
    await sup.until(lambda: call.ended_by_lower.is_set(), 10, "a BYE after an admin ended the session")


async def test_a_camera_outside_the_catalog_is_refused(ctx: Ctx) -> None:
    call = await ctx.sup.invite(LOWER, ch("cam-b"))
    assert call.status == 404
    call = await ctx.sup.invite(LOWER, "34020000001320009999")
    assert call.status == 404


async def test_policy_change_notifies_and_revocation_ends_the_invite(ctx: Ctx) -> None:
    sup, g, admin = ctx.sup, ctx.g, ctx.admin
    await sup.catalog(LOWER)
    rule = {"subject": "dept:police", "target": "cam:cam-b", "action": "view_live"}
    r = await g.client.post("/api/admin/rules", json=rule, headers=admin)
    assert r.status_code == 201, r.text
    await sup.until(lambda: (ch("cam-b"), "ADD") in sup.notifications, 10, "a catalog notification (ADD)")
    call: Call = await sup.invite(LOWER, ch("cam-a"))
    assert call.status == 200
    await sup.until(received(call, 50), 30, "PS over RTP")
    r = await g.client.delete(f"/api/admin/rules/{ctx.police_rule}", headers=admin)
    assert r.status_code in (200, 204), r.text
    await sup.until(lambda: call.ended_by_lower.is_set(), 10, "a BYE after the revocation")
    await sup.until(lambda: (ch("cam-a"), "DEL") in sup.notifications, 10, "a catalog notification (DEL)")
    again = await sup.invite(LOWER, ch("cam-a"))
    assert again.status == 404
    r = await g.client.delete("/api/cameras/cam-b", headers=admin)
    assert r.status_code in (200, 204), r.text
    await sup.until(lambda: (ch("cam-b"), "DEL") in sup.notifications, 10, "a catalog notification (camera deleted)")


async def test_requests_not_from_the_superior_are_refused(ctx: Ctx) -> None:
    link = ctx.g.ld.cascade.links[SUPERIOR]
    before = link.refused
    loop = asyncio.get_running_loop()
    replies: asyncio.Queue[bytes] = asyncio.Queue()

    class Proto(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            replies.put_nowait(data)

    t, _ = await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", 0))
    try:
        t.sendto(b"\x00garbage\r\n\r\n" * 10, link.local)
        forged = (
            f"INVITE sip:{ch('cam-a')}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n"
            "From: <sip:44010000002000000099@4401000000>;tag=a\r\nTo: <sip:x@y>\r\nCall-ID: forged\r\n"
            "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        )
        t.sendto(forged.encode(), link.local)
        reply = await asyncio.wait_for(replies.get(), 10)
        assert reply.startswith(b"SIP/2.0 403"), reply[:40]
        assert link.refused == before + 2 and not link.plays
    finally:
        t.close()


async def test_registers_again_when_the_superior_forgets_it(ctx: Ctx) -> None:
    sup = ctx.sup
    before = sup.registrations
    sup.forget()  # keepalives are refused from now on, as by a restarted superior
    await sup.until(lambda: sup.registrations > before and LOWER in sup.lowers, 30, "a new registration")
