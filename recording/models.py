"""The recording index: one row per closed segment file, chained per camera by hashes."""

from __future__ import annotations

from sqlalchemy import JSON, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base

__all__ = ["RecordingLock", "RecordingSegment"]


class RecordingSegment(Base):
    """A segment on disk: camera, time range (epoch seconds, from the samples' own timestamps), size,
    codec, the node that wrote it, its sha256 and the previous segment's (the camera's hash chain)."""

    __tablename__ = "recording_segments"
    __table_args__ = (Index("ix_recording_segments_camera_start", "camera_id", "start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    camera_id: Mapped[str] = mapped_column(String(64))
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    path: Mapped[str] = mapped_column(String(512), unique=True)  # relative to the recordings directory
    bytes: Mapped[int] = mapped_column(Integer)
    codec: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer, default=0)
    height: Mapped[int] = mapped_column(Integer, default=0)
    node: Mapped[str] = mapped_column(String(64), default="")
    sha256: Mapped[str] = mapped_column(String(64))
    prev_sha256: Mapped[str] = mapped_column(String(64), default="")
    # Why it was recorded: "incident", "manual", "rule"; and the incidents it belongs to.
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    incidents: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Set when retention removed the file; the row stays so the chain still verifies.
    deleted_at: Mapped[float | None] = mapped_column(Float, default=None)


class RecordingLock(Base):
    """An evidence lock: segments of the camera overlapping [start, end) are never deleted by retention,
    quota or low space while it stands. Made and lifted by security admins, each with a reason."""

    __tablename__ = "recording_locks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    camera_id: Mapped[str] = mapped_column(String(64), index=True)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    lifted_by: Mapped[str | None] = mapped_column(String(64), default=None)
    lifted_at: Mapped[float | None] = mapped_column(Float, default=None)
    lift_reason: Mapped[str | None] = mapped_column(String(500), default=None)
