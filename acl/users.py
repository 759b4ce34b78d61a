"""User administration shared by the CLI and the admin API."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from acl.identity import IdentityError, Passwords, TokenService
from acl.models import Role, User

if TYPE_CHECKING:
    from gateway.settings import Settings

__all__ = ["USERNAME_RE", "UserError", "create_user", "upsert_user"]

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class UserError(ValueError):
    """A user could not be created or changed (message safe to show)."""


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
    settings: Settings, name: str, password: str, role: Role, *, display_name: str = "", update: bool = False
) -> str:
    """CLI helper: migrate, then create or update the user; returns 'created' or 'updated'."""
    import asyncio

    from storage.db import Database

    db = Database(settings.database_url)
    try:
        await asyncio.to_thread(db.migrate)
        async with db.session() as s:
            _, outcome = await upsert_user(s, name, password, role, display_name=display_name, update=update)
        return outcome
    finally:
        await db.close()
