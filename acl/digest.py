"""RTSP Digest credentials (``Kind.rtsp_digest``): a password derived from one login, checked the
RFC 2617 way.

Digest needs the server to know each password (or ``MD5(user:realm:password)``), which the argon2
hashes of people's passwords cannot give. So an RTSP password is never stored: it is an HMAC of
the login's id under a key derived from the data dir's master key, handed out once to the holder
of that login (``POST /api/auth/rtsp-credential``). The server recomputes it for each of the
user's live logins when a request arrives; it lives and dies with its login (logout, revocation,
a password or role change, deactivation, expiry), like every other credential derived from one.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from acl.models import ApiToken, Role, TokenKind, User
from httpdigest import digest
from storage.db import utcnow

__all__ = ["DigestAnswer", "DigestLogin", "DigestPasswords", "digest_response"]

# A user's live logins tried per request at most (newest first): keeps one request's work bounded.
MAX_LOGINS_TRIED = 64


@dataclass(frozen=True, slots=True)
class DigestAnswer:
    """The fields of an ``Authorization: Digest`` header the check needs."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None


def digest_response(password: str, method: str, answer: DigestAnswer) -> str:
    """The response a client with ``password`` computes (RFC 2617, MD5; with or without ``qop=auth``)."""
    return digest.response(
        answer.username,
        answer.realm,
        password,
        method,
        answer.uri,
        answer.nonce,
        qop=answer.qop,
        nc=answer.nc or "",
        cnonce=answer.cnonce or "",
    )


@dataclass(frozen=True, slots=True)
class DigestLogin:
    """A login whose derived password answered a Digest challenge."""

    user: User
    token_id: int
    expires_at: dt.datetime | None


class DigestPasswords:
    """Derives RTSP passwords from logins and finds the login a Digest answer was made with."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def password_for(self, token_id: int) -> str:
        """The RTSP password of login ``token_id`` (the same every time: it is derived, not stored)."""
        mac = hmac.new(self._key, f"rtsp-digest:{token_id}".encode(), hashlib.sha256).digest()
        return base64.b32encode(mac[:15]).decode("ascii").lower()

    async def find(self, s: AsyncSession, method: str, answer: DigestAnswer) -> DigestLogin | None:
        """The live login of an active user whose password gives ``answer``'s response, else None.

        Machine tokens count only for integration accounts (the rule every machine token obeys)."""
        if len(answer.username) > 64 or len(answer.response) != 32:
            return None
        user = (await s.execute(select(User).where(User.username == answer.username))).scalar_one_or_none()
        if user is None or not user.active:
            return None
        now = utcnow()
        kinds = [TokenKind.session] + ([TokenKind.machine] if user.role is Role.integration else [])
        rows = (
            await s.execute(
                select(ApiToken.id, ApiToken.expires_at)
                .where(
                    ApiToken.user_id == user.id,
                    ApiToken.revoked_at.is_(None),
                    ApiToken.kind.in_(kinds),
                    or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
                )
                .order_by(ApiToken.id.desc())
                .limit(MAX_LOGINS_TRIED)
            )
        ).all()
        want = answer.response.lower()
        for token_id, expires_at in rows:
            if hmac.compare_digest(digest_response(self.password_for(token_id), method, answer), want):
                return DigestLogin(user, token_id, expires_at)
        return None
