"""Identity tables: users and API tokens. (Departments, groups and grants join them in acl.policy_models.)"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Boolean, Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base, UtcDateTime, utcnow

__all__ = ["ApiToken", "Membership", "Role", "TokenKind", "User"]


class Role(enum.StrEnum):
    """System roles. What cameras a user sees comes from department grants, not from the role."""

    operator = "operator"
    security_admin = "security_admin"
    auditor = "auditor"
    admin = "admin"
    integration = "integration"  # machine accounts of other systems (GPS feeds, the incident system)


class TokenKind(enum.StrEnum):
    """Bearer tokens: a browser/API login session, or a long-lived machine token."""

    session = "session"
    machine = "machine"


class User(Base):
    """A person or a machine account."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    password_hash: Mapped[str | None] = mapped_column(String(256), default=None)
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=32), default=Role.operator)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Membership(Base):
    """A user's membership of a department, with a role inside it (e.g. ``member``, ``lead``)."""

    __tablename__ = "memberships"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    department_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("departments.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(32), default="member")


class ApiToken(Base):
    """An opaque bearer token; only its SHA-256 is stored, so a database leak yields no usable token."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[TokenKind] = mapped_column(Enum(TokenKind, native_enum=False, length=16))
    name: Mapped[str] = mapped_column(String(128), default="")
    csrf_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)
