"""Who is calling: bearer tokens, browser session cookies (with CSRF) and signed stream tokens."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request, status

from acl.identity import StreamTokens, Subject, TokenService
from acl.models import ApiToken, User
from storage.db import Database

__all__ = ["CSRF_HEADER", "Authenticator"]

log = logging.getLogger(__name__)
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Unsafe routes that also take a stream token: a WHEP offer redirected to the node pulling the camera
# (it grants no more than HLS with the same token does).
_STREAM_TOKEN_POSTS = frozenset({"/api/cameras/{camera_id}/whep"})

DepartmentsOf = Callable[[User], Awaitable[frozenset[str]]]


async def _no_departments(_user: User) -> frozenset[str]:
    return frozenset()


class Authenticator:
    """Resolves a request to a :class:`Subject`, or None when it carries no valid credentials."""

    def __init__(
        self,
        db: Database,
        tokens: TokenService,
        stream_tokens: StreamTokens,
        cookie_name: str,
        departments_of: DepartmentsOf = _no_departments,
    ) -> None:
        self.db = db
        self.tokens = tokens
        self.stream_tokens = stream_tokens
        self.cookie_name = cookie_name
        self.departments_of = departments_of
        # Resolves an HLS session key (``?s=``) to the subject that opened it (set by the HLS service).
        self.session_key_subject: Callable[[str, str], Subject | None] | None = None

    async def _subject(self, user: User, token_id: int | None) -> Subject:
        return Subject(
            user_id=user.id,
            username=user.username,
            role=user.role,
            departments=await self.departments_of(user),
            token_id=token_id,
        )

    async def authenticate(self, request: Request) -> Subject | None:
        """Bearer header first, then the session cookie (CSRF-checked on unsafe methods), then a
        stream token (``?token=``) or an HLS session key (``?s=``) on routes with a ``camera_id``."""
        cached = getattr(request.state, "subject", None)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        subject = await self._authenticate(request)
        request.state.subject = subject
        return subject

    async def _authenticate(self, request: Request) -> Subject | None:
        header = request.headers.get("authorization", "")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                return None
            async with self.db.session() as s:
                found = await self.tokens.resolve(s, value.strip())
                return await self._subject(found[1], found[0].id) if found else None
        cookie = request.cookies.get(self.cookie_name)
        if cookie:
            async with self.db.session() as s:
                found = await self.tokens.resolve(s, cookie)
                if found is None:
                    return None
                tok, user = found
                if request.method not in _SAFE_METHODS and not self.tokens.csrf_ok(
                    tok, request.headers.get(CSRF_HEADER)
                ):
                    raise HTTPException(status.HTTP_403_FORBIDDEN, f"CSRF check failed: send the {CSRF_HEADER} header")
                return await self._subject(user, tok.id)
        stream_token = request.query_params.get("token")
        camera_id = request.path_params.get("camera_id")
        route = getattr(request.scope.get("route"), "path", None)
        if stream_token and camera_id and (request.method in _SAFE_METHODS or route in _STREAM_TOKEN_POSTS):
            checked = self.stream_tokens.check(stream_token, str(camera_id))
            if checked is None:
                return None
            user_id, parent = checked
            async with self.db.session() as s:
                owner = await s.get(User, user_id)
                if owner is None or not owner.active:
                    return None
                if parent is not None:
                    # A stream token dies with the login it came from.
                    login_row = await s.get(ApiToken, parent)
                    if login_row is None or login_row.revoked_at is not None:
                        return None
                return await self._subject(owner, parent)
        key = request.query_params.get("s")
        if key and camera_id and request.method in _SAFE_METHODS and self.session_key_subject is not None:
            # A native player's later requests: the key of a session opened with a valid credential.
            # The route still asks the ACL on every request; logout or revocation ends the session.
            return self.session_key_subject(key, str(camera_id))
        return None
