"""The ``[ptz]`` settings: arbitration, move limits, default unit priorities, ONVIF and discovery."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PtzSettings"]


class PtzSettings(BaseModel):
    """PTZ arbitration and drivers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idle_release_s: float = Field(
        30.0, ge=1, le=3600, description="A holder's PTZ session ends this long after their last command."
    )
    move_timeout_s: float = Field(
        1.0, gt=0, le=60, description="The timeout of a continuous move that names none (the camera stops by itself)."
    )
    max_move_timeout_s: float = Field(10.0, gt=0, le=120, description="The longest timeout a continuous move may ask.")
    commands_per_s: float = Field(10.0, gt=0, le=1000, description="Sustained PTZ commands per user (429 beyond).")
    command_burst: int = Field(20, ge=1, le=10_000, description="PTZ commands a user may send at once.")
    level_priority: dict[str, int] = Field(
        default_factory=lambda: {"district": 100, "subdistrict": 50, "station": 40, "department": 20},
        description="The PTZ priority of a unit without its own, by level (higher wins).",
    )
    unit_priority: dict[str, int] = Field(
        default_factory=lambda: {"police": 100},
        description="The PTZ priority of named units without their own (police with the district command centre).",
    )
    lock_max_minutes: int = Field(
        24 * 60, ge=1, le=7 * 24 * 60, description="The longest an incident may lock its cameras' PTZ."
    )
    onvif_timeout_s: float = Field(3.0, gt=0, le=60, description="One ONVIF request's deadline.")
    discovery_interface: str | None = Field(
        None,
        description="The IPv4 address of the one interface `liandong cameras discover` may multicast a "
        "WS-Discovery probe on (none: unicast probes to discovery_targets only).",
    )
    discovery_targets: list[str] = Field(
        default_factory=list, max_length=4096, description="host:port addresses probed by unicast WS-Discovery."
    )
