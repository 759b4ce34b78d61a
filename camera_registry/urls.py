"""Camera source URLs: only rtsp:// and rtsps://, credentials split out, FFmpeg options safe; and
``gb28181://<device id>/<channel id>`` for channels of GB/T 28181 devices (never opened by FFmpeg:
the stream core hands them to the GB/T 28181 upstream).

FFmpeg accepts many protocols (``file:``, ``concat:``, ``pipe:``, ``http:`` ...) and follows
nested URLs; a camera URL must never reach any of them. Every FFmpeg open in the project passes
:data:`FFMPEG_PROTOCOL_WHITELIST` as well.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

__all__ = [
    "FFMPEG_PROTOCOL_WHITELIST",
    "GB28181_URL",
    "SourceUrl",
    "SourceUrlError",
    "parse_source_url",
    "same_origin",
    "with_credentials",
]

ALLOWED_SCHEMES = ("rtsp", "rtsps")
FFMPEG_PROTOCOL_WHITELIST = "rtsp,rtsps,rtp,srtp,udp,tcp,tls"
MAX_URL_LEN = 2048
GB28181_URL = re.compile(r"^gb28181://([0-9]{20})/([0-9]{20})$")
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$")
_UNSAFE = re.compile(r"[\x00-\x20\x7f|\\<>\"'`{}^]")


class SourceUrlError(ValueError):
    """A source URL that Liandong refuses; the message never contains the URL's credentials."""


@dataclass(frozen=True, slots=True)
class SourceUrl:
    """A validated camera source: the URL without credentials, and the credentials apart."""

    url: str
    username: str | None
    password: str | None

    @property
    def credentials(self) -> str | None:
        """``user:password`` for storage in the secret box (None when the URL had none)."""
        if self.username is None:
            return None
        return f"{self.username}:{self.password or ''}"


def parse_source_url(raw: str) -> SourceUrl:
    """Validate ``raw`` and split it into a credential-free URL and credentials.

    Raises :class:`SourceUrlError` with a message fit for an API reply.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise SourceUrlError("source_url: required")
    raw = raw.strip()
    if len(raw) > MAX_URL_LEN:
        raise SourceUrlError(f"source_url: longer than {MAX_URL_LEN} characters")
    scheme = raw.split(":", 1)[0].lower() if ":" in raw else ""
    if scheme == "gb28181":
        if not GB28181_URL.match(raw):
            raise SourceUrlError("source_url: must be of the form gb28181://<20-digit device id>/<20-digit channel id>")
        return SourceUrl(url=raw, username=None, password=None)
    if scheme not in ALLOWED_SCHEMES:
        shown = scheme if re.fullmatch(r"[a-z][a-z0-9+.-]{0,15}", scheme) else "?"
        raise SourceUrlError(f"source_url: scheme '{shown}' not allowed (only rtsp:// and rtsps://)")
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as e:
        raise SourceUrlError("source_url: malformed URL (bad host or port)") from e
    if not raw.lower().startswith(f"{scheme}://"):
        raise SourceUrlError("source_url: must be of the form rtsp://host[:port]/path")
    host = parts.hostname or ""
    if not host:
        raise SourceUrlError("source_url: host missing")
    if not _is_valid_host(host):
        raise SourceUrlError("source_url: invalid host")
    rest = parts.path + ("?" + parts.query if parts.query else "")
    if _UNSAFE.search(unquote(rest)) or parts.fragment:
        raise SourceUrlError("source_url: path contains characters that are not allowed")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        if not 1 <= port <= 65535:
            raise SourceUrlError("source_url: port out of range")
        netloc += f":{port}"
    clean = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    user = unquote(parts.username) if parts.username is not None else None
    pw = unquote(parts.password) if parts.password is not None else None
    if user is not None and (len(user) > 256 or len(pw or "") > 256):
        raise SourceUrlError("source_url: credentials too long")
    return SourceUrl(url=clean, username=user or None, password=pw if user else None)


def _is_valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOST_RE.match(host)) and len(host) <= 253


def with_credentials(url: str, credentials: str | None) -> str:
    """The URL FFmpeg opens: ``url`` with ``user:password`` put back. Never log or return it."""
    if not credentials:
        return url
    user, _, pw = credentials.partition(":")
    parts = urlsplit(url)
    netloc = f"{quote(user, safe='')}:{quote(pw, safe='')}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def same_origin(a: str, b: str) -> bool:
    """Whether two credential-free source URLs reach the same scheme, host and port.

    Stored credentials are only ever sent to the origin they were given for: a URL moved to
    another host without credentials gets none (they would otherwise leave to a host nobody
    vouched for).
    """
    pa, pb = urlsplit(a), urlsplit(b)
    default = {"rtsp": 554, "rtsps": 322}
    return (
        pa.scheme == pb.scheme
        and (pa.hostname or "").lower() == (pb.hostname or "").lower()
        and (pa.port or default.get(pa.scheme)) == (pb.port or default.get(pb.scheme))
    )
