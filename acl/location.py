"""The location rule: trucks registered outside the district are visible only while inside it.

The rule itself is an ordinary deny rule of the policy (``*`` may not ``view_snapshot``
``group:foreign-trucks-outside``, tagged ``location``); this module keeps that computed group's
members true to the trucks' latest GPS fixes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from acl.decider import AccessDecider
from acl.index import FOREIGN_TRUCKS_OUTSIDE, CameraAttrs
from acl.policy import RuleSpec
from camera_registry.districts import normalise_district, same_district

if TYPE_CHECKING:
    from camera_registry.models import Vehicle

__all__ = ["LOCATION_RULE", "LOCATION_TAG", "District", "LocationRule", "ShapelyDistrict", "load_district"]

log = logging.getLogger(__name__)

LOCATION_TAG = "location"
LOCATION_RULE = RuleSpec("*", f"group:{FOREIGN_TRUCKS_OUTSIDE}", "view_snapshot", "deny", tag=LOCATION_TAG)


class District(Protocol):
    """The district's outline."""

    def contains(self, lat: float, lon: float) -> bool:
        """Whether the point is inside."""
        ...


class ShapelyDistrict:
    """A district outline read from GeoJSON (a polygon, a Feature or the first Feature of a collection).

    ``name`` is the feature's ``district`` property, normalised (``上海市闵行区`` -> ``闵行区``), or
    None when the file does not say which district it outlines.
    """

    def __init__(self, geojson: Mapping[str, object]) -> None:
        from shapely.geometry import shape
        from shapely.prepared import prep

        geom: object = geojson
        feature: object = None
        if geojson.get("type") == "FeatureCollection":
            features = geojson["features"]
            assert isinstance(features, list)
            feature = features[0]
            geom = features[0]["geometry"]
        elif geojson.get("type") == "Feature":
            feature = geojson
            geom = geojson["geometry"]
        props = feature.get("properties") if isinstance(feature, dict) else None
        named = props.get("district") if isinstance(props, dict) else None
        self.name: str | None = normalise_district(named) if isinstance(named, str) and named.strip() else None
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
        self._reported: str | None = None

    @property
    def enabled(self) -> bool:
        """Whether the rule applies (a district outline is configured)."""
        return self.district is not None

    def inventory_loaded(self, cameras: Iterable[CameraAttrs], vehicles: Mapping[str, Vehicle]) -> None:
        """The cameras changed: which of them are on trucks registered outside the district
        (``上海市闵行区``, ``闵行区`` and ``Minhang`` are all the home district)."""
        self._trucks = {}
        for c in cameras:
            v = vehicles.get(c.vehicle_id or "")
            if c.kind == "truck" and v is not None and not same_district(v.home_district, self.home_district):
                self._trucks.setdefault(v.id, []).append(c.id)
        problem = self.problem()
        if problem is not None and problem != self._reported:
            # Loud: without it, trucks from elsewhere would be visible everywhere and nobody would know.
            log.error("TRUCK LOCATION RULE IS OFF: %s", problem)
        self._reported = problem

    def problem(self) -> str | None:
        """Why the truck rule cannot do its job (``/readyz`` reports it), or None when it can: trucks
        registered outside the district but no district polygon, or a polygon of another district."""
        if self.district is None:
            if self._trucks:
                return (
                    f"{len(self._trucks)} trucks are registered outside {self.home_district} but no district "
                    "polygon is configured (acl.district_geojson): they would be visible everywhere"
                )
            return None
        name = getattr(self.district, "name", None)
        if isinstance(name, str) and not same_district(name, self.home_district):
            return f"the district polygon outlines {name} but acl.home_district is {self.home_district}"
        return None

    def inside_district(self, lat: float, lon: float) -> bool:
        """Whether a point is inside the district polygon (True when no polygon is configured)."""
        return self.district is None or self.district.contains(lat, lon)

    def foreign_trucks(self) -> list[str]:
        """Vehicles the location rule watches (trucks registered outside the district)."""
        return list(self._trucks)

    def shares(self, vehicle_id: str) -> bool:
        """Whether the vehicle's details may be shown at all: a truck registered outside the district
        only while it is (freshly) inside it, as the registering district shares them once it enters;
        every other vehicle always. Also for administrators: this is a data-sharing condition, not a
        viewing grant."""
        return vehicle_id not in self._trucks or self._inside.get(vehicle_id, False)

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
