"""Every kind of credential the gateway accepts, in one table: how it is presented, what it is
derived from, where it is accepted, how long it lives and what ends it.

Routes declare a :class:`Scope` (what kind of place they are); the authenticator reads the table
to learn which kinds a scope accepts and where each kind is carried, so that it names no route,
protocol or query parameter itself. ``docs/security.md`` has the same table for people; the test
``tests/gateway/test_credential_walk.py`` walks every route with every kind against it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "CREDENTIALS",
    "Carrier",
    "CarrierType",
    "CredentialEnded",
    "CredentialRule",
    "Kind",
    "Scope",
    "accepted_kinds",
    "rule_for",
]


class Kind(enum.StrEnum):
    """A kind of credential."""

    password = "password"  # noqa: S105 (a kind's name) username + password, exchanged for a login
    bearer = "bearer"  # a login's bearer token (OAuth2 password flow)
    machine = "machine"  # a long-lived token of an integration account
    cookie = "cookie"  # a browser login's session cookie (+ CSRF header on unsafe methods)
    stream_token = "stream_token"  # noqa: S105 (a kind's name) signed, one camera, for players that cannot send headers
    session_key = "session_key"  # one HLS viewer session's key, in the playlist URLs it hands out
    alarm_signature = "alarm_signature"  # an alarm source's HMAC over one request (no user, no login)
    rtsp_digest = "rtsp_digest"  # RTSP Digest (RFC 2617) with a password derived from one login
    # A configured superior GB/T 28181 platform: its SIP id and address on the registration we made to it.
    gb28181_superior = "gb28181_superior"


class Scope(enum.StrEnum):
    """What a route is, as credentials see it. Every guarded route declares exactly one."""

    login = "login"  # exchanges a password for a login (the two login routes)
    api = "api"  # the API and the consoles' data: logins only
    stream_entry = "stream_entry"  # starts watching one camera (HLS entry playlist, WHEP offer, snapshot)
    stream_session = "stream_session"  # one viewer session's own resource (the WHEP session URL)
    hls_files = "hls_files"  # one HLS session's playlist, init, segments and parts
    alarm_intake = "alarm_intake"  # alarms posted by registered sources
    rtsp = "rtsp"  # the RTSP server's requests (DESCRIBE, SETUP, PLAY, ...) for a camera
    gb28181_cascade = "gb28181_cascade"  # a superior platform's SIP requests (Catalog query, INVITE, BYE)


class CarrierType(enum.StrEnum):
    """Where in a request a credential travels."""

    form = "form"  # the request body's form fields
    header = "header"  # a header of its own (read by the guard that checks it)
    bearer_header = "bearer_header"  # ``Authorization: Bearer <value>``
    cookie = "cookie"  # the session cookie (its name is a setting)
    query = "query"  # a query parameter
    digest_header = "digest_header"  # ``Authorization: Digest ...`` of an RTSP request (never Basic: no TLS)
    # The source address and From id of a SIP request on the UDP port Liandong registered to a superior from.
    sip_peer = "sip_peer"


@dataclass(frozen=True, slots=True)
class Carrier:
    """One place a credential is read from: ``name`` is the query parameter or form field."""

    type: CarrierType
    name: str = ""
    # A bearer header carries two kinds: login tokens start with this prefix, stream tokens do not.
    prefix: str | None = None


@dataclass(frozen=True, slots=True)
class CredentialRule:
    """One row of the credential table."""

    kind: Kind
    carriers: tuple[Carrier, ...]
    derived_from: Kind | None
    accepted_on: frozenset[Scope]
    lifetime: str
    ended_by: str
    # The path parameter the credential is bound to on a scope (checked by the authenticator).
    bound_to: tuple[tuple[Scope, str], ...] = ()

    def binding(self, scope: Scope) -> str | None:
        """The path parameter this credential must match on ``scope``, if any."""
        return next((param for s, param in self.bound_to if s is scope), None)


LOGIN_PREFIX = "ld_"
_LOGINS = frozenset({Scope.api, Scope.stream_entry, Scope.stream_session, Scope.hls_files})

CREDENTIALS: tuple[CredentialRule, ...] = (
    CredentialRule(
        Kind.password,
        (Carrier(CarrierType.form, "password"),),
        None,
        frozenset({Scope.login}),
        "one request",
        "a password change (every login of the user ends)",
    ),
    CredentialRule(
        Kind.bearer,
        (Carrier(CarrierType.bearer_header, prefix=LOGIN_PREFIX),),
        Kind.password,
        _LOGINS,
        "auth.token_ttl_s (8 h)",
        "logout, revocation, password or role change, deactivation, expiry",
    ),
    CredentialRule(
        Kind.machine,
        (Carrier(CarrierType.bearer_header, prefix=LOGIN_PREFIX),),
        None,
        _LOGINS,
        "until revoked; integration accounts only, minted by an admin",
        "revocation, role change, password change, deactivation",
    ),
    CredentialRule(
        Kind.cookie,
        (Carrier(CarrierType.cookie),),
        Kind.password,
        _LOGINS,
        "auth.token_ttl_s (8 h)",
        "logout, revocation, password or role change, deactivation, expiry",
    ),
    CredentialRule(
        Kind.stream_token,
        (Carrier(CarrierType.query, "token"), Carrier(CarrierType.bearer_header)),
        Kind.bearer,  # or a cookie or machine login: the login it was issued from
        frozenset({Scope.stream_entry, Scope.stream_session}),
        "auth.stream_token_ttl_s (5 min), never beyond its login's expiry; a 307 between nodes does not renew it",
        "its login ending (any way), expiry",
        bound_to=((Scope.stream_entry, "camera_id"),),
    ),
    CredentialRule(
        Kind.session_key,
        (Carrier(CarrierType.query, "s"),),
        Kind.bearer,  # the credential that opened the session (a login or a stream token)
        frozenset({Scope.hls_files}),
        "while its HLS session is open (hls.session_idle_s without requests ends it)",
        "the session ending: its login ending (any way), revocation of the camera, idle, an admin",
        bound_to=((Scope.hls_files, "camera_id"),),
    ),
    CredentialRule(
        Kind.rtsp_digest,
        (Carrier(CarrierType.digest_header),),
        Kind.bearer,  # or a cookie or machine login: the login it was derived from (POST /api/auth/rtsp-credential)
        frozenset({Scope.rtsp}),
        "its login's (machine token: until revoked; bearer or cookie: auth.token_ttl_s); a Digest nonce "
        "lives rtsp_out.nonce_ttl_s until a connection has used it",
        "its login ending (any way): the running RTSP sessions it opened end with it",
    ),
    CredentialRule(
        Kind.gb28181_superior,
        (Carrier(CarrierType.sip_peer),),
        None,  # configured (gb28181.superiors), not derived from a login: no user behind it
        frozenset({Scope.gb28181_cascade}),
        "while it is configured and our registration to it stands (refreshed at half its expiry)",
        "removal from gb28181.superiors (a restart); a policy change that takes a camera from its view_as "
        "subject ends its INVITEs of that camera (BYE) and notifies its catalog",
    ),
    CredentialRule(
        Kind.alarm_signature,
        (Carrier(CarrierType.header, "X-Liandong-Signature"),),
        None,
        frozenset({Scope.alarm_intake}),
        "one request, within alarms.signature_window_s of its X-Liandong-Timestamp",
        "the source being disabled, or its secret rotated",
    ),
)

_BY_KIND = {r.kind: r for r in CREDENTIALS}


def rule_for(kind: Kind) -> CredentialRule:
    """The table's row for ``kind``."""
    return _BY_KIND[kind]


def accepted_kinds(scope: Scope) -> frozenset[Kind]:
    """The kinds of credential a route of ``scope`` accepts."""
    return frozenset(r.kind for r in CREDENTIALS if scope in r.accepted_on)


class CredentialEnded(Exception):
    """A credential that existed has ended (an HLS session key after its session): 410, with why."""
