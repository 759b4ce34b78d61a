"""Settings owned by the camera registry (composed into :class:`gateway.settings.Settings` as ``cameras``)."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["CameraSettings"]


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
