"""Tables of the camera inventory: cameras (fixed, bus, truck) and the vehicles that carry them."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Enum, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base, UtcDateTime, utcnow

__all__ = ["Camera", "CameraKind", "CameraStatus", "Vehicle", "VehicleKind"]


class CameraKind(enum.StrEnum):
    """Where a camera is mounted."""

    fixed = "fixed"
    bus = "bus"
    truck = "truck"


class VehicleKind(enum.StrEnum):
    """Vehicles that carry cameras."""

    bus = "bus"
    truck = "truck"


class CameraStatus(enum.StrEnum):
    """Result of the last probe (or live session) of a camera's source."""

    unknown = "unknown"
    online = "online"
    offline = "offline"
    error = "error"


class Vehicle(Base):
    """A bus or a hazardous-goods truck."""

    __tablename__ = "vehicles"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[VehicleKind] = mapped_column(Enum(VehicleKind, native_enum=False, length=16))
    plate: Mapped[str] = mapped_column(String(32), index=True)
    line: Mapped[str | None] = mapped_column(String(64), default=None, comment="bus line")
    cargo: Mapped[str | None] = mapped_column(String(128), default=None, comment="truck cargo")
    home_district: Mapped[str] = mapped_column(String(64), default="")
    contact: Mapped[str | None] = mapped_column(String(256), default=None, comment="driver/escort contact")
    driver: Mapped[str | None] = mapped_column(String(64), default=None)
    driver_phone: Mapped[str | None] = mapped_column(String(32), default=None)
    escort: Mapped[str | None] = mapped_column(String(64), default=None, comment="truck escort (押运员)")
    company: Mapped[str | None] = mapped_column(String(128), default=None, comment="operator or carrier")
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class Camera(Base):
    """One camera of the telecom's inventory.

    ``source_url`` never holds credentials: they are split out on import and kept encrypted in
    ``credentials_enc`` (see :mod:`camera_registry.urls`); values of credential parameters in its
    path or query are masked there (:mod:`camera_registry.url_secrets`).
    """

    __tablename__ = "cameras"
    __table_args__ = (
        CheckConstraint("lat IS NULL OR (lat >= -90 AND lat <= 90)", name="lat_range"),
        CheckConstraint("lon IS NULL OR (lon >= -180 AND lon <= 180)", name="lon_range"),
        Index("ix_cameras_area_kind", "area", "kind"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[CameraKind] = mapped_column(Enum(CameraKind, native_enum=False, length=16), index=True)
    source_url: Mapped[str] = mapped_column(String(2048), comment="rtsp(s) URL without credentials")
    credentials_enc: Mapped[str | None] = mapped_column(Text, default=None, comment="encrypted user:password")
    area: Mapped[str] = mapped_column(String(64), default="", index=True, comment="sub-district")
    station: Mapped[str] = mapped_column(
        String(64), default="", server_default="", index=True, comment="neighbourhood station (居村委)"
    )
    department: Mapped[str] = mapped_column(String(64), default="", index=True, comment="owning department")
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lon: Mapped[float | None] = mapped_column(Float, default=None)
    vehicle_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("vehicles.id", ondelete="SET NULL"), default=None, index=True
    )
    vehicle_position: Mapped[str | None] = mapped_column(String(32), default=None)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    codec: Mapped[str | None] = mapped_column(String(32), default=None)
    width: Mapped[int | None] = mapped_column(Integer, default=None)
    height: Mapped[int | None] = mapped_column(Integer, default=None)
    fps: Mapped[float | None] = mapped_column(Float, default=None)
    status: Mapped[CameraStatus] = mapped_column(
        Enum(CameraStatus, native_enum=False, length=16), default=CameraStatus.unknown, index=True
    )
    status_reason: Mapped[str | None] = mapped_column(String(256), default=None)
    last_seen: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    def public_dict(self) -> dict[str, Any]:
        """The camera as API clients see it: never the credentials."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind.value,
            "source_url": self.source_url,
            "has_credentials": self.credentials_enc is not None,
            "area": self.area,
            "station": self.station,
            "department": self.department,
            "lat": self.lat,
            "lon": self.lon,
            "vehicle_id": self.vehicle_id,
            "vehicle_position": self.vehicle_position,
            "tags": list(self.tags or []),
            "codec": self.codec,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "status": self.status.value,
            "status_reason": self.status_reason,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
        }
