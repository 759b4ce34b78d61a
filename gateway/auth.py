"""Who is calling: bearer tokens, browser session cookies (with CSRF) and signed stream tokens."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request, status

from acl.identity import StreamTokens, Subject, TokenService, hash_token
from acl.models import ApiToken, User
from storage.db import Database, utcnow

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


@dataclass(frozen=True, slots=True)
class _Login:
    """What a validated bearer token or session cookie resolved to (the database part of a Subject;
    departments are asked of the policy, in memory, on every request)."""

    token_id: int
    user: User  # detached copy: id, username, role
    csrf_hash: str | None
    expires_at: dt.datetime | None
    checked_at: float  # monotonic


class LoginCache:
    """Validated logins by token hash for ``ttl_s``, at most ``size`` of them (least recently used go).

    Only valid logins are kept. Every invalidation moves ``generation`` on; a lookup that started
    before one (it may have read the row before a revocation committed) does not store its answer.
    """

    def __init__(self, ttl_s: float, size: int) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._logins: OrderedDict[str, _Login] = OrderedDict()
        self.generation = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> _Login | None:
        """The login if still trusted; an expired token or a stale entry is dropped."""
        e = self._logins.get(key)
        if e is not None:
            if time.monotonic() - e.checked_at > self.ttl_s or (e.expires_at is not None and e.expires_at <= utcnow()):
                del self._logins[key]
                e = None
            else:
                self._logins.move_to_end(key)
        if e is None:
            self.misses += 1
        else:
            self.hits += 1
        return e

    def put(self, key: str, tok: ApiToken, user: User, generation: int) -> None:
        """Keep a login validated by a lookup that started at ``generation``."""
        if self.ttl_s <= 0 or generation != self.generation:
            return
        copy = User(id=user.id, username=user.username, role=user.role, active=True)
        self._logins[key] = _Login(tok.id, copy, tok.csrf_hash, tok.expires_at, time.monotonic())
        self._logins.move_to_end(key)
        while len(self._logins) > self.size:
            self._logins.popitem(last=False)

    def _drop(self, match: Callable[[_Login], bool]) -> None:
        self.generation += 1
        for key in [k for k, e in self._logins.items() if match(e)]:
            del self._logins[key]

    def forget_token(self, token_id: int) -> None:
        """A login ended (logout, revocation)."""
        self._drop(lambda e: e.token_id == token_id)

    def forget_user(self, user_id: int) -> None:
        """A user's role, password or active flag changed."""
        self._drop(lambda e: e.user.id == user_id)

    def clear(self) -> None:
        """Forget every login (the policy or the users were reloaded from the database)."""
        self._drop(lambda _e: True)

    def __len__(self) -> int:
        return len(self._logins)


class Authenticator:
    """Resolves a request to a :class:`Subject`, or None when it carries no valid credentials."""

    def __init__(
        self,
        db: Database,
        tokens: TokenService,
        stream_tokens: StreamTokens,
        cookie_name: str,
        departments_of: DepartmentsOf = _no_departments,
        *,
        login_cache_s: float = 0.0,
        login_cache_size: int = 10_000,
    ) -> None:
        self.db = db
        self.tokens = tokens
        self.stream_tokens = stream_tokens
        self.cookie_name = cookie_name
        self.departments_of = departments_of
        # Bearer tokens and session cookies validated recently: a database lookup per request
        # otherwise (HLS players ask several times a second).
        self.logins = LoginCache(login_cache_s, login_cache_size)
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

    async def _login(self, token: str) -> tuple[int, User, str | None] | None:
        """(token id, user, CSRF hash) of a live bearer token or session cookie, from the cache or
        the database; None for unknown, expired or revoked tokens and inactive users."""
        if not token.startswith(TokenService.PREFIX) or len(token) > 200:
            return None
        key = hash_token(token)
        hit = self.logins.get(key)
        if hit is not None:
            return hit.token_id, hit.user, hit.csrf_hash
        generation = self.logins.generation
        async with self.db.session() as s:
            found = await self.tokens.resolve(s, token)
            if found is None:
                return None
            tok, user = found
            self.logins.put(key, tok, user, generation)
            return tok.id, user, tok.csrf_hash

    async def forget_token(self, token_id: int) -> None:
        """A login ended: its next request is checked against the database (an ``on_token_revoked`` hook)."""
        self.logins.forget_token(token_id)

    def forget_user(self, user_id: int) -> None:
        """A user's role, password or active flag changed."""
        self.logins.forget_user(user_id)

    def forget_logins(self) -> None:
        """Users may have changed elsewhere (another node, a reload): check every login again."""
        self.logins.clear()

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
            login = await self._login(value.strip())
            return await self._subject(login[1], login[0]) if login else None
        cookie = request.cookies.get(self.cookie_name)
        if cookie:
            login = await self._login(cookie)
            if login is None:
                return None
            token_id, user, csrf_hash = login
            if request.method not in _SAFE_METHODS and not TokenService.csrf_hash_ok(
                csrf_hash, request.headers.get(CSRF_HEADER)
            ):
                raise HTTPException(status.HTTP_403_FORBIDDEN, f"CSRF check failed: send the {CSRF_HEADER} header")
            return await self._subject(user, token_id)
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
