"""Alarm sources and their HMAC-SHA256 request signatures.

A source signs ``<timestamp>.<body>`` with its secret and sends ``X-Liandong-Source: <name>``,
``X-Liandong-Timestamp: <unix seconds>`` and ``X-Liandong-Signature: sha256=<hex>``. Secrets are
stored encrypted (:mod:`storage.secretbox`), shown once when created or rotated, and never again.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Any

from sqlalchemy import select

from gateway.alarms.models import AlarmSource
from storage.db import Database, utcnow
from storage.secretbox import SecretBox

__all__ = ["NAME", "SignatureError", "SourceError", "SourceRegistry", "sign"]

NAME = re.compile(r"^[\w.-]{1,64}$")
_TIMESTAMP = re.compile(r"^\d{1,12}(\.\d{1,9})?$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class SignatureError(Exception):
    """The request is not signed by an active registered source (message safe to show)."""


class SourceError(ValueError):
    """Invalid source management input (message names the field)."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Liandong-Signature`` value for a request (for senders and tests)."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class SourceRegistry:
    """Registered alarm sources; verifies signatures."""

    def __init__(self, db: Database, box: SecretBox, window_s: float) -> None:
        self.db = db
        self.box = box
        self.window_s = window_s

    async def add(self, name: str) -> str:
        """Register a source; returns its secret (shown once)."""
        if not NAME.match(name):
            raise SourceError("name: 1-64 letters, digits, '.', '_' or '-'")
        secret = secrets.token_urlsafe(32)
        async with self.db.session() as s:
            if await s.get(AlarmSource, name) is not None:
                raise SourceError(f"name: source '{name}' exists (rotate its secret instead)")
            s.add(AlarmSource(name=name, secret_enc=self.box.encrypt(secret)))
        return secret

    async def rotate(self, name: str) -> str:
        """Give a source a new secret (the old one stops working at once)."""
        secret = secrets.token_urlsafe(32)
        async with self.db.session() as s:
            src = await s.get(AlarmSource, name)
            if src is None:
                raise LookupError(f"no source '{name}'")
            src.secret_enc = self.box.encrypt(secret)
            src.rotated_at = utcnow()
        return secret

    async def set_active(self, name: str, active: bool) -> None:
        """Switch a source off (its requests are refused) or on again."""
        async with self.db.session() as s:
            src = await s.get(AlarmSource, name)
            if src is None:
                raise LookupError(f"no source '{name}'")
            src.active = active

    async def list(self) -> list[dict[str, Any]]:
        """Registered sources (never their secrets)."""
        async with self.db.session() as s:
            rows = (await s.execute(select(AlarmSource).order_by(AlarmSource.name))).scalars()
            return [
                {
                    "name": r.name,
                    "active": r.active,
                    "created_at": r.created_at.isoformat(),
                    "rotated_at": r.rotated_at.isoformat() if r.rotated_at else None,
                }
                for r in rows
            ]

    async def verify(self, source: str, timestamp: str, signature: str, body: bytes, now: float | None = None) -> str:
        """Check the signature of a request; returns the source name or raises :class:`SignatureError`."""
        now = time.time() if now is None else now
        if not _TIMESTAMP.match(timestamp):
            raise SignatureError("X-Liandong-Timestamp: unix seconds required")
        if abs(now - float(timestamp)) > self.window_s:
            raise SignatureError("X-Liandong-Timestamp: outside the accepted window")
        given = signature.removeprefix("sha256=").lower()
        if not signature.startswith("sha256=") or not _HEX64.match(given):
            raise SignatureError("X-Liandong-Signature: must be sha256=<64 hex digits>")
        src = None
        if NAME.match(source):
            async with self.db.session() as s:
                src = await s.get(AlarmSource, source)
        ok = src is not None and src.active
        # The same work whether or not the source exists, so timing does not reveal source names.
        secret = self.box.decrypt(src.secret_enc) if src is not None and ok else secrets.token_urlsafe(32)
        expected = sign(secret, timestamp, body).removeprefix("sha256=")
        if not hmac.compare_digest(expected, given) or not ok:
            raise SignatureError("signature does not match an active registered source")
        return source
