"""Settings owned by the snapshot service (composed into :class:`gateway.settings.Settings` as ``snapshot``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SnapshotSettings"]


class SnapshotSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    """Thumbnails (the camera wall)."""

    widths: list[int] = Field(
        default_factory=lambda: [160, 320, 640, 1280], min_length=1, description="Widths clients may ask for."
    )
    cache_ttl_s: float = Field(15.0, ge=0, le=3600, description="Oldest thumbnail served before asking the camera.")
    cold_pool_size: int = Field(
        48, ge=1, le=256, description="Cold pulls at once (each a short RTSP session, ~1 s of the camera's bitrate)."
    )
    cold_timeout_s: float = Field(5.0, gt=0, le=60, description="A cold pull gives up after this long.")
    jpeg_quality: int = Field(80, ge=10, le=100)
    refresh_interval_s: float = Field(
        10.0, ge=1, le=3600, description="Watched cameras' thumbnails older than this are refreshed in the background."
    )
    interest_ttl_s: float = Field(60.0, ge=5, le=3600, description="How long a console's interest lasts.")
    stale_keep: int = Field(5000, ge=0, le=1_000_000, description="Last good thumbnails kept for offline cameras.")
