"""Vehicle positions in Redis GEO across nodes: a fix taken in by one node answers "nearest" on
another, and the location rule (trucks registered elsewhere are visible only inside the district)
follows fixes wherever they arrived."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from tests.cluster_nodes import ROOT, Cluster
from tests.redis_server import redis_server

pytestmark = [pytest.mark.timeout(240)]
INVENTORY = ROOT / "fixtures" / "inventory"
INSIDE = (31.111, 121.388)  # 莘庄, inside the district polygon
OUTSIDE = (31.38, 121.25)  # 嘉定, outside


async def test_positions_and_location_rule_shared_by_nodes(tmp_path: Path) -> None:
    cams = {c["id"]: c for c in json.loads((INVENTORY / "sample_cameras.json").read_text(encoding="utf-8"))}
    chosen = [
        {**cams[cid], "source_url": "rtsp://127.0.0.1:9/x"} for cid in ("fx-00-00", "bus-01-front", "truck-04-cab")
    ]
    env = {"LIANDONG_ACL__DISTRICT_GEOJSON": str(ROOT / "fixtures" / "district.geojson")}
    with redis_server(tmp_path) as url, Cluster(tmp_path, url, env=env) as c:
        c.prepare(
            chosen, {"admin": "admin", "gps": "integration", "op": "operator"}, INVENTORY / "sample_vehicles.json"
        )
        c.start_all()
        n1, n2, n3 = c.nodes
        admin = await asyncio.to_thread(c.token, "admin")
        gps = await asyncio.to_thread(c.token, "gps")
        op = await asyncio.to_thread(c.token, "op")
        async with httpx.AsyncClient(timeout=10) as h:
            await h.put(f"{n1.url}/api/admin/departments/d1", json={"name": "d1"}, headers=admin)
            uid = next(
                u["id"]
                for u in (await h.get(f"{n1.url}/api/admin/users", headers=admin)).json()
                if u["username"] == "op"
            )
            await h.put(f"{n1.url}/api/admin/users/{uid}/memberships/d1", json={}, headers=admin)
            rule = {"subject": "dept:d1", "target": "cam:truck-04-cab", "action": "view_snapshot"}
            assert (await h.post(f"{n1.url}/api/admin/rules", json=rule, headers=admin)).status_code == 201

            async def post_fix(vehicle: str, at: tuple[float, float]) -> None:
                fix = {"vehicle_id": vehicle, "lat": at[0], "lon": at[1], "time": time.time()}
                r = await h.post(f"{n1.url}/api/vehicles/positions", json=[fix], headers=gps)
                assert r.status_code == 200 and r.json()["rejected"] == 0, r.text

            await post_fix("bus-01", (31.1505, 121.3505))
            r = await h.get(
                f"{n2.url}/api/cameras/nearest", params={"lat": 31.15, "lon": 121.35, "kind": "bus"}, headers=admin
            )
            assert r.status_code == 200, r.text
            assert [x["camera_id"] for x in r.json()["items"]][:1] == ["bus-01-front"]
            # The track history, kept in memory by each node, is whole on the others too.
            await post_fix("bus-01", (31.1510, 121.3510))
            t0 = time.monotonic()
            while True:
                r = await h.get(f"{n3.url}/api/vehicles/bus-01/track", headers=admin)
                assert r.status_code == 200, r.text
                if len(r.json()["points"]) == 2:
                    break
                assert time.monotonic() - t0 < 3, r.json()
                await asyncio.sleep(0.1)
            assert [p[1:3] for p in r.json()["points"]] == [[31.1505, 121.3505], [31.151, 121.351]]

            async def op_sees_truck_on(node_url: str, want: bool) -> float:
                t0 = time.perf_counter()
                while time.perf_counter() - t0 < 4:
                    r = await h.get(f"{node_url}/api/cameras/truck-04-cab", headers=op)
                    if (r.status_code == 200) == want:
                        return time.perf_counter() - t0
                    await asyncio.sleep(0.05)
                raise AssertionError(f"{node_url}: truck camera visible={not want} after 4 s")

            assert await op_sees_truck_on(n3.url, False) < 0.5  # no fix yet: outside, hidden
            await post_fix("truck-04", INSIDE)
            inside_after = await op_sees_truck_on(n3.url, True)
            await op_sees_truck_on(n2.url, True)
            await post_fix("truck-04", OUTSIDE)
            outside_after = await op_sees_truck_on(n3.url, False)
            print(
                f"location rule on another node: inside after {inside_after:.2f} s, outside after {outside_after:.2f} s"
            )
            assert inside_after < 2.5 and outside_after < 2.5
