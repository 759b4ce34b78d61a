"""Where a camera is steered: its PTZ driver, the device's control address and profile, and the
credentials (encrypted in the secret box like RTSP credentials, never in an API answer)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import ForeignKey, String, Text, delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from camera_registry.egress import CameraNetworks
from storage.db import Base, Database, UtcDateTime, utcnow
from storage.secretbox import SecretBox

__all__ = ["DRIVERS", "CameraPtz", "PtzEndpoint", "PtzEndpointError", "PtzEndpoints"]

DRIVERS = ("onvif",)


class PtzEndpointError(ValueError):
    """A PTZ endpoint that cannot be stored (the message names the field, never a secret)."""


class CameraPtz(Base):
    """A camera's PTZ control: one row per steerable camera."""

    __tablename__ = "camera_ptz"

    camera_id: Mapped[str] = mapped_column(String(64), ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True)
    driver: Mapped[str] = mapped_column(String(16), default="onvif")
    url: Mapped[str] = mapped_column(String(2048), comment="the device service address, without credentials")
    profile: Mapped[str] = mapped_column(String(64), comment="the media profile PTZ is bound to")
    credentials_enc: Mapped[str | None] = mapped_column(Text, default=None, comment="encrypted user:password")
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


@dataclass(frozen=True, slots=True)
class PtzEndpoint:
    """A camera's PTZ control with its credentials in clear (for the driver only)."""

    camera_id: str
    driver: str
    url: str
    profile: str
    username: str
    password: str

    def __repr__(self) -> str:  # never print the password
        return f"PtzEndpoint({self.camera_id!r}, {self.driver!r}, {self.url!r}, {self.profile!r})"


class PtzEndpoints:
    """The ``camera_ptz`` table, credentials sealed by the secret box."""

    def __init__(self, db: Database, box: SecretBox, networks: CameraNetworks) -> None:
        self.db, self.box, self.networks = db, box, networks

    async def get(self, camera_id: str) -> PtzEndpoint | None:
        """The camera's PTZ control, or None if it has none."""
        async with self.db.session() as s:
            row = await s.get(CameraPtz, camera_id)
        if row is None:
            return None
        user, _, password = (
            self.box.decrypt(row.credentials_enc).partition(":") if row.credentials_enc else ("", "", "")
        )
        return PtzEndpoint(row.camera_id, row.driver, row.url, row.profile, user, password)

    async def put(
        self, s: AsyncSession, camera_id: str, *, driver: str, url: str, profile: str, username: str, password: str
    ) -> None:
        """Store (or replace) a camera's PTZ control in the caller's transaction."""
        if driver not in DRIVERS:
            raise PtzEndpointError(f"driver: must be one of {', '.join(DRIVERS)}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
            raise PtzEndpointError("url: an http(s) address without credentials in it")
        self.networks.check(url, "url")
        if not profile or len(profile) > 64:
            raise PtzEndpointError("profile: 1-64 characters")
        creds = self.box.encrypt(f"{username}:{password}") if username else None
        row = await s.get(CameraPtz, camera_id)
        if row is None:
            s.add(CameraPtz(camera_id=camera_id, driver=driver, url=url, profile=profile, credentials_enc=creds))
        else:
            row.driver, row.url, row.profile, row.credentials_enc = driver, url, profile, creds

    async def delete(self, camera_id: str) -> None:
        """Forget a camera's PTZ control."""
        async with self.db.session() as s:
            await s.execute(delete(CameraPtz).where(CameraPtz.camera_id == camera_id))
