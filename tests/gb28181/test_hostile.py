"""Hostile SIP against the real endpoint (UDP and TCP on loopback, a fake registry): floods, replayed
nonces, oversized and malformed messages, XML entities, a catalog far beyond the bound. Each is
refused or bounded and counted; the endpoint keeps answering others."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from fixtures.camera_server import free_port
from gb28181 import manscdp
from gb28181.manscdp import CatalogItem
from gb28181.server import Gb28181Server
from gb28181.settings import Gb28181Settings
from gb28181.sip import SipMessage, new_branch, parse
from httpdigest import digest

DEV = "34020000001320000009"
OTHER = "34020000001320000010"
PASSWORD = "pw"


class FakeDirectory:
    def __init__(self) -> None:
        self.catalogs: list[list[CatalogItem]] = []
        self.states: list[tuple[str, bool]] = []

    async def accepted(self, device_id: str) -> bool:
        return device_id in (DEV, OTHER)

    async def catalog(self, device_id: str, items: list[CatalogItem]) -> None:
        self.catalogs.append(items)

    async def device_state(self, device_id: str, online: bool, reason: str) -> None:
        self.states.append((device_id, online))


@pytest_asyncio.fixture
async def endpoint() -> AsyncIterator[tuple[Gb28181Server, FakeDirectory]]:
    s = Gb28181Settings(
        enabled=True, sip_port=free_port(), password=PASSWORD, register_rate_per_s=5, catalog_max_channels=50,
        transaction_timeout_s=1,
    )  # fmt: skip
    d = FakeDirectory()
    server = Gb28181Server(s, d)
    await server.start()
    try:
        yield server, d
    finally:
        await server.stop()


class Client:
    """A raw UDP SIP client (no retransmissions: what a script kiddie sends)."""

    def __init__(self, server: Gb28181Server, device_id: str) -> None:
        self.addr = ("127.0.0.1", server.settings.sip_port)
        self.device_id = device_id
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.cseq = 0

    def request(self, method: str, body: bytes = b"", auth: str | None = None) -> SipMessage:
        self.cseq += 1
        m = SipMessage(method=method, uri="sip:34020000002000000001@3402000000", body=body)
        m.add("Via", f"SIP/2.0/UDP 10.9.9.9:5060;rport;branch={new_branch()}")
        m.add("From", f"<sip:{self.device_id}@3402000000>;tag=x")
        m.add("To", f"<sip:{self.device_id}@3402000000>")
        m.add("Call-ID", f"c-{self.device_id}")
        m.add("CSeq", f"{self.cseq} {method}")
        if auth:
            m.add("Authorization", auth)
        if body:
            m.add("Content-Type", "Application/MANSCDP+xml")
        return m

    async def send(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendto(self.sock, data, self.addr)

    async def ask(self, msg: SipMessage) -> SipMessage:
        await self.send(msg.encode())
        while True:  # the platform's own requests (catalog queries) come in between: skip them
            data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(self.sock, 65536), 5)
            got = parse(data)
            if not got.is_request and got.cseq[0] == msg.cseq[0] and got.call_id == msg.call_id:
                return got

    async def register(self, password: str = PASSWORD) -> tuple[SipMessage, str]:
        challenge = await self.ask(self.request("REGISTER"))
        assert challenge.status == 401
        uri = "sip:34020000002000000001@3402000000"
        auth = digest.authorization(challenge.get("WWW-Authenticate") or "", self.device_id, password, "REGISTER", uri)
        return await self.ask(self.request("REGISTER", auth=auth)), auth


async def test_replayed_nonce_is_refused_and_reply_goes_to_the_real_source(endpoint: tuple) -> None:
    server, _ = endpoint
    c = Client(server, DEV)
    ok, auth = await c.register()
    assert ok.status == 200
    # The reply reached our socket although Via named 10.9.9.9; it says where we really are.
    assert "received=127.0.0.1" in (ok.get("Via") or "")
    again = await c.ask(c.request("REGISTER", auth=auth))
    assert again.status == 401 and "stale=true" in (again.get("WWW-Authenticate") or "")
    assert server.counters.stale_nonce == 1
    bye = await c.ask(c.request("REGISTER", auth=digest.authorization(
        again.get("WWW-Authenticate") or "", DEV, PASSWORD, "REGISTER", "sip:34020000002000000001@3402000000")
    ))  # fmt: skip
    assert bye.status == 200


async def test_register_flood_from_one_address_is_bounded(endpoint: tuple) -> None:
    server, _ = endpoint
    flood = Client(server, DEV)
    for _ in range(200):
        await flood.send(flood.request("REGISTER").encode())
    await asyncio.sleep(0.3)
    assert server.counters.rate_limited >= 150
    assert len(server.nonces) <= 10  # no work, no state for what was dropped


async def test_garbage_oversized_and_entities_are_counted_and_the_endpoint_keeps_answering(endpoint: tuple) -> None:
    server, _ = endpoint
    c = Client(server, OTHER)
    await c.send(b"\x00" * 60_000)
    await c.send(b"INVITE sip:x SIP/2.0\r\n\r\n")
    ok, _ = await c.register()
    assert ok.status == 200
    bomb = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">]><Response>&a;</Response>'
    refused = await c.ask(c.request("MESSAGE", bomb))
    assert refused.status == 400
    assert server.counters.malformed >= 2 and server.counters.refused_body == 1
    # TCP: a head that never ends is cut off at the bound.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.settings.sip_port)
    writer.write(b"REGISTER sip:a@b SIP/2.0\r\nX: " + b"a" * 70_000)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the endpoint
    writer.close()
    assert (await c.register())[0].status == 200


async def test_a_catalog_of_100000_channels_is_bounded(endpoint: tuple) -> None:
    server, d = endpoint
    c = Client(server, OTHER)
    ok, _ = await c.register()
    assert ok.status == 200
    for page in range(20):
        items = "".join(
            f"<Item><DeviceID>3402000000131{page * 10 + i:07d}</DeviceID><Name>n</Name><Status>ON</Status></Item>"
            for i in range(10)
        )
        fields = f'<SumNum>100000</SumNum><DeviceList Num="10">{items}</DeviceList>'
        reply = await c.ask(c.request("MESSAGE", manscdp.build("Response", "Catalog", 1, OTHER, fields)))
        assert reply.status == 200
    assert d.catalogs and max(len(cat) for cat in d.catalogs) == 50
    assert len(server.devices[OTHER].catalog) == 50


@pytest.mark.parametrize("password", ["wrong"])
async def test_wrong_password_is_refused_and_counted(endpoint: tuple, password: str) -> None:
    server, _ = endpoint
    refused, _ = await Client(server, DEV).register(password)
    assert refused.status == 403 and server.counters.auth_failed == 1
    assert DEV not in server.devices
