"""The body of ``POST /api/cameras/{id}/ptz``: one PTZ command, validated before anything moves."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["OPS", "PtzCommand"]

OPS = ("continuous", "stop", "absolute", "relative", "home", "goto_preset", "set_preset")
Speed = Field(0.0, ge=-1, le=1)


class PtzCommand(BaseModel):
    """One command in ONVIF's generic spaces: speeds and translations in -1..1, absolute zoom in 0..1."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    op: Literal["continuous", "stop", "absolute", "relative", "home", "goto_preset", "set_preset"]
    pan: float = Speed
    tilt: float = Speed
    zoom: float | None = Field(None, ge=-1, le=1)
    timeout_s: float | None = Field(None, gt=0, le=120, description="continuous: the camera stops after this")
    preset: str | None = Field(None, min_length=1, max_length=64, description="goto_preset: the token")
    name: str | None = Field(None, min_length=1, max_length=64, description="set_preset: the new preset's name")

    @model_validator(mode="after")
    def _fields_for_op(self) -> PtzCommand:
        if self.op == "goto_preset" and not self.preset:
            raise ValueError("preset: required for goto_preset")
        if self.op == "set_preset" and not (self.name or self.preset):
            raise ValueError("name: required for set_preset")
        if self.op == "absolute" and self.zoom is not None and self.zoom < 0:
            raise ValueError("zoom: 0..1 for absolute")
        return self
