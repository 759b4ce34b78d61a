"""Login (OAuth2 password form for machines, cookie session for browsers), logout, who-am-I, tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import select

from acl.credentials import Scope
from acl.identity import IssuedToken, PasswordsBusy, Subject
from acl.models import Role, TokenKind, User
from gateway.container import services
from gateway.policy import authenticated, public, require_camera, require_owner_or_admin, require_roles

router = APIRouter(prefix="/api/auth", tags=["auth"])

CSRF_COOKIE = "liandong_csrf"


class TokenReply(BaseModel):
    """OAuth2 token response."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 (OAuth2 token type, not a secret)
    expires_in: int | None


class LoginBody(BaseModel):
    """Browser login."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class MachineTokenBody(BaseModel):
    """A long-lived token for a machine (incident system, GPS feed)."""

    name: str = Field(min_length=1, max_length=128)
    username: str | None = Field(None, max_length=64, description="Owner; default: the caller.")


async def _login(request: Request, username: str, password: str, kind: TokenKind) -> IssuedToken:
    """Check a password login (throttled, off the event loop) and issue a session token.

    Refusals are audited in aggregate (:mod:`gateway.refusals`): anyone can cause them."""
    ld = services(request)
    address = request.client.host if request.client else "-"
    wait = ld.throttle.begin(username, address)
    if wait > 0:
        ld.metrics.logins.labels("throttled").inc()
        ld.refusals.note("login_throttled", address, username[:64], username=username)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many failed logins; try again later",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    async with ld.db.session() as s:
        found = (await s.execute(select(User.id, User.password_hash).where(User.username == username))).first()
    try:
        ok = await ld.passwords.verify_off_loop(found.password_hash if found else None, password)
    except PasswordsBusy:
        ld.throttle.cancelled(username, address)
        ld.metrics.logins.labels("busy").inc()
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "too many logins at once; try again", headers={"Retry-After": "1"}
        ) from None
    issued: IssuedToken | None = None
    if ok and found is not None:
        async with ld.db.session() as s:
            user = await s.get(User, found.id)  # read again after the check: still there and active?
            if user is not None and user.active:
                issued = await ld.tokens.issue(s, user, kind=kind, ttl_s=ld.settings.auth.token_ttl_s)
    if issued is None:  # the attempt stays counted as a failure (throttle.begin)
        ld.metrics.logins.labels("failed").inc()
        ld.refusals.note("login_failed", address, username[:64], username=username)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    assert found is not None  # a token was issued for it
    ld.throttle.succeeded(username, address)
    ld.metrics.logins.labels("ok").inc()
    await ld.audit.record("login", username=username, user_id=found.id, address=address)
    return issued


@router.post("/token", dependencies=[public(Scope.login)])
async def token(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
) -> TokenReply:
    """OAuth2 password flow: form fields ``username`` and ``password``."""
    issued = await _login(request, username, password, TokenKind.session)
    return TokenReply(access_token=issued.token, expires_in=services(request).settings.auth.token_ttl_s)


@router.post("/login", dependencies=[public(Scope.login)])
async def login(request: Request, body: LoginBody, response: Response) -> dict[str, object]:
    """Browser login: sets an HttpOnly SameSite session cookie and a readable CSRF cookie."""
    ld = services(request)
    issued = await _login(request, body.username, body.password, TokenKind.session)
    a = ld.settings.auth
    response.set_cookie(
        a.cookie_name,
        issued.token,
        max_age=a.token_ttl_s,
        httponly=True,
        samesite="strict",
        secure=a.cookie_secure,
    )
    response.set_cookie(
        CSRF_COOKIE,
        issued.csrf,
        max_age=a.token_ttl_s,
        httponly=False,
        samesite="strict",
        secure=a.cookie_secure,
    )
    return {"username": body.username, "csrf_token": issued.csrf, "expires_in": a.token_ttl_s}


@router.post("/logout", dependencies=[authenticated()])
async def logout(request: Request, response: Response) -> dict[str, bool]:
    """End the current login (cookie or bearer token) and everything derived from it."""
    ld = services(request)
    subject: Subject = request.state.subject
    if subject.token_id is not None:
        await ld.end_login(subject.token_id)
    response.delete_cookie(ld.settings.auth.cookie_name)
    response.delete_cookie(CSRF_COOKIE)
    await ld.audit.record("logout", username=subject.username, user_id=subject.user_id)
    return {"ok": True}


@router.get("/me", dependencies=[authenticated()])
async def me(request: Request) -> dict[str, object]:
    """The current user."""
    s: Subject = request.state.subject
    return {
        "id": s.user_id,
        "username": s.username,
        "role": s.role.value,
        "departments": sorted(s.departments),
    }


@router.get("/tokens", dependencies=[require_owner_or_admin(all_param="all_users", rows="tokens")])
async def list_tokens(request: Request, all_users: bool = False) -> list[dict[str, object]]:
    """Your tokens (admins: everyone's with ``all_users=true``). Token values are never shown again."""
    ld = services(request)
    subject: Subject = request.state.subject
    _ = all_users  # declared for validation and the docs; whose tokens is the guard's answer
    async with ld.db.session() as s:
        rows = await ld.tokens.list_tokens(s, user_id=request.state.owner_scope)
    return [
        {
            "id": t.id,
            "user_id": t.user_id,
            "kind": t.kind.value,
            "name": t.name,
            "created_at": t.created_at.isoformat(),
            "expires_at": t.expires_at.isoformat() if t.expires_at else None,
            "revoked": t.revoked_at is not None,
            "current": t.id == subject.token_id,
        }
        for t in rows
    ]


@router.post("/tokens", status_code=201, dependencies=[require_roles(Role.admin)])
async def create_machine_token(request: Request, body: MachineTokenBody) -> dict[str, object]:
    """Create a machine token for an integration account (admins only; shown once, never expires,
    ends by revocation or any change to the account)."""
    ld = services(request)
    subject: Subject = request.state.subject
    name = body.username or subject.username
    async with ld.db.session() as s:
        user = (await s.execute(select(User).where(User.username == name))).scalar_one_or_none()
        if user is None:
            raise HTTPException(422, [{"field": "username", "message": f"no user '{name}'"}])
        if user.role is not Role.integration or not user.active:
            raise HTTPException(
                422,
                [
                    {
                        "field": "username",
                        "message": f"'{name}' is not an active integration account: machine tokens are for "
                        "integration accounts only (people log in)",
                    }
                ],
            )
        issued = await ld.tokens.issue(s, user, kind=TokenKind.machine, ttl_s=None, name=body.name)
        owner_id, owner_name = user.id, user.username
    await ld.audit.record(
        "token_created",
        username=subject.username,
        user_id=subject.user_id,
        detail=f"machine token {issued.id} '{body.name}' for {owner_name} (user {owner_id})",
    )
    return {"id": issued.id, "access_token": issued.token, "token_type": "bearer", "name": body.name, "username": name}


@router.delete("/tokens/{token_id}", dependencies=[require_owner_or_admin(admins_see_all=True, rows="tokens")])
async def revoke_token(request: Request, token_id: int) -> dict[str, bool]:
    """Revoke a token (your own, or anyone's for admins) and everything derived from it."""
    ld = services(request)
    subject: Subject = request.state.subject
    if not await ld.end_login(token_id, user_id=request.state.owner_scope):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"token {token_id} not found or already revoked")
    await ld.audit.record("token_revoked", username=subject.username, user_id=subject.user_id, detail=str(token_id))
    return {"ok": True}


@router.post("/stream-token/{camera_id}", dependencies=[require_camera("view_live")])
async def stream_token(request: Request, camera_id: str) -> dict[str, object]:
    """A short-lived token for players that cannot send headers (a native HLS player, a WHEP
    player): add ``?token=...`` to this camera's HLS entry playlist or WHEP URL, or send it as
    ``Authorization: Bearer``. It is bound to you, this camera and your login: it expires after
    ``auth.stream_token_ttl_s`` or with your login, whichever is first, and dies when your login
    ends. It is accepted nowhere else (see docs/security.md); every use is authorized against the
    current policy."""
    ld = services(request)
    subject: Subject = request.state.subject
    assert subject.token_id is not None  # an api-scope subject always comes from a login
    token = ld.stream_tokens.issue(subject.user_id, camera_id, subject.token_id, subject.expires_at)
    return {"token": token, "camera_id": camera_id, "expires_in": ld.stream_tokens.ttl_s}
