"""Tables: alarm sources (HMAC secrets, encrypted), alarms (stored before the reply), incidents,
and the stored part of the alarm routing table."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base, UtcDateTime, utcnow

__all__ = ["Alarm", "AlarmRouteRow", "AlarmSource", "Incident", "IncidentCategory", "IncidentStatsRollup", "Notice"]


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


# The statistics read only these columns of a period's cases: an index holding all of them answers
# the grouped query without touching the table (SQLite and PostgreSQL alike).
STATS_COLUMNS = (
    "created_at",
    "area",
    "station",
    "dispatched_to",
    "state",
    "dispatched_at",
    "onsite_deadline",
    "onsite_at",
    "resolve_deadline",
    "resolved_at",
)

# A case whose statistics still change with time alone: a deadline set and its step not reached.
UNSETTLED_SQL = text(
    "((onsite_deadline IS NOT NULL AND onsite_at IS NULL) OR (resolve_deadline IS NOT NULL AND resolved_at IS NULL))"
)


class Incident(Base):
    """An incident (a case) and its workflow state."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_stats", *STATS_COLUMNS),
        # The cases still in the field (a deadline set, its step not reached): the only ones the
        # statistics count live; the rest come from IncidentStatsRollup. Partial, so it stays small.
        Index(
            "ix_incidents_unsettled",
            *STATS_COLUMNS,
            sqlite_where=UNSETTLED_SQL,
            postgresql_where=UNSETTLED_SQL,
        ),
    )

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
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    onsite_deadline: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)
    resolve_deadline: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Set once grants, pre-warm and the event went out; a restart redoes them for incidents without it.
    effects_applied: Mapped[bool] = mapped_column(Boolean, default=False)
    # Deadlines ("onsite", "resolve") whose passing was already announced.
    overdue_announced: Mapped[list[str]] = mapped_column(JSON, default=list)
    # -- the case as the district runs it (issue 18): how it was born, where, who reported it --
    origin: Mapped[str] = mapped_column(String(16), default="alarm", index=True)  # alarm | hotline | patrol | api
    category: Mapped[str] = mapped_column(String(32), default="", index=True)
    station: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    address: Mapped[str] = mapped_column(String(300), default="")
    # Encrypted at rest (the secret box); lists show them masked, handlers in full (audited).
    reporter_name_enc: Mapped[str | None] = mapped_column(Text, default=None)
    reporter_phone_enc: Mapped[str | None] = mapped_column(Text, default=None)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    # Step times: the statistics compare them with the deadlines in SQL, so "overdue ever" needs no flag.
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)
    onsite_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)
    # Who took the field steps (on site, resolve): they may not verify their own work.
    handlers: Mapped[list[str]] = mapped_column(JSON, default=list)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class IncidentCategory(Base):
    """A case category and its deadlines (admin-editable; unknown categories use the defaults)."""

    __tablename__ = "incident_categories"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    label: Mapped[str] = mapped_column(String(128), default="")
    onsite_hours: Mapped[float] = mapped_column(Float)
    resolve_hours: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Notice(Base):
    """One notification in the outbox, written in the transaction of the step that causes it and
    delivered at least once by the worker; receivers deduplicate on ``key``."""

    __tablename__ = "incident_notices"
    __table_args__ = (Index("ix_incident_notices_due", "state", "next_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)
    incident_id: Mapped[str] = mapped_column(String(40), index=True)
    kind: Mapped[str] = mapped_column(String(24))  # dispatched | deadline_soon | deadline_passed
    unit: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))  # webhook | sms
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(12), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_error: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)


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


class IncidentStatsRollup(Base):
    """The statistics' measures of the *settled* cases (no deadline pending), summed per local day
    and per local month and per unit of each kind (``dim``: subdistrict, station, department; ``all``
    holds the district's total under the time zone's name). Kept in step with ``incidents`` in the
    same transaction as every change (:mod:`gateway.alarms.rollup`)."""

    __tablename__ = "incident_stats_rollup"

    dim: Mapped[str] = mapped_column(String(16), primary_key=True)
    grain: Mapped[str] = mapped_column(String(8), primary_key=True)  # day | month
    period: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD | YYYY-MM (local)
    unit: Mapped[str] = mapped_column(String(64), primary_key=True)
    received: Mapped[int] = mapped_column(Integer, default=0)
    dispatched: Mapped[int] = mapped_column(Integer, default=0)
    onsite_due: Mapped[int] = mapped_column(Integer, default=0)
    onsite_ok: Mapped[int] = mapped_column(Integer, default=0)
    resolve_due: Mapped[int] = mapped_column(Integer, default=0)
    resolve_ok: Mapped[int] = mapped_column(Integer, default=0)
    closed: Mapped[int] = mapped_column(Integer, default=0)
    overdue: Mapped[int] = mapped_column(Integer, default=0)
