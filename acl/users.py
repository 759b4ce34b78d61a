"""User administration shared by the CLI and the admin API."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from acl.identity import IdentityError, Passwords, TokenService
from acl.models import Role, User

if TYPE_CHECKING:
    from storage.db import Database

__all__ = [
    "USERNAME_RE",
    "AdminsOnly",
    "NoSuchUser",
    "UserChange",
    "UserChanged",
    "UserError",
    "change_user",
    "create_user",
    "upsert_user",
]

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class UserError(ValueError):
    """A user could not be created or changed (message safe to show)."""


class NoSuchUser(UserError):
    """The user to change does not exist."""


class AdminsOnly(UserError):
    """Only admins make or change admins; ``field`` names what was refused, when a field was."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


async def upsert_user(
    s: AsyncSession,
    name: str,
    password: str | None,
    role: Role,
    *,
    display_name: str = "",
    update: bool = False,
    passwords: Passwords | None = None,
) -> tuple[User, str]:
    """Create (or with ``update``, change) a user in the caller's transaction."""
    if not USERNAME_RE.match(name):
        raise UserError("username: 1-64 letters, digits or . _ @ -")
    pw = passwords or Passwords()
    try:
        hashed = await pw.hash_off_loop(password) if password is not None else None
    except IdentityError as e:
        raise UserError(str(e)) from None
    user = (await s.execute(select(User).where(User.username == name))).scalar_one_or_none()
    if user is not None:
        if not update:
            raise UserError(f"username: '{name}' already exists (use --update to change it)")
        role_changed = user.role is not role
        user.role = role
        if hashed is not None:
            user.password_hash = hashed
        if hashed is not None or role_changed:
            # Every login ends with a password or role change (running gateways refuse them at once,
            # or within auth.login_cache_s where they cached the login).
            await TokenService().revoke_user(s, user.id)
        if display_name:
            user.display_name = display_name
        return user, "updated"
    user = User(username=name, password_hash=hashed, role=role, display_name=display_name or name)
    s.add(user)
    await s.flush()
    return user, "created"


async def create_user(
    database_url: str, name: str, password: str, role: Role, *, display_name: str = "", update: bool = False
) -> str:
    """CLI helper: migrate, then create or update the user; returns 'created' or 'updated'."""
    from storage.db import Database

    db = Database(database_url)
    try:
        await asyncio.to_thread(db.migrate)
        async with db.session() as s:
            _, outcome = await upsert_user(s, name, password, role, display_name=display_name, update=update)
        return outcome
    finally:
        await db.close()


@dataclass(frozen=True, slots=True)
class UserChange:
    """Changes to a user (None: unchanged)."""

    role: Role | None = None
    active: bool | None = None
    password: str | None = None
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class UserChanged:
    """A committed user change: the user as they are now, and the logins it ended (``why``: None if none)."""

    user_id: int
    username: str
    role: Role
    active: bool
    ended_tokens: list[int]
    why: str | None


async def change_user(
    db: Database,
    user_id: int,
    change: UserChange,
    *,
    may_manage: Callable[[Role], bool],
    passwords: Passwords,
    tokens: TokenService,
) -> UserChanged:
    """Change a user's role, password, active flag or display name in one transaction.

        A password or role change or a deactivation revokes every login of the user in the same
        transaction (``ended_tokens``); what derives from them (streams, session keys) is the caller's
        to end after the commit. ``may_manage(role)`` is the caller's rule (``gateway.policy``: only
    admins make or change admins), asked of the new role and, in the transaction, of the user's
    current one: :class:`AdminsOnly`.
        :class:`NoSuchUser` when there is no such user. The password is hashed off the event loop.
    """
    if change.role is not None and not may_manage(change.role):
        raise AdminsOnly("only admins may make admins", field="role")
    hashed = await passwords.hash_off_loop(change.password) if change.password is not None else None
    async with db.session() as s:
        user = await s.get(User, user_id)
        if user is None:
            raise NoSuchUser(f"no user {user_id}")
        if not may_manage(user.role):
            raise AdminsOnly("only admins may change admins")
        if change.display_name is not None:
            user.display_name = change.display_name
        if hashed is not None:
            user.password_hash = hashed
        role_changed = change.role is not None and change.role is not user.role
        if change.role is not None:
            user.role = change.role
        if change.active is not None:
            user.active = change.active
        why = _logins_end_because(change.password is not None, role_changed, change.active is False)
        ended = await tokens.revoke_user(s, user_id) if why else []
        return UserChanged(user_id, user.username, user.role, user.active, ended, why)


def _logins_end_because(password: bool, role: bool, deactivated: bool) -> str | None:
    if deactivated:
        return "account deactivated"
    if password:
        return "password changed"
    return "role changed" if role else None
