"""WebRTC egress, old path against new, side by side in one run (issue 20).

Starts the fixture camera (720p25 ~2 Mbit/s H.264, 2 s GOP) and two gateways on it, one with
``webrtc.egress = "per_viewer"`` (aiortc packetizes and encrypts for every viewer) and one with
``"shared"`` (packetized once per camera, per viewer only header + SRTP + send). Then, for each
round, alternating which path goes first, with the shared load client
(``../shared/bench/whep_client.py``):

- ``steady``: N viewers join at once and stay ``--duration`` s; server CPU (% of one core, from
  /proc) over the steady window (after ``--steady-skip`` s), fps, stalls, failures;
- ``storm``: N viewers are watching (joined ``--watch-stagger-ms`` apart), then N more join
  within one second; stalls and the longest gap of both groups, the joiners' time to first frame.

Each measurement is one JSON line (``--out``); the last line is the per-path medians. What else was
busy on the machine is recorded per measurement (``others_cpu_percent``: all cores' busy time minus
the gateway's and the load client's, in % of one core) and as the top processes at the start.

Usage: ``python -m bench.egress_bench [--viewers 20,50] [--rounds 3] [--steps steady,storm]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.gateway_proc import ROOT, BenchGateway, cpu_seconds, running_gateway
from fixtures.camera_server import FixtureCameraServer

PATHS = ("per_viewer", "shared")


def _machine_busy_s() -> float:
    """Busy CPU seconds of all cores so far (from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _top_processes(n: int = 8) -> list[str]:
    out = subprocess.run(
        ["ps", "-eo", "pcpu,pid,comm", "--sort=-pcpu", "--no-headers"], capture_output=True, text=True, check=False
    ).stdout
    return [" ".join(line.split()) for line in out.splitlines()[:n]]


class _CpuWindow:
    """Samples the gateway's CPU seconds and the machine's busy seconds once a second."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _CpuWindow:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                self.samples.append((time.monotonic(), cpu_seconds(self.pid), _machine_busy_s()))
            if self._stop.wait(1.0):
                return

    def percent(self, t0: float, t1: float) -> tuple[float | None, float | None]:
        """(gateway, whole machine) busy % of one core between the samples nearest t0 and t1."""
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        if len(inside) < 2:
            return None, None
        (a_t, a_cpu, a_busy), (b_t, b_cpu, b_busy) = inside[0], inside[-1]
        wall = b_t - a_t
        return round(100 * (b_cpu - a_cpu) / wall, 1), round(100 * (b_busy - a_busy) / wall, 1)


def _client(shared: Path, gw: BenchGateway, n: int, duration: float, stagger_ms: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(shared / "whep_client.py"),
            "--url",
            f"{gw.base}/api/cameras/cam1/whep",
            "--header",
            f"Authorization: Bearer {gw.token}",
            "-n",
            str(n),
            "-t",
            str(duration),
            "--stagger-ms",
            str(stagger_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate()
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {"ok": 0, "failures": None, "error": "no output"}


def _viewers(res: dict[str, Any]) -> dict[str, Any]:
    return {
        "ok": res.get("ok"),
        "failures": res.get("failures"),
        "errors": res.get("errors"),
        "stalls": res.get("stalls_total"),
        "max_gap_ms_p95": (res.get("max_gap_ms") or {}).get("p95"),
        "ttff_p50_ms": res.get("ttff_p50_ms"),
        "ttff_p95_ms": res.get("ttff_p95_ms"),
        "fps_mean": (res.get("fps_per_viewer") or {}).get("mean"),
        "fps_min": (res.get("fps_per_viewer") or {}).get("min"),
        "rtp_lost": res.get("rtp_packets_lost_total"),
        "client_cpu_percent": res.get("client_cpu_percent"),
    }


def steady(args: argparse.Namespace, gw: BenchGateway, n: int) -> dict[str, Any]:
    """N viewers join at once and stay; CPU over the steady window."""
    with _CpuWindow(gw.pid) as cpu:
        t0 = time.monotonic()
        res = _result(_client(args.shared, gw, n, args.duration, 0.0))
    ours, machine = cpu.percent(t0 + args.steady_skip, t0 + args.duration - 0.5)
    client = res.get("client_cpu_percent") or 0.0
    others = round(machine - ours - client, 1) if ours is not None and machine is not None else None
    return {
        "cpu_percent_steady": ours,
        "machine_busy_percent_of_one_core": machine,
        "others_cpu_percent": others,
        **_viewers(res),
    }


def storm(args: argparse.Namespace, gw: BenchGateway, n: int) -> dict[str, Any]:
    """N viewers watching, then N more join within one second."""
    settle = n * args.watch_stagger_ms / 1000 + args.storm_settle
    watch_s = settle + args.storm_s + 2
    with _CpuWindow(gw.pid) as cpu:
        t0 = time.monotonic()
        watchers = _client(args.shared, gw, n, watch_s, args.watch_stagger_ms)
        time.sleep(settle)
        t_join = time.monotonic()
        joiners = _client(args.shared, gw, n, args.storm_s, 0.0)
        joined, watched = _result(joiners), _result(watchers)
    ours, machine = cpu.percent(t_join, t0 + watch_s)
    return {
        "cpu_percent_during_join": ours,
        "machine_busy_percent_of_one_core": machine,
        "watchers": _viewers(watched),
        "joiners": _viewers(joined),
    }


def _rounds(args: argparse.Namespace) -> Iterator[tuple[int, tuple[str, ...]]]:
    for r in range(args.rounds):
        yield r + 1, PATHS if r % 2 == 0 else PATHS[::-1]


def _medians(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    keys = {(r["step"], r["viewers"], r["path"]) for r in rows}
    for step, n, path in sorted(keys):
        mine = [r for r in rows if (r["step"], r["viewers"], r["path"]) == (step, n, path)]

        def med(get: Any, rows: list[dict[str, Any]] = mine) -> float | None:
            vals = [v for v in (get(r) for r in rows) if v is not None]
            return round(statistics.median(vals), 1) if vals else None

        if step == "steady":
            out[f"steady/{n}/{path}"] = {
                "cpu_percent_steady": med(lambda r: r["cpu_percent_steady"]),
                "fps_min": med(lambda r: r["fps_min"]),
                "failures": sum(r["failures"] or 0 for r in mine),
                "stalls": med(lambda r: r["stalls"]),
                "max_gap_ms_p95": med(lambda r: r["max_gap_ms_p95"]),
                "others_cpu_percent": med(lambda r: r["others_cpu_percent"]),
            }
        else:
            out[f"storm/{n}/{path}"] = {
                "watchers_stalls": med(lambda r: r["watchers"]["stalls"]),
                "watchers_max_gap_ms_p95": med(lambda r: r["watchers"]["max_gap_ms_p95"]),
                "joiners_stalls": med(lambda r: r["joiners"]["stalls"]),
                "joiners_max_gap_ms_p95": med(lambda r: r["joiners"]["max_gap_ms_p95"]),
                "joiners_ttff_p95_ms": med(lambda r: r["joiners"]["ttff_p95_ms"]),
                "failures": sum((r["watchers"]["failures"] or 0) + (r["joiners"]["failures"] or 0) for r in mine),
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--viewers", default="20,50")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", default="steady,storm")
    ap.add_argument("--duration", type=float, default=20.0, help="s each steady viewer stays")
    ap.add_argument("--steady-skip", type=float, default=8.0, help="s after the join before the CPU window")
    ap.add_argument("--watch-stagger-ms", type=float, default=60.0)
    ap.add_argument("--storm-settle", type=float, default=4.0, help="s the watchers watch before the storm")
    ap.add_argument("--storm-s", type=float, default=12.0, help="s the joiners stay")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "egress.jsonl")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "bench")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    if not (args.shared / "whep_client.py").exists():
        sys.exit(f"shared load client not found: {args.shared}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    counts = [int(x) for x in args.viewers.split(",")]
    steps = args.steps.split(",")
    env = {"LIANDONG_SESSIONS__MAX_PER_USER": "1000", "LIANDONG_HLS__ALWAYS_REMUX": "false"}
    rows: list[dict[str, Any]] = []
    with (
        FixtureCameraServer(mounts=("h264",)) as cams,
        running_gateway(cams, {"cam1": "h264"}, {**env, "LIANDONG_WEBRTC__EGRESS": "per_viewer"}) as old,
        running_gateway(cams, {"cam1": "h264"}, {**env, "LIANDONG_WEBRTC__EGRESS": "shared"}) as new,
        args.out.open("a", encoding="utf-8") as out,
    ):
        gws = {"per_viewer": old, "shared": new}
        header = {
            "kind": "egress_run",
            "note": args.note,
            "host_cores": os.cpu_count(),
            "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
            "top_processes_start": _top_processes(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        out.write(json.dumps(header) + "\n")
        print(json.dumps(header), flush=True)
        for rnd, order in _rounds(args):
            for step in steps:
                for n in counts:
                    for path in order:
                        fn = steady if step == "steady" else storm
                        row = {"kind": "egress", "round": rnd, "step": step, "viewers": n, "path": path}
                        row.update(fn(args, gws[path], n))
                        row["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
                        rows.append(row)
                        out.write(json.dumps(row) + "\n")
                        out.flush()
                        print(json.dumps(row), flush=True)
                        time.sleep(2)  # the sessions close, the next client starts on a quiet server
        summary = {"kind": "egress_medians", "rounds": args.rounds, "medians": _medians(rows)}
        out.write(json.dumps(summary) + "\n")
        print(json.dumps(summary, indent=1), flush=True)


if __name__ == "__main__":
    main()
