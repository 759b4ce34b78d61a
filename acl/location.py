"""The location rule: trucks registered outside the district are visible only while inside it.

The rule itself is an ordinary deny rule of the policy (``*`` may not ``view_snapshot``
``group:foreign-trucks-outside``, tagged ``location``); this module keeps that computed group's
members true to the trucks' latest GPS fixes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from acl.decider import AccessDecider
from acl.index import FOREIGN_TRUCKS_OUTSIDE, CameraAttrs
from acl.policy import RuleSpec

if TYPE_CHECKING:
    from camera_registry.models import Vehicle

__all__ = ["LOCATION_RULE", "LOCATION_TAG", "District", "LocationRule", "ShapelyDistrict", "load_district"]

LOCATION_TAG = "location"
LOCATION_RULE = RuleSpec("*", f"group:{FOREIGN_TRUCKS_OUTSIDE}", "view_snapshot", "deny", tag=LOCATION_TAG)


class District(Protocol):
    """The district's outline."""

    def contains(self, lat: float, lon: float) -> bool:
        """Whether the point is inside."""
        ...


class ShapelyDistrict:
    """A district outline read from GeoJSON (a polygon, a Feature or the first Feature of a collection)."""

    def __init__(self, geojson: Mapping[str, object]) -> None:
        from shapely.geometry import shape
        from shapely.prepared import prep

        geom: object = geojson
        if geojson.get("type") == "FeatureCollection":
            features = geojson["features"]
            assert isinstance(features, list)
            geom = features[0]["geometry"]
        elif geojson.get("type") == "Feature":
            geom = geojson["geometry"]
        self._area = prep(shape(geom))

    def contains(self, lat: float, lon: float) -> bool:
        """Whether the point is inside the outline."""
        from shapely.geometry import Point

        return bool(self._area.contains(Point(lon, lat)))


def load_district(path: Path | None) -> District | None:
    """The district outline in ``path`` (``acl.district_geojson``); None when none is configured."""
    if path is None:
        return None
    return ShapelyDistrict(json.loads(path.read_text(encoding="utf-8")))


class LocationRule:
    """Keeps ``group:foreign-trucks-outside`` in the deciding index true to the foreign trucks' positions.

    ``crossed`` is set whenever a truck's side of the boundary changes (the sweep wakes up and ends
    the streams that lost access).
    """

    def __init__(
        self, district: District | None, decider: AccessDecider, *, home_district: str, position_max_age_s: float
    ) -> None:
        self.district = district
        self.decider = decider
        self.home_district = home_district
        self.position_max_age_s = position_max_age_s
        self.crossed = asyncio.Event()
        self._trucks: dict[str, list[str]] = {}  # foreign vehicle -> its cameras
        self._positions: dict[str, tuple[float, float, float]] = {}  # vehicle -> (lat, lon, epoch)
        self._inside: dict[str, bool] = {}

    @property
    def enabled(self) -> bool:
        """Whether the rule applies (a district outline is configured)."""
        return self.district is not None

    def inventory_loaded(self, cameras: Iterable[CameraAttrs], vehicles: Mapping[str, Vehicle]) -> None:
        """The cameras changed: which of them are on trucks registered outside the district."""
        self._trucks = {}
        for c in cameras:
            v = vehicles.get(c.vehicle_id or "")
            if c.kind == "truck" and v is not None and v.home_district != self.home_district:
                self._trucks.setdefault(v.id, []).append(c.id)

    def inside_district(self, lat: float, lon: float) -> bool:
        """Whether a point is inside the district polygon (True when no polygon is configured)."""
        return self.district is None or self.district.contains(lat, lon)

    def foreign_trucks(self) -> list[str]:
        """Vehicles the location rule watches (trucks registered outside the district)."""
        return list(self._trucks)

    def truck_cameras(self) -> dict[str, list[str]]:
        """Foreign vehicle -> its cameras."""
        return {v: list(cams) for v, cams in self._trucks.items()}

    def outside_cameras(self) -> set[str]:
        """The cameras of foreign trucks not known to be inside now (the computed group's members)."""
        out: set[str] = set()
        for vid, cams in self._trucks.items():
            if not self._inside.get(vid, False):
                out.update(cams)
        return out

    def update_vehicle_position(self, vehicle_id: str, lat: float, lon: float, at: float | None = None) -> None:
        """Feed a GPS fix; a foreign truck crossing the district boundary changes who sees it."""
        at = time.time() if at is None else at
        prev = self._positions.get(vehicle_id)
        if prev is not None and prev[2] > at:
            return  # older than what we know
        self._positions[vehicle_id] = (lat, lon, at)
        if vehicle_id in self._trucks:
            self.refresh(vehicle_id)

    def refresh_all(self) -> None:
        """Look at every foreign truck again (positions go stale by themselves)."""
        for vid in list(self._trucks):
            self.refresh(vid)

    def refresh(self, vehicle_id: str) -> bool:
        """Whether the truck's side of the boundary changed (the index follows at once)."""
        pos = self._positions.get(vehicle_id)
        inside = False
        if pos is not None and self.district is not None:
            fresh = time.time() - pos[2] <= self.position_max_age_s
            inside = fresh and self.inside_district(pos[0], pos[1])
        if self._inside.get(vehicle_id, False) != inside:
            self._inside[vehicle_id] = inside
            self.decider.index.set_computed_group(FOREIGN_TRUCKS_OUTSIDE, self.outside_cameras())
            self.crossed.set()
            return True
        return False
