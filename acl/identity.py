"""Identity: password hashing, bearer tokens (stored hashed, listable, revocable), login throttling
and short-lived signed stream tokens for players that cannot send headers."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from acl.credentials import Kind
from acl.models import ApiToken, Role, TokenKind, User
from storage.db import utcnow

__all__ = [
    "IdentityError",
    "LoginThrottle",
    "Passwords",
    "PasswordsBusy",
    "StreamGrant",
    "StreamTokens",
    "Subject",
    "TokenService",
    "hash_token",
]

# A valid argon2 hash of a random secret: verifying unknown users against it costs the same time
# as a real check, so response timing does not tell which usernames exist.
_DUMMY_HASH = PasswordHasher().hash(secrets.token_hex(16))
_T = TypeVar("_T")


class IdentityError(Exception):
    """Invalid input to an identity operation (the message is safe to show)."""


@dataclass(frozen=True, slots=True)
class Subject:
    """Who is asking: the authenticated user as authorization sees it."""

    user_id: int
    username: str
    role: Role
    departments: frozenset[str] = field(default_factory=frozenset)
    token_id: int | None = None  # the login (bearer, cookie or machine token) everything here derives from
    credential: Kind | None = None  # what the request presented
    expires_at: dt.datetime | None = None  # when that credential ends at the latest (its login's expiry)
    credential_ref: str | None = None  # a fingerprint of a stream token or session key (never the value)

    @property
    def is_admin(self) -> bool:
        """Full administrator."""
        return self.role is Role.admin


class PasswordsBusy(Exception):
    """Too many password checks are already waiting (answer 503 and ask the client to retry)."""


class Passwords:
    """argon2id password hashing.

    argon2 takes 50-100 ms of CPU by design. The ``*_off_loop`` methods run it in a worker thread
    (argon2 releases the GIL) so the event loop that relays video never waits for it, at most
    ``concurrency`` at once; with ``queue`` callers already waiting they raise :class:`PasswordsBusy`
    instead of queueing without bound.
    """

    def __init__(self, concurrency: int = 2, queue: int = 32) -> None:
        self._ph = PasswordHasher()
        self._slots = asyncio.Semaphore(concurrency)
        self._queue = queue
        self._waiting = 0
        self.running = 0  # checks in worker threads now (a test reads it)

    def hash(self, password: str) -> str:
        """Hash a new password (rejects trivially short ones)."""
        if len(password) < 8:
            raise IdentityError("password: must be at least 8 characters")
        if len(password) > 1024:
            raise IdentityError("password: must be at most 1024 characters")
        return self._ph.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """True when ``password`` matches ``stored``; constant-ish time when there is no user."""
        try:
            return self._ph.verify(stored or _DUMMY_HASH, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def verify_off_loop(self, stored: str | None, password: str) -> bool:
        """:meth:`verify` in a worker thread (bounded; :class:`PasswordsBusy` when the queue is full)."""
        return await self._off_loop(self.verify, stored, password)

    async def hash_off_loop(self, password: str) -> str:
        """:meth:`hash` in a worker thread (bounded like :meth:`verify_off_loop`)."""
        return await self._off_loop(self.hash, password)

    async def _off_loop(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._slots.locked() and self._waiting >= self._queue:
            raise PasswordsBusy("too many password checks at once")
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        self.running += 1
        work = asyncio.ensure_future(asyncio.to_thread(fn, *args))

        def done(f: asyncio.Future[_T]) -> None:
            # The slot is freed when the thread is done, not when a cancelled caller leaves: a
            # client that disconnects mid-check cannot start more argon2 work than the bound.
            self.running -= 1
            self._slots.release()
            if not f.cancelled():
                f.exception()  # retrieved: a cancelled caller's failure is not reported twice

        work.add_done_callback(done)
        return await asyncio.shield(work)


def hash_token(token: str) -> str:
    """The stored form of a bearer token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly issued bearer token; ``token`` and ``csrf`` are shown once and never stored."""

    id: int
    token: str
    csrf: str
    expires_at: dt.datetime | None


class TokenService:
    """Issues, resolves, lists and revokes opaque bearer tokens."""

    PREFIX = "ld_"

    async def issue(
        self,
        s: AsyncSession,
        user: User,
        *,
        kind: TokenKind,
        ttl_s: int | None,
        name: str = "",
    ) -> IssuedToken:
        """Create a token for ``user``; ``ttl_s`` None means no expiry (machine tokens)."""
        token = self.PREFIX + secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        expires = utcnow() + dt.timedelta(seconds=ttl_s) if ttl_s else None
        row = ApiToken(
            token_hash=hash_token(token),
            user_id=user.id,
            kind=kind,
            name=name[:128],
            csrf_hash=hash_token(csrf),
            expires_at=expires,
        )
        s.add(row)
        await s.flush()
        return IssuedToken(id=row.id, token=token, csrf=csrf, expires_at=expires)

    async def resolve(self, s: AsyncSession, token: str) -> tuple[ApiToken, User] | None:
        """The live token row and its active user, or None for unknown/expired/revoked tokens."""
        if not token.startswith(self.PREFIX) or len(token) > 200:
            return None
        row = (
            await s.execute(
                select(ApiToken, User)
                .join(User, User.id == ApiToken.user_id)
                .where(ApiToken.token_hash == hash_token(token))
            )
        ).first()
        if row is None:
            return None
        tok, user = row
        now = utcnow()
        if tok.revoked_at is not None or (tok.expires_at is not None and tok.expires_at <= now):
            return None
        if not user.active:
            return None
        return tok, user

    @staticmethod
    def csrf_hash_ok(csrf_hash: str | None, csrf: str | None) -> bool:
        """Whether ``csrf`` is the CSRF secret whose stored hash is ``csrf_hash``."""
        if not csrf or csrf_hash is None:
            return False
        return hmac.compare_digest(csrf_hash, hash_token(csrf))

    async def revoke(self, s: AsyncSession, token_id: int, *, user_id: int | None = None) -> bool:
        """Revoke one token (only the user's own when ``user_id`` is given). True if it was live."""
        q = update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        if user_id is not None:
            q = q.where(ApiToken.user_id == user_id)
        res = await s.execute(q.values(revoked_at=utcnow()))
        return bool(getattr(res, "rowcount", 0))

    async def revoke_user(self, s: AsyncSession, user_id: int) -> list[int]:
        """Revoke every live token of a user (deactivation, password or role change); their ids."""
        live = ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None)
        ids = list((await s.execute(select(ApiToken.id).where(*live))).scalars())
        if ids:
            await s.execute(update(ApiToken).where(ApiToken.id.in_(ids)).values(revoked_at=utcnow()))
        return ids

    async def list_tokens(self, s: AsyncSession, *, user_id: int | None = None) -> list[ApiToken]:
        """Tokens, newest first (all users when ``user_id`` is None)."""
        q = select(ApiToken).order_by(ApiToken.id.desc())
        if user_id is not None:
            q = q.where(ApiToken.user_id == user_id)
        return list((await s.execute(q)).scalars())


class LoginThrottle:
    """Failed logins, per client address and per username.

    An address with ``max_failures`` failures in the last ``window_s`` seconds is refused until the
    oldest ages out: one guesser at one address is stopped. A username is never locked out (anyone
    could lock out ``police`` by guessing): after ``max_failures`` failures the next attempt must
    wait ``delay_s``, doubled by each further failure up to ``delay_max_s``; the failures are
    forgotten ``window_s`` after the last one. So a guesser gets one try per ``delay_max_s`` while
    the real user with the right password gets in after at most that long, and at once from an
    address they logged in from before (its last ``known_size`` pairs are remembered).

    An attempt counts as a failure from :meth:`begin` until :meth:`succeeded` or :meth:`cancelled`,
    so concurrent guesses cannot all pass the check before the first failure is recorded.

    In process; several gateway nodes share it through Redis (scale-out issue).
    """

    def __init__(
        self,
        max_failures: int,
        window_s: float,
        clock: object = time.monotonic,
        *,
        delay_s: float = 1.0,
        delay_max_s: float = 30.0,
        known_size: int = 10_000,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.delay_s = delay_s
        self.delay_max_s = delay_max_s
        self._clock = clock
        self._fails: dict[str, deque[float]] = {}  # address -> failure times
        self._users: dict[str, tuple[int, float]] = {}  # username -> (failures, last attempt)
        self._known: OrderedDict[tuple[str, str], None] = OrderedDict()  # (username, address) that logged in
        self._known_size = known_size

    def _now(self) -> float:
        return self._clock()  # type: ignore[operator,no-any-return]

    def _recent(self, key: str) -> deque[float]:
        q = self._fails.setdefault(key, deque())
        cutoff = self._now() - self.window_s
        while q and q[0] < cutoff:
            q.popleft()
        return q

    def _user(self, username: str) -> tuple[int, float]:
        key = username.lower()
        failures, last = self._users.get(key, (0, 0.0))
        if failures and self._now() - last > self.window_s:
            del self._users[key]
            return 0, 0.0
        return failures, last

    def delay(self, failures: int) -> float:
        """A username's wait after ``failures`` failures."""
        if failures < self.max_failures:
            return 0.0
        return float(min(self.delay_s * 2 ** min(failures - self.max_failures, 32), self.delay_max_s))

    def retry_after(self, username: str, address: str) -> float:
        """Seconds until a login for this user/address may be tried again; 0 when allowed."""
        wait = 0.0
        q = self._recent(f"a:{address}")
        if len(q) >= self.max_failures:
            wait = q[0] + self.window_s - self._now()
        if (username.lower(), address) not in self._known:
            failures, last = self._user(username)
            wait = max(wait, last + self.delay(failures) - self._now())
        return max(wait, 0.0)

    def begin(self, username: str, address: str) -> float:
        """Like :meth:`retry_after`; when 0, the attempt is counted as a failure until it succeeds."""
        wait = self.retry_after(username, address)
        if wait <= 0:
            self.failed(username, address)
        return wait

    def failed(self, username: str, address: str) -> None:
        """Record a failed attempt."""
        now = self._now()
        self._recent(f"a:{address}").append(now)
        failures, _ = self._user(username)
        self._users[username.lower()] = (failures + 1, now)
        if len(self._fails) > 100_000:  # bound memory under a spray attack
            for k in [k for k, q in self._fails.items() if not q][:50_000]:
                del self._fails[k]
        if len(self._users) > 100_000:
            for k in list(self._users)[:50_000]:  # the oldest first seen
                del self._users[k]

    def _undo(self, address: str) -> None:
        q = self._fails.get(f"a:{address}")
        if q:
            q.pop()

    def cancelled(self, username: str, address: str) -> None:
        """The attempt begun with :meth:`begin` was not decided (the server was busy): uncount it."""
        self._undo(address)
        failures, last = self._user(username)
        if failures > 1:
            self._users[username.lower()] = (failures - 1, last)
        else:
            self._users.pop(username.lower(), None)

    def succeeded(self, username: str, address: str | None = None) -> None:
        """A good login: the user's failures are cleared and the address becomes known for them
        (the address keeps its other failures)."""
        self._users.pop(username.lower(), None)
        if address is not None:
            self._undo(address)
            key = (username.lower(), address)
            self._known[key] = None
            self._known.move_to_end(key)
            while len(self._known) > self._known_size:
                self._known.popitem(last=False)


@dataclass(frozen=True, slots=True)
class StreamGrant:
    """What a valid stream token says: whose, for which camera, from which login, until when."""

    user_id: int
    camera_id: str
    parent: int
    expires_at: dt.datetime
    fingerprint: str


class StreamTokens:
    """Short-lived signed tokens bound to one user, one camera and the login they were issued from.

    A token never outlives its login: its expiry is the earlier of ``ttl_s`` from issue and the
    login's own expiry, and a token re-issued from another (a 307 to the node that pulls the
    camera) keeps the original expiry instead of starting a new ``ttl_s``.
    """

    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self._s = URLSafeTimedSerializer(secret, salt="liandong-stream")
        self.ttl_s = ttl_s

    def issue(self, user_id: int, camera_id: str, token_id: int, not_after: dt.datetime | None = None) -> str:
        """A token that lets ``user_id`` start watching ``camera_id`` until ``ttl_s`` from now or
        ``not_after`` (the login's expiry, or the expiry of the token this one replaces)."""
        expires = utcnow() + dt.timedelta(seconds=self.ttl_s)
        if not_after is not None:
            expires = min(expires, not_after)
        # A nonce: two tokens issued in the same second differ (a session is ended by the one that opened it).
        n = secrets.token_urlsafe(6)
        return self._s.dumps({"u": user_id, "c": camera_id, "t": token_id, "e": int(expires.timestamp()), "n": n})

    def check(self, token: str) -> StreamGrant | None:
        """The grant of a well-signed, unexpired token with a parent login, else None. The caller
        checks the camera binding and that the parent login is still live."""
        if len(token) > 512:
            return None
        try:
            data = self._s.loads(token, max_age=self.ttl_s)
        except (SignatureExpired, BadSignature):
            return None
        if not isinstance(data, dict):
            return None
        user, camera, parent, exp = data.get("u"), data.get("c"), data.get("t"), data.get("e")
        if not (isinstance(user, int) and isinstance(camera, str) and isinstance(parent, int) and isinstance(exp, int)):
            return None
        expires = dt.datetime.fromtimestamp(exp, dt.UTC)
        if expires <= utcnow():
            return None
        return StreamGrant(user, camera, parent, expires, hash_token(token)[:24])
