"""Settings owned by the ACL (composed into :class:`gateway.settings.Settings` as ``acl``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from camera_registry.districts import normalise_district

__all__ = ["AclSettings"]


class AclSettings(BaseModel):
    """Viewing policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    district_geojson: Path | None = Field(
        None, description="GeoJSON polygon of the district (truck location rule). Empty = no polygon."
    )
    home_district: str = Field("闵行区", description="Trucks registered here are visible anywhere.")
    position_max_age_s: int = Field(300, ge=1, description="Older GPS positions do not count as inside.")
    gc_freeze: bool = Field(
        True,
        description="After every full policy compile, move the heap out of the cyclic garbage collector's "
        "full collections (gc.freeze; one full collection first, so nothing frozen earlier leaks).",
    )

    @field_validator("home_district")
    @classmethod
    def _home(cls, v: str) -> str:
        # ``上海市闵行区``, ``闵行区`` and ``Minhang`` are one district (camera_registry.districts).
        return normalise_district(v)
