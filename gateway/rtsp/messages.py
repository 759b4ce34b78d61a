"""RTSP/1.0 messages (RFC 2326): requests read, responses written, and the few header values the
server understands (Digest answers, transports, camera URLs)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from acl.digest import DigestAnswer
from httpdigest import digest

__all__ = [
    "BadRequest",
    "CameraPath",
    "Request",
    "Transport",
    "parse_authorization",
    "parse_camera_path",
    "parse_request",
    "parse_transport",
    "response",
]

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    453: "Not Enough Bandwidth",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "RTSP Version Not Supported",
}
_CAMERA_ID = re.compile(r"^[\w.:-]{1,64}$")  # the registry's camera ids


class BadRequest(Exception):
    """A request the server cannot read: answered with ``status`` (400 unless said) and closed."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class Request:
    """One RTSP request."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes = b""

    @property
    def cseq(self) -> str:
        """The request's sequence number, echoed in the response."""
        return self.headers.get("cseq", "0")

    def header(self, name: str) -> str | None:
        """A header's value (names are case-insensitive)."""
        return self.headers.get(name.lower())


def parse_request(head: bytes) -> Request:
    """A request's line and headers (without its body); :class:`BadRequest` when malformed."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("request is not UTF-8") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or len(parts[0]) > 32:
        raise BadRequest("malformed request line")
    method, url, version = parts
    if version != "RTSP/1.0":
        raise BadRequest("only RTSP/1.0 is spoken", 505)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or len(headers) >= 64:
            raise BadRequest("malformed or too many headers")
        headers[name.strip().lower()] = value.strip()
    return Request(method.upper(), url, headers)


def response(status: int, cseq: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """A response, with its ``CSeq`` and (when there is a body) ``Content-Length``."""
    lines = [f"RTSP/1.0 {status} {REASONS.get(status, 'Error')}", f"CSeq: {cseq[:16]}", "Server: Liandong"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def parse_authorization(value: str | None) -> DigestAnswer | None:
    """The Digest answer in an ``Authorization`` header, or None (absent, another scheme, malformed,
    incomplete). Parsed by :func:`httpdigest.digest.parse_params`, as SIP's are."""
    if not value:
        return None
    try:
        params = digest.parse_params(value)
    except digest.DigestError:
        return None
    try:
        return DigestAnswer(
            username=params["username"],
            realm=params["realm"],
            nonce=params["nonce"],
            uri=params["uri"],
            response=params["response"],
            qop=params.get("qop"),
            nc=params.get("nc"),
            cnonce=params.get("cnonce"),
        )
    except KeyError:
        return None


@dataclass(frozen=True, slots=True)
class CameraPath:
    """What a request URL names: a camera, its sub stream or not, and whether it is the track's control URL."""

    camera_id: str
    sub: bool
    track: bool


def parse_camera_path(url: str) -> CameraPath | None:
    """``rtsp://host:port/cameras/{id}[/sub][/trackID=0]`` (a trailing slash allowed), else None."""
    try:
        path = urlsplit(url).path if "://" in url else url
    except ValueError:
        return None
    parts = [p for p in path.split("/") if p]
    track = bool(parts) and parts[-1] == "trackID=0"
    if track:
        parts = parts[:-1]
    sub = len(parts) == 3 and parts[2] == "sub"
    if len(parts) not in (2, 3) or parts[0] != "cameras" or (len(parts) == 3 and not sub):
        return None
    camera_id = unquote(parts[1])
    if not _CAMERA_ID.match(camera_id):
        return None
    return CameraPath(camera_id, sub, track)


@dataclass(slots=True)
class Transport:
    """A client's chosen transport: TCP interleaved channels, or its UDP ports."""

    tcp: bool
    interleaved: tuple[int, int] = (0, 1)
    client_ports: tuple[int, int] = (0, 0)
    extra: dict[str, str] = field(default_factory=dict)


def _pair(value: str) -> tuple[int, int]:
    a, _, b = value.partition("-")
    lo = int(a)
    hi = int(b) if b else lo + 1
    if not (0 <= lo <= 65535 and 0 <= hi <= 65535):
        raise ValueError(value)
    return lo, hi


def parse_transport(value: str | None) -> Transport | None:
    """The first unicast RTP/AVP transport of a ``Transport`` header the server can serve, else None
    (multicast, other profiles, a destination other than the client are not served)."""
    for spec in (value or "").split(","):
        parts = [p.strip() for p in spec.split(";") if p.strip()]
        if not parts:
            continue
        proto = parts[0].upper()
        params = {k: v for k, _, v in (p.partition("=") for p in parts[1:])}
        if "multicast" in params or "destination" in params:
            continue
        try:
            if proto == "RTP/AVP/TCP":
                return Transport(True, _pair(params.get("interleaved", "0-1")))
            if proto in ("RTP/AVP", "RTP/AVP/UDP") and "client_port" in params:
                return Transport(False, client_ports=_pair(params["client_port"]))
        except ValueError:
            continue
    return None
