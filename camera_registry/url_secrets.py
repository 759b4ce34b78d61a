"""Credentials written into a camera URL's path or query, kept like the ``user:password@`` ones.

Many DVRs and NVRs take their login in the URL itself: ``?user=admin&password=x``,
``?username=admin&pwd=x``, ``/user=admin_password=x_channel=1_stream=0.sdp``, ``;auth=...``. Such
values are masked (:data:`MASK`) in the stored URL, which admins see, and kept in the secret box
next to the ``user:password`` of the URL's userinfo (:class:`CameraSecrets`); only the URL FFmpeg
opens (:meth:`CameraSecrets.open_url`) carries them again.

Editing works as for userinfo credentials: a URL given with :data:`MASK` where a value was (the URL
as admins see it) keeps the stored value when it points at the same origin, and a new value
replaces it. The log formatter masks the same parameters in any URL it prints (:func:`mask_in_url`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from camera_registry.urls import with_credentials

__all__ = ["MASK", "SECRET_KEYS", "CameraSecrets", "mask_in_url", "merge_secrets"]

MASK = "***"
# Parameter names that carry a login or a key (lower case), as DVR and NVR makers spell them.
SECRET_KEYS = (
    "user",
    "username",
    "usr",
    "uname",
    "login",
    "loginuse",
    "account",
    "password",
    "passwd",
    "pass",
    "pwd",
    "pw",
    "psw",
    "loginpas",
    "secret",
    "auth",
    "token",
    "access_token",
    "apikey",
    "api_key",
)
# ``key=value`` after a separator; the value ends at the next separator, or at ``_name=`` (the
# ``/user=admin_password=x_channel=1`` form; an underscore followed by anything else is part of it).
# Quotes, backslashes and angle brackets end it too: never in a stored URL (``urls._UNSAFE``), they
# are what surrounds a URL in a log line or a JSON string.
_PARAM = re.compile(
    r"(?i)(?<![A-Za-z0-9])(?P<key>" + "|".join(sorted(SECRET_KEYS, key=len, reverse=True)) + r")="
    r"(?P<value>[^&;/?#\s\"'`<>\\]*?)(?=_[A-Za-z][A-Za-z0-9.-]*=|[&;/?#\s\"'`<>\\]|$)"
)
_V2 = ":v2:"  # an old entry is "user:password" with a non-empty user: it never starts with ':'

Param = tuple[str, str]
_Repl = Callable[[re.Match[str]], str]


@dataclass(frozen=True, slots=True)
class CameraSecrets:
    """What the secret box holds for a camera: the userinfo and the values masked in the URL."""

    userinfo: str | None = None  # "user:password"
    params: tuple[Param, ...] = ()  # (lower-case key, value as written), in URL order

    def __bool__(self) -> bool:
        return bool(self.userinfo or self.params)

    def dumps(self) -> str:
        """The text to encrypt; only userinfo keeps the original ``user:password`` form."""
        if not self.params:
            return self.userinfo or ""
        return _V2 + json.dumps({"userinfo": self.userinfo, "params": [list(p) for p in self.params]})

    @classmethod
    def loads(cls, text: str | None) -> CameraSecrets:
        """Read what :meth:`dumps` wrote (or a ``user:password`` stored before URL parameters were kept)."""
        if not text:
            return cls()
        if not text.startswith(_V2):
            return cls(userinfo=text)
        doc = json.loads(text[len(_V2) :])
        return cls(doc.get("userinfo"), tuple((str(k), str(v)) for k, v in doc.get("params", [])))

    def open_url(self, url: str) -> str:
        """The URL FFmpeg opens: masked values and the userinfo put back. Never log or return it."""
        left = list(self.params)

        def fill(m: re.Match[str]) -> str:
            if m["value"] != MASK:
                return m[0]
            key = m["key"].lower()
            i = next((i for i, (k, _) in enumerate(left) if k == key), None)
            if i is None:
                return m[0]
            return f"{m['key']}={left.pop(i)[1]}"

        return with_credentials(_sub_after_host(url, fill), self.userinfo)


def merge_secrets(url: str, userinfo: str | None, old: CameraSecrets, keep_old: bool) -> tuple[str, CameraSecrets]:
    """(the URL to store, the secrets to store) for a credential-free ``url`` given on input.

    New values are masked and kept; a :data:`MASK` on input takes the stored value of the same key
    (the n-th ``password`` the n-th one) when ``keep_old`` (same origin, not cleared), else it
    becomes an empty value. ``userinfo`` (the URL's own, if any) replaces the stored one; without
    it the stored one is kept when ``keep_old``.
    """
    stored: dict[str, list[str]] = {}
    if keep_old:
        for k, v in old.params:
            stored.setdefault(k, []).append(v)
    params: list[Param] = []

    def take(m: re.Match[str]) -> str:
        key, value = m["key"].lower(), m["value"]
        if value == MASK:
            kept = stored.get(key)
            if not kept:
                return f"{m['key']}="
            value = kept.pop(0)
        elif not value:
            return m[0]
        params.append((key, value))
        return f"{m['key']}={MASK}"

    masked = _sub_after_host(url, take)
    return masked, CameraSecrets(userinfo or (old.userinfo if keep_old else None), tuple(params))


def mask_in_url(text: str) -> str:
    """``text`` (one URL, for logs) with every credential parameter's value replaced by :data:`MASK`."""
    return _sub_after_host(text, lambda m: f"{m['key']}={MASK}" if m["value"] else m[0])


def _sub_after_host(url: str, repl: _Repl) -> str:
    """Apply ``repl`` to the parameters after ``scheme://host[:port]`` (a host name is no parameter)."""
    start = url.find("://")
    slash = url.find("/", start + 3) if start >= 0 else -1
    if slash < 0:
        return url
    return url[:slash] + _PARAM.sub(repl, url[slash:])
