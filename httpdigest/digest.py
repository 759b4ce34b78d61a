"""HTTP digest authentication (RFC 2617, MD5), as SIP (RFC 3261 22.4, GB/T 28181) and RTSP use it.

Both sides: a server issues single-use, expiring nonces (:class:`NonceStore`) and checks an
``Authorization`` header (:func:`verify`); a client answers a ``WWW-Authenticate`` challenge
(:func:`authorization`). Parsing is bounded and never raises on hostile input beyond
:class:`DigestError`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["DigestError", "NonceStore", "authorization", "challenge", "parse_params", "response", "verify"]

_PARAM = re.compile(r'\s*([A-Za-z-]{1,32})\s*=\s*(?:"([^"]{0,512})"|([^\s,"]{0,512}))\s*(?:,|$)')


class DigestError(ValueError):
    """A malformed or unsupported digest header."""


def _md5(s: str) -> str:
    return hashlib.md5(s.encode("utf-8"), usedforsecurity=False).hexdigest()


def parse_params(header: str) -> dict[str, str]:
    """The parameters of a ``Digest ...`` header, lower-cased names; raises :class:`DigestError`."""
    if len(header) > 2048:
        raise DigestError("digest header too long")
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError("not a Digest header")
    out: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            raise DigestError("malformed digest parameters")
        out[m.group(1).lower()] = m.group(2) if m.group(2) is not None else m.group(3)
        pos = m.end()
        if len(out) > 16:
            raise DigestError("too many digest parameters")
    return out


def response(
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    *,
    qop: str | None = None,
    nc: str = "",
    cnonce: str = "",
) -> str:
    """The ``response`` value: MD5(HA1:nonce[:nc:cnonce:qop]:HA2)."""
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    if qop:
        return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _md5(f"{ha1}:{nonce}:{ha2}")


def challenge(realm: str, nonce: str) -> str:
    """A ``WWW-Authenticate`` value (no qop: most devices in the field ignore or mishandle it)."""
    return f'Digest realm="{realm}",nonce="{nonce}",algorithm=MD5'


def authorization(www_authenticate: str, username: str, password: str, method: str, uri: str) -> str:
    """The client's ``Authorization`` value answering a challenge (qop=auth when offered)."""
    ch = parse_params(www_authenticate)
    realm, nonce = ch.get("realm", ""), ch.get("nonce", "")
    qop = "auth" if "auth" in [q.strip() for q in ch.get("qop", "").split(",")] else None
    cnonce = secrets.token_hex(8) if qop else ""
    nc = "00000001" if qop else ""
    resp = response(username, realm, password, method, uri, nonce, qop=qop, nc=nc, cnonce=cnonce)
    value = f'Digest username="{username}",realm="{realm}",nonce="{nonce}",uri="{uri}",response="{resp}",algorithm=MD5'
    if qop:
        value += f',qop={qop},nc={nc},cnonce="{cnonce}"'
    return value


class NonceStore:
    """Nonces this server handed out: each valid for ``ttl_s`` and for one successful use; at most
    ``capacity`` outstanding (the oldest forgotten first, so a flood cannot grow memory)."""

    def __init__(self, ttl_s: float = 60.0, capacity: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.capacity = capacity
        self._clock = clock
        self._issued: OrderedDict[str, float] = OrderedDict()

    def issue(self) -> str:
        """A fresh nonce."""
        nonce = secrets.token_hex(16)
        self._issued[nonce] = self._clock() + self.ttl_s
        while len(self._issued) > self.capacity:
            self._issued.popitem(last=False)
        return nonce

    def known(self, nonce: str) -> bool:
        """Issued, not used and not expired."""
        exp = self._issued.get(nonce)
        if exp is None:
            return False
        if exp < self._clock():
            del self._issued[nonce]
            return False
        return True

    def consume(self, nonce: str) -> None:
        """Mark a nonce used (a replay of it then fails)."""
        self._issued.pop(nonce, None)

    def __len__(self) -> int:
        return len(self._issued)


def verify(params: dict[str, str], method: str, password: str, realm: str) -> bool:
    """Whether the parsed ``Authorization`` parameters prove knowledge of ``password`` (constant-time
    compare). The nonce's validity is the caller's (:class:`NonceStore`)."""
    if params.get("algorithm", "MD5").upper() != "MD5":
        return False
    if params.get("realm") != realm:
        return False
    qop = params.get("qop")
    if qop not in (None, "auth"):
        return False
    expected = response(
        params.get("username", ""),
        realm,
        password,
        method,
        params.get("uri", ""),
        params.get("nonce", ""),
        qop=qop,
        nc=params.get("nc", ""),
        cnonce=params.get("cnonce", ""),
    )
    return hmac.compare_digest(expected, params.get("response", "").lower())
