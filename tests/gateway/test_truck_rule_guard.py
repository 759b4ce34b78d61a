"""The truck location rule is never silently off: /readyz answers 503 naming the reason (and the log
says it loudly) when trucks from elsewhere exist but no district polygon is configured, or the
polygon outlines another district; it is ready once the polygon is there."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from camera_registry.inventory import import_inventory
from gateway.settings import load_settings
from gateway.wiring import create_app

ROOT = Path(__file__).resolve().parents[2]
VEHICLES = [
    {"id": "t-away", "kind": "truck", "plate": "苏E1", "cargo": "甲醇", "home_district": "江苏省苏州市"},
    {"id": "t-home", "kind": "truck", "plate": "沪B1", "cargo": "汽油", "home_district": "Minhang"},
]
CAMERAS = [
    {
        "id": f"{v['id']}-cab",
        "name": v["plate"],
        "kind": "truck",
        "vehicle_id": v["id"],
        "source_url": "rtsp://127.0.0.1:9/x",
    }
    for v in VEHICLES
]


async def _readyz(tmp_path: Path, acl: dict[str, Any], vehicles: list[dict[str, Any]]) -> httpx.Response:
    app = create_app(load_settings(None, data_dir=tmp_path / "data", acl=acl))
    async with app.router.lifespan_context(app):
        ld = app.state.ld
        cams = [c for c in CAMERAS if c["vehicle_id"] in {v["id"] for v in vehicles}]
        assert (await import_inventory(ld.store, cams, vehicles)).written
        await ld.inventory_changed()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await c.get("/readyz")


async def test_foreign_trucks_without_a_polygon_are_not_ready_and_said_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="acl.location"):
        r = await _readyz(tmp_path, {}, VEHICLES)
    assert r.status_code == 503
    (problem,) = r.json()["problems"]
    assert "1 trucks are registered outside 闵行区" in problem and "acl.district_geojson" in problem
    assert any("TRUCK LOCATION RULE IS OFF" in rec.getMessage() for rec in caplog.records)


async def test_own_trucks_only_or_a_polygon_is_ready(tmp_path: Path) -> None:
    # "Minhang" is the home district: no truck from elsewhere, nothing for the rule to do.
    assert (await _readyz(tmp_path / "own", {}, VEHICLES[1:])).status_code == 200
    polygon = {"district_geojson": ROOT / "fixtures" / "district.geojson"}
    assert (await _readyz(tmp_path / "poly", polygon, VEHICLES)).json() == {"status": "ok", "database": "ok"}


async def test_a_polygon_of_another_district_is_not_ready(tmp_path: Path) -> None:
    doc = json.loads((ROOT / "fixtures" / "district.geojson").read_text(encoding="utf-8"))
    doc["features"][0]["properties"]["district"] = "上海市徐汇区"
    other = tmp_path / "xuhui.geojson"
    other.write_text(json.dumps(doc), encoding="utf-8")
    r = await _readyz(tmp_path, {"district_geojson": other, "home_district": "上海市闵行区"}, VEHICLES)
    assert r.status_code == 503
    assert r.json()["problems"] == ["the district polygon outlines 徐汇区 but acl.home_district is 闵行区"]
    doc["features"][0]["properties"]["district"] = "Minhang"
    other.write_text(json.dumps(doc), encoding="utf-8")
    assert (await _readyz(tmp_path / "again", {"district_geojson": other}, VEHICLES)).status_code == 200
