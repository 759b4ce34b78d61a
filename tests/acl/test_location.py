"""The location rule on its own: which trucks it watches, and the computed group following their fixes."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from acl.decider import AccessDecider
from acl.index import FOREIGN_TRUCKS_OUTSIDE, CameraAttrs, VisibilityIndex
from acl.location import LocationRule

CAMERAS = [
    CameraAttrs("away-front", kind="truck", vehicle_id="away"),
    CameraAttrs("away-back", kind="truck", vehicle_id="away"),
    CameraAttrs("home-front", kind="truck", vehicle_id="home"),
    CameraAttrs("bus-front", kind="bus", vehicle_id="bus"),
    CameraAttrs("fixed"),
]
VEHICLES: dict[str, Any] = {
    "away": SimpleNamespace(id="away", home_district="elsewhere"),
    "home": SimpleNamespace(id="home", home_district="here"),
    "bus": SimpleNamespace(id="bus", home_district="elsewhere"),  # not a truck: not watched
}


class NorthOfZero:
    """A district: everything with a positive latitude."""

    def contains(self, lat: float, lon: float) -> bool:
        return lat > 0


def rule(district: Any = NorthOfZero()) -> LocationRule:
    decider = AccessDecider()
    loc = LocationRule(district, decider, home_district="here", position_max_age_s=60)
    loc.inventory_loaded(CAMERAS, VEHICLES)
    decider.index = VisibilityIndex(CAMERAS, [], {}, {}, {FOREIGN_TRUCKS_OUTSIDE: loc.outside_cameras()})
    return loc


def outside(loc: LocationRule) -> set[str]:
    return set(loc.decider.index.members(f"group:{FOREIGN_TRUCKS_OUTSIDE}"))


def test_only_trucks_registered_elsewhere_are_watched_and_start_outside() -> None:
    loc = rule()
    assert loc.foreign_trucks() == ["away"]
    assert loc.truck_cameras() == {"away": ["away-front", "away-back"]}
    assert outside(loc) == {"away-front", "away-back"}


def test_crossing_the_boundary_changes_the_group_and_wakes_the_sweep() -> None:
    loc = rule()
    now = time.time()
    loc.update_vehicle_position("away", 1.0, 0.0, now)
    assert outside(loc) == set() and loc.crossed.is_set()
    loc.crossed.clear()
    loc.update_vehicle_position("away", 2.0, 0.0, now + 1)  # still inside: no news
    assert not loc.crossed.is_set()
    loc.update_vehicle_position("away", 1.0, 0.0, now - 5)  # older than what is known: ignored
    loc.update_vehicle_position("away", -1.0, 0.0, now + 2)
    assert outside(loc) == {"away-front", "away-back"} and loc.crossed.is_set()


def test_a_stale_fix_does_not_count_as_inside() -> None:
    loc = rule()
    loc.update_vehicle_position("away", 1.0, 0.0, time.time() - 61)
    assert outside(loc) == {"away-front", "away-back"}
    loc.update_vehicle_position("away", 1.0, 0.0, time.time())
    assert outside(loc) == set()
    loc._positions["away"] = (1.0, 0.0, time.time() - 61)  # the fix ages
    loc.refresh_all()
    assert outside(loc) == {"away-front", "away-back"}


def test_without_a_district_points_are_inside_but_no_truck_is() -> None:
    loc = rule(district=None)
    assert not loc.enabled and loc.inside_district(-50.0, 0.0)
    loc.update_vehicle_position("away", 1.0, 0.0)
    # As before the split: the location rule is not added to the policy then, so the group is unused.
    assert outside(loc) == {"away-front", "away-back"}
