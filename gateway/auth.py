"""Who is calling: the credentials of :mod:`acl.credentials` (logins, stream tokens, session keys)
checked for the scope a route declares."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from fastapi import HTTPException, Request, status

from acl.credentials import CREDENTIALS, Carrier, CarrierType, Kind, Scope, accepted_kinds, rule_for
from acl.identity import StreamTokens, Subject, TokenService, hash_token
from acl.models import ApiToken, Role, TokenKind, User
from storage.db import Database, utcnow

__all__ = ["CSRF_HEADER", "Authenticator", "SessionKeys"]

log = logging.getLogger(__name__)
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

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
    kind: TokenKind = TokenKind.session


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
        self._logins[key] = _Login(tok.id, copy, tok.csrf_hash, tok.expires_at, time.monotonic(), tok.kind)
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
    """Resolves a request to a :class:`Subject` for a route's declared :class:`Scope`, or None when
    it carries no credential that scope accepts.

    Which kinds a scope accepts, where each is carried and what it is bound to come from the
    credential table (:mod:`acl.credentials`); this class only knows how to read a carrier and how
    to check each kind (a login in the database, a stream token's signature and parent login, a
    session key with the sessions that hand them out).
    """

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
        # Resolves a session key to the live session's subject (the HLS service, set at wiring).
        self.session_keys: SessionKeys | None = None

    async def _subject(
        self,
        user: User,
        token_id: int | None,
        kind: Kind,
        expires_at: dt.datetime | None,
        ref: str | None = None,
    ) -> Subject:
        return Subject(
            user_id=user.id,
            username=user.username,
            role=user.role,
            departments=await self.departments_of(user),
            token_id=token_id,
            credential=kind,
            expires_at=expires_at,
            credential_ref=ref,
        )

    async def _login(self, token: str) -> _Login | None:
        """A live bearer token, session cookie or machine token, from the cache or the database;
        None for unknown, expired or revoked tokens and inactive users."""
        if not token.startswith(TokenService.PREFIX) or len(token) > 200:
            return None
        key = hash_token(token)
        hit = self.logins.get(key)
        if hit is not None:
            return hit
        generation = self.logins.generation
        async with self.db.session() as s:
            found = await self.tokens.resolve(s, token)
            if found is None:
                return None
            tok, user = found
            self.logins.put(key, tok, user, generation)
            return _Login(tok.id, user, tok.csrf_hash, tok.expires_at, time.monotonic(), tok.kind)

    async def forget_token(self, token_id: int) -> None:
        """A login ended: its next request is checked against the database (an ``on_token_revoked`` hook)."""
        self.logins.forget_token(token_id)

    def forget_user(self, user_id: int) -> None:
        """A user's role, password or active flag changed."""
        self.logins.forget_user(user_id)

    def forget_logins(self) -> None:
        """Users may have changed elsewhere (another node, a reload): check every login again."""
        self.logins.clear()

    async def authenticate(self, request: Request, scope: Scope = Scope.api) -> Subject | None:
        """The subject of the first credential the request carries (in the table's order of
        carriers), if ``scope`` accepts its kind and it is valid; else None.

        Raises 403 for a session cookie without its CSRF header on an unsafe method and 410
        (:class:`CredentialEnded`) for a credential that has ended, such as an HLS session key."""
        cached = getattr(request.state, "subject", None)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        subject = await self._authenticate(request, scope)
        request.state.subject = subject
        return subject

    async def _authenticate(self, request: Request, scope: Scope) -> Subject | None:
        presented = _presented(request, self.cookie_name)
        subject = await self._check(request, presented, scope) if presented is not None else None
        if subject is None and not getattr(request.state, "credential_problem", None):
            # Every refusal says what was presented (never the credential itself), for the audit.
            request.state.credential_problem = _refused_because(presented)
        return subject

    async def _check(self, request: Request, presented: tuple[frozenset[Kind], str], scope: Scope) -> Subject | None:
        kinds, value = presented
        accepted = accepted_kinds(scope)
        if not kinds & accepted:
            if Kind.session_key in kinds:
                self._from_session_key(request, value, None)  # an ended key is 410 everywhere
            request.state.credential_problem = f"a {' or '.join(sorted(kinds))} is not accepted here"
            return None
        if kinds & _LOGIN_KINDS:
            return await self._from_login(request, value, kinds & accepted)
        if Kind.stream_token in kinds:
            return await self._from_stream_token(request, value, scope)
        return self._from_session_key(request, value, scope)

    async def _from_login(self, request: Request, value: str, accepted: frozenset[Kind]) -> Subject | None:
        login = await self._login(value)
        if login is None:
            return None
        if Kind.cookie in accepted:
            if request.method not in _SAFE_METHODS and not TokenService.csrf_hash_ok(
                login.csrf_hash, request.headers.get(CSRF_HEADER)
            ):
                raise HTTPException(status.HTTP_403_FORBIDDEN, f"CSRF check failed: send the {CSRF_HEADER} header")
            kind = Kind.cookie
        elif login.kind is TokenKind.machine:
            # Machine tokens are for integration accounts only (one minted before that rule is dead).
            if login.user.role is not Role.integration:
                request.state.credential_problem = "machine token of a user who is not an integration account"
                return None
            kind = Kind.machine
        else:
            kind = Kind.bearer
        if kind not in accepted:
            request.state.credential_problem = f"a {kind} is not accepted here"
            return None
        return await self._subject(login.user, login.token_id, kind, login.expires_at)

    async def _from_stream_token(self, request: Request, value: str, scope: Scope) -> Subject | None:
        grant = self.stream_tokens.check(value)
        if grant is None:
            return None
        bound = rule_for(Kind.stream_token).binding(scope)
        if bound is not None and str(request.path_params.get(bound)) != grant.camera_id:
            request.state.credential_problem = "stream token for another camera"
            return None
        async with self.db.session() as s:
            # A stream token dies with the login it came from, however that ended.
            row = await s.get(ApiToken, grant.parent)
            owner = await s.get(User, grant.user_id)
            now = utcnow()
            if row is None or row.user_id != grant.user_id or row.revoked_at is not None:
                return None
            if row.expires_at is not None and row.expires_at <= now:
                return None
            if owner is None or not owner.active:
                return None
            if row.kind is TokenKind.machine and owner.role is not Role.integration:
                return None
            return await self._subject(owner, grant.parent, Kind.stream_token, grant.expires_at, grant.fingerprint)

    def _from_session_key(self, request: Request, value: str, scope: Scope | None) -> Subject | None:
        if self.session_keys is None or len(value) > 64:
            return None
        bound = rule_for(Kind.session_key).binding(scope) if scope is not None else None
        return self.session_keys(value, str(request.path_params.get(bound)) if bound else None)


class SessionKeys(Protocol):
    """Who holds a live session key; raises :class:`CredentialEnded` for a key whose session ended."""

    def __call__(self, key: str, camera_id: str | None) -> Subject | None: ...


_LOGIN_KINDS = frozenset({Kind.bearer, Kind.machine, Kind.cookie})

_UNKNOWN = {
    Kind.bearer: "bearer token unknown, expired or revoked",
    Kind.machine: "bearer token unknown, expired or revoked",
    Kind.cookie: "session cookie unknown, expired or revoked",
    Kind.stream_token: "stream token invalid, expired or revoked, or its login ended",
    Kind.session_key: "session key unknown",
}


def _refused_because(presented: tuple[frozenset[Kind], str] | None) -> str:
    """Why a request whose credential checked out to nobody was refused, by the kind presented."""
    if presented is None:
        return "no credentials"
    kinds, value = presented
    if value == "-":
        return "Authorization header is not a bearer token"
    return " / ".join(sorted({_UNKNOWN.get(k, f"{k} not valid") for k in kinds}))


def _presented(request: Request, cookie_name: str) -> tuple[frozenset[Kind], str] | None:
    """The first credential the request carries, in the table's order of carriers: the kinds it
    may be and its value. An ``Authorization`` header that no carrier takes (another scheme, an
    empty token) counts as presented, and fails."""
    header = request.headers.get("authorization", "")
    for rule in CREDENTIALS:
        for carrier in rule.carriers:
            value = _read(request, carrier, header, cookie_name)
            if value:
                kinds = frozenset(
                    r.kind
                    for r in CREDENTIALS
                    for c in r.carriers
                    if c.type is carrier.type and c.name == carrier.name and _fits(c, value)
                )
                return kinds, value
            if header and carrier.type is CarrierType.bearer_header and not _bearer_value(header):
                return frozenset({Kind.bearer}), "-"  # not a bearer scheme: presented, and refused
    return None


def _bearer_value(header: str) -> str:
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _read(request: Request, carrier: Carrier, header: str, cookie_name: str) -> str | None:
    if carrier.type is CarrierType.bearer_header:
        value = _bearer_value(header)
        return value if value and _fits(carrier, value) else None
    if carrier.type is CarrierType.cookie:
        return request.cookies.get(cookie_name) or None
    if carrier.type is CarrierType.query:
        return request.query_params.get(carrier.name) or None
    return None  # form fields and headers of their own are read by the routes and guards that take them


def _fits(carrier: Carrier, value: str) -> bool:
    """A bearer value belongs to a carrier by its prefix: login tokens carry one, stream tokens none."""
    if carrier.type is not CarrierType.bearer_header:
        return True
    if carrier.prefix is not None:
        return value.startswith(carrier.prefix)
    return not any(
        c.prefix is not None and value.startswith(c.prefix)
        for r in CREDENTIALS
        for c in r.carriers
        if c.type is CarrierType.bearer_header
    )
