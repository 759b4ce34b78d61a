"""Policy tables: organisation, memberships, camera groups, Casbin rules and policy revisions.

Grants and deny rules are Casbin ``p`` rules, memberships ``g`` rules and static group members
``g2`` rules, all in ``casbin_rule`` (Casbin's usual table shape), written through
:mod:`acl.casbin_adapter`. Dynamic groups are definitions here whose members are computed from
the inventory when the policy is compiled.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base, UtcDateTime, utcnow

__all__ = ["CameraGroup", "CasbinRule", "Department", "OrgLevel", "PolicyRevision"]


class OrgLevel(enum.StrEnum):
    """Where a unit sits: the district centre, a sub-district centre, a neighbourhood station, or a department."""

    district = "district"
    subdistrict = "subdistrict"
    station = "station"
    department = "department"


class Department(Base):
    """An organisational unit whose members share grants."""

    __tablename__ = "departments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    level: Mapped[OrgLevel] = mapped_column(Enum(OrgLevel, native_enum=False, length=16), default=OrgLevel.department)
    parent_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("departments.id", ondelete="SET NULL"), default=None
    )
    area: Mapped[str | None] = mapped_column(String(64), default=None, comment="sub-district it serves")
    # Who wins a camera's PTZ (higher wins); None: the gateway's default for the unit (ptz settings).
    ptz_priority: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class CameraGroup(Base):
    """A named set of cameras: static (a list, kept as g2 rules) or dynamic (attribute filter)."""

    __tablename__ = "camera_groups"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    dynamic: Mapped[bool] = mapped_column(default=False)
    # Dynamic filter: {"area": [...], "kind": [...], "tag": [...], "department": [...]}; all given keys must match.
    filter: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class CasbinRule(Base):
    """One Casbin policy line (``p``, ``g`` or ``g2``)."""

    __tablename__ = "casbin_rule"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ptype: Mapped[str] = mapped_column(String(8), index=True)
    v0: Mapped[str] = mapped_column(String(128), default="", index=True)
    v1: Mapped[str] = mapped_column(String(128), default="")
    v2: Mapped[str] = mapped_column(String(64), default="")
    v3: Mapped[str] = mapped_column(String(64), default="")
    v4: Mapped[str] = mapped_column(String(64), default="")
    v5: Mapped[str] = mapped_column(String(128), default="")


class PolicyRevision(Base):
    """A versioned policy change: who, when, why, what changed, and the full policy after it."""

    __tablename__ = "policy_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    author: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")
    diff: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
