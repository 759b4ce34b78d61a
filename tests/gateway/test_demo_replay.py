"""The demo's GPS replay: every sample vehicle gets a route; the feed goes through the position intake."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from camera_registry.positions import PositionService
from camera_registry.settings import VehicleSettings
from gateway.demo import INVENTORY, gps_replay, replay_plan

ROOT = Path(__file__).resolve().parents[2]


def test_every_vehicle_gets_a_route_and_the_recorded_ones_drive_as_recorded() -> None:
    vehicles = json.loads((INVENTORY / "sample_vehicles.json").read_text(encoding="utf-8"))
    plan = replay_plan(vehicles)
    assert set(plan) == {v["id"] for v in vehicles}
    first = json.loads((ROOT / "fixtures" / "gps" / "bus_trace.ndjson").read_text().splitlines()[0])
    assert plan["bus-01"][0] == (first["lat"], first["lon"])
    assert len({route[0] for route in plan.values()}) == len(plan)  # not all on one spot
    for route in plan.values():
        assert all(30.8 < lat < 31.5 and 121.0 < lon < 121.7 for lat, lon in route)


async def test_the_replay_feeds_positions_through_the_intake_until_stopped() -> None:
    vehicles = json.loads((INVENTORY / "sample_vehicles.json").read_text(encoding="utf-8"))
    positions = PositionService(VehicleSettings(), None, "闵行区", lambda _lat, _lon: True)
    positions.set_inventory({v["id"]: (v["kind"], v["home_district"]) for v in vehicles}, [])
    ld: Any = type("Ld", (), {"positions": positions})()
    stop = await gps_replay(ld)(ld)
    await asyncio.sleep(0.2)
    fixes = await positions.latest_many([v["id"] for v in vehicles])
    await stop()
    assert set(fixes) == {v["id"] for v in vehicles}
    plan = replay_plan(vehicles)
    assert (fixes["bus-01"].lat, fixes["bus-01"].lon) == plan["bus-01"][0]
