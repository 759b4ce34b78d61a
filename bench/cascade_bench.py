"""GB/T 28181 cascade: INVITE -> first PS packet at the superior for a pulled camera, and the
gateway's CPU per pushed stream.

    python -m bench.cascade_bench [--trials 15] [--streams 10] [--out bench/results/cascade.json]

``liandong serve`` (its own process) with one superior configured: the emulator
(``fixtures/gb28181_superior.py``) in this process. The fixture camera ``/h264`` (1280x720, 25 fps,
~2 Mbit/s) is shared with ``dept:bench``. One INVITE keeps the camera pulled; each trial INVITEs
again over UDP and times the first RTP packet after sending the INVITE (SIP round trips, the hub
reader's start from the GOP cache, PS muxing), then BYEs. CPU: ``/proc/<pid>`` of the gateway over
10 s with 1 and with ``--streams`` INVITEs of the camera.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bench.gateway_proc import ROOT, cpu_seconds, running_gateway
from fixtures.camera_server import FixtureCameraServer
from fixtures.gb28181_superior import Call, SuperiorPlatform
from gb28181.cascade import channel_id_for

LOWER = "34020000002000000001"
SUPERIOR = "44010000002000000001"


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"machine": "2 cores, shared", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    async with SuperiorPlatform(platform_id=SUPERIOR, domain="4401000000", password="bench-up") as sup:
        superior = {"id": SUPERIOR, "domain": "4401000000", "host": "127.0.0.1", "port": sup.port,
                    "password": "bench-up", "view_as": "dept:bench"}  # fmt: skip
        env = {"LIANDONG_GB28181__SUPERIORS": json.dumps([superior])}
        with FixtureCameraServer(mounts=("h264",)) as cams, running_gateway(cams, {"cam1": "h264"}, env) as gw:
            async with httpx.AsyncClient(base_url=gw.base, headers=gw.headers, timeout=30) as http:
                (await http.put("/api/admin/departments/bench", json={"name": "bench"})).raise_for_status()
                rule = {"subject": "dept:bench", "target": "cam:cam1", "action": "view_live"}
                (await http.post("/api/admin/rules", json=rule)).raise_for_status()
            await sup.until(lambda: LOWER in sup.lowers, 60, "registration")
            channel = channel_id_for("cam1", [], LOWER)
            await sup.catalog(LOWER)
            keeper = await sup.invite(LOWER, channel)
            await sup.until(lambda: len(keeper.packets) > 100, 30, "the warm stream")
            samples: list[float] = []
            for _ in range(args.trials):
                call = await sup.invite(LOWER, channel)
                await sup.until(lambda c=call: c.first_packet_at is not None, 30, "a first packet")  # type: ignore[misc]
                assert call.first_packet_at is not None
                samples.append((call.first_packet_at - call.invited_at) * 1000)
                await sup.bye(LOWER, call)
                await asyncio.sleep(0.3)
            out["invite_to_first_packet_warm"] = {
                "trials": len(samples),
                "p50_ms": round(_pct(samples, 0.5), 1),
                "p95_ms": round(_pct(samples, 0.95), 1),
                "mean_ms": round(statistics.mean(samples), 1),
            }
            cpu: dict[str, float] = {}
            calls: list[Call] = [keeper]
            for n in (1, args.streams):
                while len(calls) < n:
                    calls.append(await sup.invite(LOWER, channel))
                await asyncio.sleep(3.0)
                c0, t0 = cpu_seconds(gw.pid), time.monotonic()
                await asyncio.sleep(10.0)
                cpu[str(n)] = round(100 * (cpu_seconds(gw.pid) - c0) / (time.monotonic() - t0), 1)
            out["gateway_cpu_percent_of_one_core_by_streams"] = cpu
            out["packets_received"] = sum(len(c.packets) for c in calls)
            for c in calls:
                await sup.bye(LOWER, c)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=15)
    ap.add_argument("--streams", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cascade.json")
    args = ap.parse_args()
    result = asyncio.run(_run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
