"""Settings owned by the camera registry (composed into :class:`gateway.settings.Settings` as
``cameras`` and ``vehicles``)."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["CameraSettings", "VehicleSettings"]


class CameraSettings(BaseModel):
    """Cameras: where their URLs may lead."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_networks: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="CIDRs camera URLs may reach (checked on import, on edit and on every connect, after DNS "
        "resolution); empty = any host (the gateway warns at startup).",
    )

    @field_validator("allowed_networks")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        out = []
        for item in v:
            try:
                out.append(str(ipaddress.ip_network(item.strip())))
            except ValueError as e:
                # ip_network's own message names the value (an address range, never a secret).
                raise ValueError(f"allowed_networks: not a network in CIDR form ({e})") from None
        return out


class VehicleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    """GPS positions of buses and trucks."""

    max_future_skew_s: float = Field(30.0, ge=0, le=3600, description="Positions further in the future are rejected.")
    fresh_s: float = Field(120.0, gt=0, le=86400, description="Default max age of a position used for 'nearest'.")
    track_retention_s: float = Field(3600.0, ge=60, le=7 * 86400, description="Track history kept per vehicle.")
    track_max_points: int = Field(
        720, ge=10, le=100_000, description="Track points kept per vehicle (40 bytes each); the oldest go first."
    )
    max_batch: int = Field(10_000, ge=1, le=1_000_000, description="Positions per request.")
