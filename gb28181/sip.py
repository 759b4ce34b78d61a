"""SIP messages (RFC 3261) as GB/T 28181 uses them: a small parser, strict in what it writes and
tolerant in what it reads, with hard bounds on everything a hostile peer controls.

Reusable by anything that speaks SIP here (a device side, a cascade to an upper platform): it
knows nothing of registration or media. :func:`parse` reads one datagram; :class:`StreamParser`
cuts messages out of a TCP byte stream (``Content-Length`` framing, CRLF keep-alives skipped);
:class:`SipMessage` writes itself with a correct ``Content-Length`` and canonical header names.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "MAX_BODY",
    "MAX_HEADERS",
    "MAX_MESSAGE",
    "SipMessage",
    "SipParseError",
    "StreamParser",
    "new_branch",
    "new_tag",
    "param",
    "parse",
    "uri_user",
]

MAX_MESSAGE = 64 * 1024  # a catalog page fits in a few KiB; nothing legitimate comes near this
MAX_HEADERS = 64
MAX_BODY = 48 * 1024
_MAX_LINE = 4096
_METHOD = re.compile(rb"^[A-Z]{2,16}$")
_TOKEN_NAME = re.compile(rb"^[A-Za-z0-9!%*_+`'~.-]{1,64}$")
_COMPACT = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
}
# Canonical spellings of the headers we write or read (anything else: each word capitalised).
_CANON = {
    n.lower(): n
    for n in (
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Content-Length",
        "Content-Type",
        "Max-Forwards",
        "Expires",
        "WWW-Authenticate",
        "Authorization",
        "User-Agent",
        "Subject",
        "Date",
        "Allow",
        "Supported",
    )
}


class SipParseError(ValueError):
    """A message that is not SIP, or breaks a bound; the message names the rule, never the content."""


def _canon(name: str) -> str:
    low = name.lower()
    if low in _COMPACT:
        return _COMPACT[low]
    return _CANON.get(low) or "-".join(w.capitalize() for w in name.split("-"))


@dataclass
class SipMessage:
    """A request (``method`` and ``uri`` set) or a response (``status`` and ``reason`` set)."""

    method: str | None = None
    uri: str | None = None
    status: int | None = None
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        """A request (not a response)."""
        return self.method is not None

    def get(self, name: str) -> str | None:
        """The first value of a header (compact forms and case folded), or None."""
        want = _canon(name)
        for n, v in self.headers:
            if n == want:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        """Every value of a header, in order."""
        want = _canon(name)
        return [v for n, v in self.headers if n == want]

    def set(self, name: str, value: str) -> None:
        """Replace every value of a header by one."""
        want = _canon(name)
        self.headers = [(n, v) for n, v in self.headers if n != want]
        self.headers.append((want, value))

    def add(self, name: str, value: str) -> None:
        """Append a header value."""
        self.headers.append((_canon(name), value))

    @property
    def call_id(self) -> str:
        """``Call-ID`` (empty when missing)."""
        return self.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        """(number, method) of ``CSeq``; raises :class:`SipParseError` when malformed."""
        raw = (self.get("CSeq") or "").split()
        if len(raw) != 2 or not raw[0].isdigit() or len(raw[0]) > 10:
            raise SipParseError("bad CSeq")
        return int(raw[0]), raw[1].upper()

    def encode(self) -> bytes:
        """The message on the wire: CRLF line ends, ``Content-Length`` always written and true."""
        if self.is_request:
            start = f"{self.method} {self.uri} SIP/2.0"
        else:
            start = f"SIP/2.0 {self.status} {self.reason}"
        lines = [start]
        for n, v in self.headers:
            if n == "Content-Length":
                continue
            if "\r" in v or "\n" in v:
                raise ValueError(f"header {n}: line break in value")
            lines.append(f"{n}: {v}")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body

    def response(self, status: int, reason: str, *, to_tag: str | None = None, body: bytes = b"") -> SipMessage:
        """A response to this request: Via, From, To (with ``to_tag`` added when it has none), Call-ID
        and CSeq copied as RFC 3261 8.2.6 says."""
        r = SipMessage(status=status, reason=reason, body=body)
        for n in ("Via", "From", "To", "Call-ID", "CSeq"):
            for v in self.get_all(n):
                if n == "To" and to_tag and param(v, "tag") is None:
                    v = f"{v};tag={to_tag}"
                r.add(n, v)
        return r


def param(header_value: str, name: str) -> str | None:
    """A ``;name=value`` parameter of a header value (outside its ``<...>`` URI), unquoted."""
    if ">" in header_value:  # name-addr: parameters follow the closing bracket
        parts = header_value.rsplit(">", 1)[1].split(";")
    else:  # a Via or bare URI: parameters follow the first ';'
        parts = header_value.split(";")[1:]
    for part in parts:
        k, _, v = part.strip().partition("=")
        if k.strip().lower() == name.lower():
            return v.strip().strip('"')
    return None


def uri_user(value: str) -> str | None:
    """The user part of the first ``sip:user@host`` URI in a header value or request URI."""
    m = re.search(r"sips?:([^@;>\s]{1,64})@", value)
    return m.group(1) if m else None


def new_tag() -> str:
    """A fresh From/To tag."""
    return secrets.token_hex(6)


def new_branch() -> str:
    """A fresh Via branch (RFC 3261 magic cookie)."""
    return "z9hG4bK" + secrets.token_hex(8)


def _split_head(data: bytes) -> tuple[bytes, bytes] | None:
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = data.find(sep)
        if i >= 0:
            return data[:i], data[i + len(sep) :]
    return None


def _parse_head(head: bytes) -> SipMessage:
    lines = re.split(rb"\r?\n", head)
    start = lines[0].strip()
    if len(start) > _MAX_LINE:
        raise SipParseError("start line too long")
    msg = SipMessage()
    if start.startswith(b"SIP/2.0 "):
        parts = start.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) != 3:
            raise SipParseError("bad status line")
        msg.status = int(parts[1])
        if not 100 <= msg.status <= 699:
            raise SipParseError("bad status code")
        msg.reason = parts[2].decode("utf-8", "replace") if len(parts) > 2 else ""
    else:
        parts = start.split(b" ")
        if len(parts) != 3 or parts[2].upper() != b"SIP/2.0" or not _METHOD.match(parts[0]):
            raise SipParseError("bad request line")
        msg.method = parts[0].decode()
        try:
            msg.uri = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise SipParseError("bad request URI") from None
        if not msg.uri.lower().startswith(("sip:", "sips:")):
            raise SipParseError("bad request URI")
    count = 0
    for raw in lines[1:]:
        if len(raw) > _MAX_LINE:
            raise SipParseError("header line too long")
        if b"\r" in raw or b"\x00" in raw:  # a bare CR would become a line break when we write it
            raise SipParseError("bare CR or NUL in a header")
        if raw[:1] in (b" ", b"\t") and msg.headers:  # folded continuation (tolerated)
            n, v = msg.headers[-1]
            msg.headers[-1] = (n, v + " " + raw.strip().decode("utf-8", "replace"))
            continue
        if not raw.strip():
            continue
        name, sep, value = raw.partition(b":")
        name = name.strip()
        if not sep or not _TOKEN_NAME.match(name):
            raise SipParseError("bad header line")
        count += 1
        if count > MAX_HEADERS:
            raise SipParseError("too many headers")
        msg.headers.append((_canon(name.decode()), value.strip().decode("utf-8", "replace")))
    for required in ("Via", "From", "To", "Call-ID", "CSeq"):
        if msg.get(required) is None:
            raise SipParseError(f"{required} missing")
    msg.cseq  # noqa: B018 - validates CSeq
    return msg


def _content_length(msg: SipMessage) -> int | None:
    raw = msg.get("Content-Length")
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 6:
        raise SipParseError("bad Content-Length")
    n = int(raw)
    if n > MAX_BODY:
        raise SipParseError("body too large")
    return n


def parse(data: bytes) -> SipMessage:
    """One SIP message from a datagram. A missing ``Content-Length`` means "the rest" (UDP, RFC 3261
    18.3); a body shorter than it claims is an error, bytes beyond it are ignored."""
    if len(data) > MAX_MESSAGE:
        raise SipParseError("message too large")
    split = _split_head(data)
    if split is None:
        raise SipParseError("no end of headers")
    head, rest = split
    msg = _parse_head(head)
    n = _content_length(msg)
    if n is None:
        if len(rest) > MAX_BODY:
            raise SipParseError("body too large")
        msg.body = rest
    else:
        if len(rest) < n:
            raise SipParseError("body shorter than Content-Length")
        msg.body = rest[:n]
    return msg


class StreamParser:
    """Messages out of a TCP byte stream; every message must carry ``Content-Length`` (RFC 3261 18.3).

    Raises :class:`SipParseError` on a message it cannot frame: the caller closes the connection.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[SipMessage]:
        """Add received bytes; yield each complete message."""
        self._buf += data
        while True:
            while self._buf[:2] == b"\r\n" or self._buf[:1] == b"\n":  # keep-alive CRLFs between messages
                del self._buf[: 2 if self._buf[:2] == b"\r\n" else 1]
            split = _split_head(bytes(self._buf[:MAX_MESSAGE]))
            if split is None:
                if len(self._buf) > MAX_MESSAGE:
                    raise SipParseError("message too large")
                return
            head, _ = split
            msg = _parse_head(head)
            n = _content_length(msg)
            if n is None:
                raise SipParseError("Content-Length missing on a stream")
            head_len = len(head) + (4 if self._buf[len(head) : len(head) + 4] == b"\r\n\r\n" else 2)
            if len(self._buf) < head_len + n:
                if head_len + n > MAX_MESSAGE:
                    raise SipParseError("message too large")
                return
            msg.body = bytes(self._buf[head_len : head_len + n])
            del self._buf[: head_len + n]
            yield msg
