"""Cameras carry their neighbourhood station (居村委): the list filters by it, the console's facets
count it, dynamic groups select on it, so a station's unit can be granted exactly its cameras; the
admin console's pickers offer stations, sub-districts, tags, departments and cameras."""

from __future__ import annotations

import asyncio
import time

import pytest
from typer.testing import CliRunner

from camera_registry.inventory import export_cameras, import_inventory
from tests.acl.conftest import World

STATIONS = [
    {"id": "gm-1", "name": "古美二村小区门口", "area": "古美路街道", "station": "古美二村居委", "department": "gumei"},
    {"id": "gm-2", "name": "古美二村健身苑", "area": "古美路街道", "station": "古美二村居委", "department": "gumei"},
    {"id": "gm-3", "name": "平阳三村垃圾房", "area": "古美路街道", "station": "平阳三村居委", "department": "gumei"},
]


async def test_station_filters_facets_groups_and_grants(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w = world
    ld = w.app.state.ld
    rows = [{"source_url": "rtsp://127.0.0.1:9/x", "kind": "fixed", "tags": ["社区"], **c} for c in STATIONS]
    assert (await import_inventory(ld.store, rows)).written
    await ld.inventory_changed()
    root = w.sec_root  # type: ignore[attr-defined]

    r = await w.client.get("/api/cameras", params={"station": "古美二村居委"}, headers=root)
    assert [c["id"] for c in r.json()["items"]] == ["gm-1", "gm-2"]
    assert r.json()["items"][0]["station"] == "古美二村居委"
    r = await w.client.get("/api/cameras", params={"text": "平阳三村"}, headers=root)
    assert [c["id"] for c in r.json()["items"]] == ["gm-3"]
    assert "station,department" in (await export_cameras(ld.store, "csv")).splitlines()[0]

    # A station's unit, granted a dynamic group of its station, sees exactly its cameras.
    unit = {"name": "古美二村居委工作站", "level": "station", "parent_id": "district", "area": "古美路街道"}
    await w.ok("PUT", "/api/admin/departments/station-gm2", json=unit)
    group = {"name": "古美二村居委摄像机", "filter": {"station": ["古美二村居委"]}}
    await w.ok("PUT", "/api/admin/groups/station-gm2", json=group)
    rule = {"subject": "dept:station-gm2", "target": "group:station-gm2", "action": "view_live"}
    await w.ok("POST", "/api/admin/rules", json=rule)
    op = await w.user("gm2")
    await w.ok("PUT", f"/api/admin/users/{w.ids['gm2']}/memberships/station-gm2", json={})
    assert await w.visible(op) == {"gm-1", "gm-2"}
    facets = (await w.client.get("/api/console/facets", headers=op)).json()
    assert facets["stations"] == [{"value": "古美二村居委", "count": 2}]

    # Moving a camera to the station brings it into the group (dynamic groups follow the inventory).
    r = await w.client.patch("/api/cameras/gm-3", json={"station": "古美二村居委"}, headers=root)
    assert r.status_code == 200, r.text
    assert await w.visible(op) == {"gm-1", "gm-2", "gm-3"}

    # Policy editors choose stations, sub-districts, tags, departments and cameras from lists.
    attrs = (await w.client.get("/api/admin/camera-attributes", headers=w.sec)).json()
    assert {"value": "古美二村居委", "area": "古美路街道"} in attrs["stations"]
    assert "古美路街道" in attrs["areas"] and "社区" in attrs["tags"] and "gumei" in attrs["departments"]
    assert ["gm-1", "古美二村小区门口"] in attrs["cameras"]
    assert (await w.client.get("/api/admin/camera-attributes", headers=op)).status_code == 403

    # An unknown filter attribute is refused with the field named.
    r = await w.client.put("/api/admin/groups/bad", json={"name": "x", "filter": {"stations": ["a"]}}, headers=w.sec)
    assert r.status_code in (400, 422) and "filter.stations" in r.text, r.text

    # The CLI makes station groups too; the running gateway picks the change up by itself.
    from gateway.cli import app as cli

    monkeypatch.setenv("LIANDONG_DATA_DIR", str(ld.settings.data_dir))
    args = ["policy", "group", "pyc3", "--name", "平阳三村", "--station", "平阳三村居委"]
    res = await asyncio.to_thread(CliRunner().invoke, cli, args)
    assert res.exit_code == 0, res.output
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        groups = {g["id"]: g for g in (await w.client.get("/api/admin/groups", headers=w.sec)).json()}
        if "pyc3" in groups:
            break
        await asyncio.sleep(0.2)
    assert groups["pyc3"]["filter"] == {"station": ["平阳三村居委"]}
