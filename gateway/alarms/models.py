"""Tables: alarm sources (HMAC secrets, encrypted), alarms (stored before the reply), incidents,
and the stored part of the alarm routing table."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base, UtcDateTime, utcnow

__all__ = ["Alarm", "AlarmRouteRow", "AlarmSource", "Incident"]


class AlarmSource(Base):
    """A system allowed to post alarms, with its signing secret (encrypted at rest)."""

    __tablename__ = "alarm_sources"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret_enc: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    rotated_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)


class Alarm(Base):
    """An alarm as received (idempotent on source + alarm id)."""

    __tablename__ = "alarms"
    __table_args__ = (UniqueConstraint("source", "alarm_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64), ForeignKey("alarm_sources.name"))
    alarm_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(32))
    vehicle_id: Mapped[str | None] = mapped_column(String(64), default=None)
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lon: Mapped[float | None] = mapped_column(Float, default=None)
    time: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    text: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    incident_id: Mapped[str] = mapped_column(String(40), index=True)


class Incident(Base):
    """An incident and its workflow state."""

    __tablename__ = "incidents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="new", index=True)
    area: Mapped[str] = mapped_column(String(64), default="", index=True)
    vehicle_id: Mapped[str | None] = mapped_column(String(64), default=None)
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lon: Mapped[float | None] = mapped_column(Float, default=None)
    text: Mapped[str] = mapped_column(Text, default="")
    cameras: Mapped[list[str]] = mapped_column(JSON, default=list)
    departments: Mapped[list[str]] = mapped_column(JSON, default=list)
    dispatched_to: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    level: Mapped[str] = mapped_column(String(16), default="subdistrict")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    onsite_deadline: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)
    resolve_deadline: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Set once grants, pre-warm and the event went out; a restart redoes them for incidents without it.
    effects_applied: Mapped[bool] = mapped_column(Boolean, default=False)
    # Deadlines ("onsite", "resolve") whose passing was already announced.
    overdue_announced: Mapped[list[str]] = mapped_column(JSON, default=list)


class AlarmRouteRow(Base):
    """A routing rule added by an administrator: alarms of ``type`` in ``area`` go to ``departments``
    (``*`` matches any), optionally only during ``hours`` (local ``HH:MM-HH:MM``)."""

    __tablename__ = "alarm_routes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    area: Mapped[str] = mapped_column(String(64), default="*")
    type: Mapped[str] = mapped_column(String(32), default="*")
    departments: Mapped[list[str]] = mapped_column(JSON, default=list)
    hours: Mapped[str] = mapped_column(String(11), default="")
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
