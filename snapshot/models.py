"""Privacy masks per camera, drawn on every thumbnail."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base, UtcDateTime, utcnow

__all__ = ["CameraMask"]


class CameraMask(Base):
    """The masks of one camera: ``[{"points": [[x, y], ...], "mode": "fill"|"blur"}]`` in 0..1 coordinates."""

    __tablename__ = "camera_masks"

    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    masks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    updated_by: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
