"""User changes (``acl.users.change_user``): what ends a user's logins, and who may touch admins."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from acl.identity import Passwords, TokenService
from acl.models import ApiToken, Role, TokenKind, User
from acl.users import AdminsOnly, NoSuchUser, UserChange, UserChanged, change_user, upsert_user
from storage.db import Database
from tests.acl.conftest import World
from tests.conftest import PASSWORD

TOKENS = TokenService()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    d = Database(f"sqlite+aiosqlite:///{tmp_path / 'users.db'}")
    await asyncio.to_thread(d.migrate)
    yield d
    await d.close()


async def _user(db: Database, name: str, role: Role = Role.operator) -> tuple[int, int]:
    """A user with one live login: (user id, token id)."""
    async with db.session() as s:
        user, _ = await upsert_user(s, name, PASSWORD, role)
        issued = await TOKENS.issue(s, user, kind=TokenKind.session, ttl_s=3600)
        return user.id, issued.id


async def _live_tokens(db: Database, user_id: int) -> list[int]:
    async with db.session() as s:
        q = select(ApiToken.id).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        return list((await s.execute(q)).scalars())


async def _change(db: Database, user_id: int, change: UserChange, *, by_admin: bool = False) -> UserChanged:
    return await change_user(
        db,
        user_id,
        change,
        may_manage=lambda role: role is not Role.admin or by_admin,
        passwords=Passwords(),
        tokens=TOKENS,
    )


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (UserChange(password="another-password-1"), "password changed"),
        (UserChange(role=Role.auditor), "role changed"),
        (UserChange(active=False), "account deactivated"),
        (UserChange(active=False, password="another-password-1"), "account deactivated"),
    ],
)
async def test_password_role_or_deactivation_end_the_logins_in_the_same_change(
    db: Database, change: UserChange, why: str
) -> None:
    uid, token = await _user(db, "op")
    done = await _change(db, uid, change)
    assert (done.why, done.ended_tokens) == (why, [token])
    assert await _live_tokens(db, uid) == []
    assert (done.username, done.role, done.active) == ("op", change.role or Role.operator, change.active is not False)


async def test_a_display_name_or_the_same_role_keeps_the_logins(db: Database) -> None:
    uid, token = await _user(db, "op")
    done = await _change(db, uid, UserChange(display_name="Op", role=Role.operator))
    assert (done.why, done.ended_tokens) == (None, [])
    assert await _live_tokens(db, uid) == [token]
    async with db.session() as s:
        assert (await s.get(User, uid)).display_name == "Op"  # type: ignore[union-attr]


async def test_the_password_is_stored_hashed(db: Database) -> None:
    uid, _ = await _user(db, "op")
    await _change(db, uid, UserChange(password="another-password-1"))
    async with db.session() as s:
        stored = (await s.get(User, uid)).password_hash  # type: ignore[union-attr]
    assert stored and "another-password-1" not in stored
    assert Passwords().verify(stored, "another-password-1")


async def test_only_admins_make_or_change_admins(db: Database) -> None:
    uid, _ = await _user(db, "op")
    aid, admin_token = await _user(db, "boss", Role.admin)
    with pytest.raises(AdminsOnly) as made:
        await _change(db, uid, UserChange(role=Role.admin))
    assert made.value.field == "role"
    with pytest.raises(AdminsOnly) as changed:
        await _change(db, aid, UserChange(active=False))
    assert changed.value.field is None
    assert await _live_tokens(db, aid) == [admin_token]  # nothing was written
    done = await _change(db, uid, UserChange(role=Role.admin), by_admin=True)
    assert done.role is Role.admin


async def test_no_such_user(db: Database) -> None:
    with pytest.raises(NoSuchUser, match="no user 999"):
        await _change(db, 999, UserChange(active=False))


async def test_the_admin_api_answers_as_before(world: World) -> None:
    """``PATCH /api/admin/users/{id}``: 403 naming the field for making an admin, 403 for changing
    one, 404 for no user; an admin may do both."""
    w = world
    await w.user("op-x")
    uid = w.ids["op-x"]
    r = await w.client.patch(f"/api/admin/users/{uid}", json={"role": "admin"}, headers=w.sec)
    assert r.status_code == 403 and r.json()["detail"] == [{"field": "role", "message": "only admins may make admins"}]
    users = {u["username"]: u["id"] for u in await w.ok("GET", "/api/admin/users")}
    r = await w.client.patch(f"/api/admin/users/{users['root']}", json={"active": False}, headers=w.sec)
    assert r.status_code == 403 and r.json()["detail"] == "only admins may change admins"
    r = await w.client.patch("/api/admin/users/99999", json={"active": False}, headers=w.sec)
    assert r.status_code == 404 and r.json()["detail"] == "no user 99999"
    root = w.sec_root  # type: ignore[attr-defined]
    r = await w.client.patch(f"/api/admin/users/{uid}", json={"role": "admin"}, headers=root)
    assert r.status_code == 200, r.text
