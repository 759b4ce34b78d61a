"""Validated input records for cameras and vehicles (API bodies and inventory import rows)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from camera_registry.districts import normalise_district
from camera_registry.models import CameraKind, VehicleKind
from camera_registry.urls import SourceUrlError, parse_source_url

__all__ = ["CAMERA_FIELDS", "CAMERA_PLAIN_FIELDS", "VEHICLE_FIELDS", "CameraIn", "CameraPatch", "VehicleIn"]

Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[\w.:-]+$")]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


def _check_url(v: str) -> str:
    try:
        parse_source_url(v)
    except SourceUrlError as e:
        # pydantic prefixes the field name; keep only the reason.
        raise ValueError(str(e).split(": ", 1)[-1]) from None
    return v.strip()


class CameraIn(BaseModel):
    """A camera as given by an admin or the telecom's inventory (source_url may hold credentials)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: Id
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    kind: CameraKind = CameraKind.fixed
    source_url: Annotated[str, StringConstraints(max_length=2048)]
    area: ShortText = ""
    station: ShortText = Field("", description="Neighbourhood station (居村委工作站) inside the sub-district.")
    department: ShortText = ""
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    vehicle_id: Id | None = None
    vehicle_position: Annotated[str, StringConstraints(max_length=32)] | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=50)

    _url = field_validator("source_url")(_check_url)

    @model_validator(mode="after")
    def _consistent(self) -> CameraIn:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon: give both or neither")
        if self.kind is CameraKind.fixed:
            if self.vehicle_id:
                raise ValueError("vehicle_id: a fixed camera has no vehicle")
        elif not self.vehicle_id:
            raise ValueError(f"vehicle_id: required for a {self.kind.value} camera")
        self.tags = sorted(set(self.tags))
        return self


class CameraPatch(BaseModel):
    """A partial update of a camera; unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    kind: CameraKind | None = None
    source_url: Annotated[str, StringConstraints(max_length=2048)] | None = None
    area: ShortText | None = None
    station: ShortText | None = None
    department: ShortText | None = None
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    vehicle_id: Id | None = None
    vehicle_position: Annotated[str, StringConstraints(max_length=32)] | None = None
    tags: list[Tag] | None = Field(None, max_length=50)
    clear_credentials: bool = Field(False, description="Forget the stored RTSP user and password.")

    @field_validator("source_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else _check_url(v)


class VehicleIn(BaseModel):
    """A bus or truck record."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: Id
    kind: VehicleKind
    plate: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    line: Annotated[str, StringConstraints(max_length=64)] | None = None
    cargo: Annotated[str, StringConstraints(max_length=128)] | None = None
    home_district: ShortText = ""
    contact: Annotated[str, StringConstraints(max_length=256)] | None = None
    driver: Annotated[str, StringConstraints(max_length=64)] | None = None
    driver_phone: Annotated[str, StringConstraints(max_length=32)] | None = None
    escort: Annotated[str, StringConstraints(max_length=64)] | None = None
    company: Annotated[str, StringConstraints(max_length=128)] | None = None

    @field_validator("home_district")
    @classmethod
    def _district(cls, v: str) -> str:
        # One spelling per district, so the location rule compares like with like.
        return normalise_district(v)


# The one list of a camera's fields, in the order inventory files have them (import and export
# columns); everything but the id and the source URL is stored as given (the URL's credentials go
# to the secret box).
CAMERA_FIELDS = tuple(CameraIn.model_fields)
CAMERA_PLAIN_FIELDS = tuple(f for f in CAMERA_FIELDS if f not in ("id", "source_url"))
VEHICLE_FIELDS = tuple(VehicleIn.model_fields)
