"""A small RTSP client for tests: requests with Digest, and RTP read over TCP (interleaved).

The real players (ffprobe, ffmpeg, PyAV, GStreamer) play in the tests too; this one lets a test
see status codes, headers and the moment a connection is closed."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from acl.digest import DigestAnswer, digest_response


@dataclass
class Reply:
    """An RTSP response."""

    status: int
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class RtspTestClient:
    """One connection to an RTSP server."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    username: str | None = None
    password: str | None = None
    cseq: int = 0
    challenge: dict[str, str] = field(default_factory=dict)

    @classmethod
    async def connect(
        cls, host: str, port: int, username: str | None = None, password: str | None = None
    ) -> RtspTestClient:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, username, password)

    def _authorization(self, method: str, url: str) -> str | None:
        if not self.challenge or self.username is None or self.password is None:
            return None
        a = DigestAnswer(self.username, self.challenge["realm"], self.challenge["nonce"], url, "")
        resp = digest_response(self.password, method, a)
        return f'Digest username="{a.username}", realm="{a.realm}", nonce="{a.nonce}", uri="{url}", response="{resp}"'

    async def request(self, method: str, url: str, headers: dict[str, str] | None = None) -> Reply:
        """Send a request (answering a Digest challenge once, as players do) and read the response."""
        reply = await self._once(method, url, headers or {})
        if reply.status == 401 and self.username is not None and "www-authenticate" in reply.headers:
            self.challenge = dict(re.findall(r'(\w+)="([^"]*)"', reply.headers["www-authenticate"]))
            reply = await self._once(method, url, headers or {})
        return reply

    async def _once(self, method: str, url: str, headers: dict[str, str]) -> Reply:
        self.cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}"]
        auth = self._authorization(method, url)
        if auth:
            lines.append(f"Authorization: {auth}")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()
        return await self.read_reply()

    async def read_reply(self) -> Reply:
        """The next response (interleaved data before it is skipped)."""
        while True:
            first = await self.reader.readexactly(1)
            if first == b"$":
                head = await self.reader.readexactly(3)
                await self.reader.readexactly(int.from_bytes(head[1:], "big"))
                continue
            head = first + await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            status = int(lines[0].split(" ")[1])
            hdrs = {}
            for line in lines[1:]:
                if ":" in line:
                    k, _, v = line.partition(":")
                    hdrs[k.strip().lower()] = v.strip()
            body = b""
            if "content-length" in hdrs:
                body = await self.reader.readexactly(int(hdrs["content-length"]))
            return Reply(status, hdrs, body)

    async def play_tcp(self, url: str) -> Reply:
        """DESCRIBE, SETUP over TCP interleaved, PLAY; the PLAY response."""
        r = await self.request("DESCRIBE", url, {"Accept": "application/sdp"})
        assert r.status == 200, r
        r = await self.request("SETUP", url + "/trackID=0", {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
        assert r.status == 200, r
        session = r.headers["session"].split(";")[0]
        r = await self.request("PLAY", url, {"Session": session})
        assert r.status == 200, r
        return r

    async def rtp(self) -> tuple[int, bytes]:
        """The next interleaved frame: its channel and payload; EOF raises IncompleteReadError."""
        while True:
            first = await self.reader.readexactly(1)
            if first != b"$":
                await self.reader.readuntil(b"\r\n\r\n")
                continue
            head = await self.reader.readexactly(3)
            return head[0], await self.reader.readexactly(int.from_bytes(head[1:], "big"))

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
