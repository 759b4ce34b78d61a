"""The WebRTC egress path alone, old against new, in one process: CPU time per viewer, robust to load.

The end-to-end benchmark (``bench.egress_bench``) needs the fixture camera, two gateways and the
Python load client on the same 2 cores; on a machine other engineers saturate, the camera and the
clients starve and its CPU figures say little. This one measures only what issue 20 changed: from
an access unit arriving at the hub's readers to encrypted datagrams leaving the viewers' sockets.

Both paths run the project's and aiortc's real code: the old one is aiortc's ``RTCRtpSender`` fed by
``PassthroughTrack`` (one hub ``Reader`` per viewer), sending through aiortc's
``RTCDtlsTransport._send_rtp`` (libsrtp) and aioice's ``Connection.send``; the new one is
``CameraFanout`` (one reader) with an ``RtpViewer`` per viewer (and each viewer's counting reader).
Only the handshakes are left out: each viewer's DTLS transport is keyed with a random SRTP key and
its ICE pair is a real UDP socket on loopback, sending to a sink socket nobody reads (the kernel
drops what overflows, after the same work). The access units are a 720p25 ~2 Mbit/s H.264 stream
with a 2 s GOP, encoded once with libx264 at start, fed at 25 fps in real time.

Measured: this process's CPU time (``time.process_time``: other processes' load does not count)
over ``--seconds`` after a warm-up, divided by the video actually delivered in that window (payload
bytes over the stream's bytes per second: viewer-seconds), so a starved process that fell behind
the 25 fps feed is not flattered: ``cpu_ms_per_viewer_second``, and the % of a core that makes at
N viewers of a 25 fps stream. Old and new alternate, ``--rounds`` times.

``storm``: N viewers watching, then N more start at once (their DTLS up, the GOP to replay): the
event loop's lag over the next 3 s (every live packet waits for the loop) and how long until every
joiner is live. Wall-clock figures: they do feel the machine's load (both paths alike).

Usage: ``python -m bench.egress_micro [--viewers 20,50] [--rounds 3] [--seconds 10] [--steps cpu,storm]``
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import os
import socket
import statistics
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import av
import numpy as np
from aioice import Candidate
from aioice.ice import CandidatePair, Connection, StunProtocol
from aiortc import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpparameters import RTCRtcpParameters, RTCRtpSendParameters
from aiortc.rtcrtpsender import RTCRtpSender
from pylibsrtp import Policy, Session

from bench.gateway_proc import ROOT
from gateway.webrtc.fanout import CameraFanout
from gateway.webrtc.rtp_viewer import RtpViewer
from gateway.webrtc.track import FanoutTrack, PassthroughTrack
from streams import AccessUnit, Reader

H264 = RTCRtpCodecParameters(
    mimeType="video/H264",
    clockRate=90000,
    payloadType=102,
    parameters={"packetization-mode": "1", "profile-level-id": "42e01f", "level-asymmetry-allowed": "1"},
)
RTX = RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=103, parameters={"apt": 102})
EXTENSIONS = [
    RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
    RTCRtpHeaderExtensionParameters(id=2, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
]


def encode_gops(seconds: float = 4.0) -> list[AccessUnit]:
    """A 1280x720 25 fps H.264 stream (~2 Mbit/s, 2 s GOP, baseline): moving gradients and noise."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 1280, 720, "yuv420p"
    ctx.time_base = fractions.Fraction(1, 25)
    ctx.framerate = fractions.Fraction(25, 1)
    ctx.bit_rate = 2_000_000
    ctx.gop_size = 50
    ctx.options = {"profile": "baseline", "preset": "veryfast", "tune": "zerolatency", "bf": "0", "repeat-headers": "1"}
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:720, 0:1280]
    units: list[AccessUnit] = []
    for i in range(int(seconds * 25)):
        y = ((xx + yy + i * 8) % 256).astype(np.uint8)
        y[::7, ::5] = rng.integers(0, 255, size=y[::7, ::5].shape, dtype=np.uint8)  # some texture to code
        frame = av.VideoFrame.from_ndarray(np.concatenate([y, np.full((360, 1280), 128, np.uint8)]), format="yuv420p")
        frame.pts = i
        for pkt in ctx.encode(frame):
            units.append(AccessUnit(bytes(pkt), int(pkt.pts or 0) * 3600, bool(pkt.is_keyframe), time.time()))
    for pkt in ctx.encode(None):
        units.append(AccessUnit(bytes(pkt), int(pkt.pts or 0) * 3600, bool(pkt.is_keyframe), time.time()))
    return units


class _Dtls:
    """The parts of an RTCDtlsTransport the senders use, connected, with a random SRTP key."""

    _send_rtp = RTCDtlsTransport._send_rtp  # aiortc's own: protect with libsrtp, then ICE send

    def __init__(self, conn: Connection) -> None:
        self.state = "connected"
        self._state = State.CONNECTED
        self._stats_id = "dtls"
        policy = Policy(
            key=os.urandom(30), ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80
        )
        policy.allow_repeat_tx = True
        policy.window_size = 1024
        self._tx_srtp = Session(policy)
        self.transport = SimpleNamespace(_connection=conn, _send=conn.send)
        self._RTCDtlsTransport__tx_bytes = 0
        self._RTCDtlsTransport__tx_packets = 0

    def _register_rtp_sender(self, sender: Any, parameters: Any) -> None:
        pass

    def _unregister_rtp_sender(self, sender: Any) -> None:
        pass


async def _connection(sink: tuple[str, int]) -> Connection:
    """An aioice connection whose nominated pair is a real UDP socket sending to ``sink``."""
    loop = asyncio.get_running_loop()
    conn = Connection(ice_controlling=False)
    _, protocol = await loop.create_datagram_endpoint(lambda: StunProtocol(conn), local_addr=("127.0.0.1", 0))
    assert isinstance(protocol, StunProtocol)
    host, port = protocol.transport.get_extra_info("sockname")[:2]
    protocol.local_candidate = Candidate("1", 1, "udp", 1, host, port, "host")
    conn._nominated[1] = CandidatePair(protocol, Candidate("2", 1, "udp", 1, sink[0], sink[1], "host"))
    return conn


def _params() -> RTCRtpSendParameters:
    return RTCRtpSendParameters(
        codecs=[H264, RTX], headerExtensions=EXTENSIONS, muxId="0", rtcp=RTCRtcpParameters(cname="bench")
    )


def _octets(viewers: list[RtpViewer], senders: list[RTCRtpSender]) -> int:
    """Payload bytes sent so far to all viewers."""
    if viewers:
        return sum(v.octets for v in viewers)
    return sum(getattr(s, "_RTCRtpSender__octet_count") for s in senders)  # noqa: B009 (name-mangled)


def _loadavg() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


class _Source:
    def detach(self, reader: Reader, reason: str) -> None:
        reader.close(reason)


async def _old_viewer(conn: Connection, backlog: list[AccessUnit]) -> tuple[Reader, RTCRtpSender, PassthroughTrack]:
    """The per-viewer path: its own hub reader (starting with the cached GOP, as StreamHub.attach does)."""
    reader = Reader("cam", "webrtc", 200)
    for au in backlog:
        reader.push(au)
    track = PassthroughTrack(reader)
    sender = RTCRtpSender(track, _Dtls(conn))  # type: ignore[arg-type]
    await sender.send(_params())
    return reader, sender, track


async def _new_viewer(conn: Connection, fanout: CameraFanout) -> tuple[Reader, RTCRtpSender, RtpViewer]:
    """The shared path: a counting reader, aiortc's sender parked on a FanoutTrack, an RtpViewer."""
    counting = Reader("cam", "webrtc", 200)
    counting.counts_only = True
    sender = RTCRtpSender(FanoutTrack(), _Dtls(conn))  # type: ignore[arg-type]
    await sender.send(_params())
    transceiver = SimpleNamespace(sender=sender, _codecs=[H264, RTX], _headerExtensions=EXTENSIONS, mid="0")
    v = RtpViewer(transceiver, counting, fanout.keyframe_requested)  # type: ignore[arg-type]
    fanout.add(v)
    return counting, sender, v


async def run_storm(path: str, n: int, units: list[AccessUnit], sink: tuple[str, int]) -> dict[str, Any]:
    """``n`` viewers watching, then ``n`` more start at once (their DTLS up): the event loop's lag
    (what delays the watchers' packets) over the 3 s after the join, and when every joiner is live."""
    loop = asyncio.get_running_loop()
    conns = [await _connection(sink) for _ in range(2 * n)]
    readers: list[Reader] = []
    senders: list[RTCRtpSender] = []
    tracks: list[PassthroughTrack] = []
    joiners_new: list[RtpViewer] = []
    fanout: CameraFanout | None = None
    if path == "shared":
        shared = Reader("cam", "webrtc-fanout", 200)
        readers.append(shared)
        feed = SimpleNamespace(camera_id="cam", source=_Source())
        fanout = CameraFanout("cam", shared, feed, lambda f: None)  # type: ignore[arg-type]
    watchers_new: list[RtpViewer] = []
    for conn in conns[:n]:
        if fanout is None:
            r, snd, t = await _old_viewer(conn, [])
            tracks.append(t)
        else:
            r, snd, v = await _new_viewer(conn, fanout)
            watchers_new.append(v)
        readers.append(r)
        senders.append(snd)
    lags: list[tuple[float, float]] = []
    stop = asyncio.Event()

    async def probe() -> None:
        while not stop.is_set():
            t = loop.time()
            await asyncio.sleep(0.005)
            lags.append((t, loop.time() - t - 0.005))

    probe_task = asyncio.ensure_future(probe())
    started = loop.time()
    gop: list[AccessUnit] = []
    t_storm = started + 3.2  # mid-GOP (a 2 s GOP): joiners replay ~1.2 s of it
    t_end = t_storm + 3.0
    stormed = False
    all_live_s: float | None = None
    i = 0
    while loop.time() < t_end:
        au = units[i % len(units)]
        unit = AccessUnit(au.data, au.pts + (i // len(units)) * len(units) * 3600, au.keyframe, au.wallclock)
        gop = [unit] if unit.keyframe else [*gop, unit]
        for r in readers:
            r.push(unit)
        if i == 0 and fanout is not None:
            await asyncio.sleep(0.01)
            for v in watchers_new:
                fanout.start(v)
        if not stormed and loop.time() >= t_storm:
            stormed = True
            for conn in conns[n:]:
                if fanout is None:
                    r, snd, t = await _old_viewer(conn, gop)
                    tracks.append(t)
                else:
                    r, snd, v = await _new_viewer(conn, fanout)
                    fanout.start(v)
                    joiners_new.append(v)
                readers.append(r)
                senders.append(snd)
        if stormed and all_live_s is None:
            if fanout is not None:
                live = all(v in fanout.live for v in joiners_new)
            else:
                live = all(t.sent > 0 and not t._catching_up for t in tracks[n:])
            if live:
                all_live_s = loop.time() - t_storm
        i += 1
        await asyncio.sleep(max(0.0, started + i * 0.04 - loop.time()))
    stop.set()
    await probe_task
    window = sorted(lag for t, lag in lags if t >= t_storm)
    before = sorted(lag for t, lag in lags if t < t_storm and t > started + 1)
    for snd in senders:
        if snd.track is not None:
            snd.track.stop()
        await snd.stop()
    if fanout is not None:
        for v in watchers_new + joiners_new:
            fanout.remove(v)
    for r in readers:
        r.close()
    for c in conns:
        for pair in c._nominated.values():
            pair.protocol.transport.close()

    def pct(xs: list[float], q: float) -> float | None:
        return round(1000 * xs[min(len(xs) - 1, int(q * len(xs)))], 1) if xs else None

    return {
        "path": path,
        "viewers": n,
        "joiners": n,
        "loop_lag_before_p95_ms": pct(before, 0.95),
        "loop_lag_storm_p50_ms": pct(window, 0.5),
        "loop_lag_storm_p95_ms": pct(window, 0.95),
        "loop_lag_storm_max_ms": pct(window, 1.0),
        "joiners_all_live_s": round(all_live_s, 2) if all_live_s is not None else None,
    }


async def run_path(
    path: str, n: int, units: list[AccessUnit], warmup: float, seconds: float, sink: tuple[str, int]
) -> dict[str, Any]:
    """Feed ``n`` viewers on ``path`` at 25 fps; this process's CPU % of one core over ``seconds``."""
    readers: list[Reader] = []
    senders: list[RTCRtpSender] = []
    conns = [await _connection(sink) for _ in range(n)]
    fanout: CameraFanout | None = None
    viewers: list[RtpViewer] = []
    if path == "per_viewer":
        for conn in conns:
            reader = Reader("cam", "webrtc", 200)
            readers.append(reader)
            sender = RTCRtpSender(PassthroughTrack(reader), _Dtls(conn))  # type: ignore[arg-type]
            await sender.send(_params())
            senders.append(sender)
    else:
        shared = Reader("cam", "webrtc-fanout", 200)
        readers.append(shared)
        feed = SimpleNamespace(camera_id="cam", source=_Source())
        fanout = CameraFanout("cam", shared, feed, lambda f: None)  # type: ignore[arg-type]
        for conn in conns:
            counting = Reader("cam", "webrtc", 200)
            counting.counts_only = True
            readers.append(counting)
            sender = RTCRtpSender(FanoutTrack(), _Dtls(conn))  # type: ignore[arg-type]
            await sender.send(_params())
            senders.append(sender)
            transceiver = SimpleNamespace(sender=sender, _codecs=[H264, RTX], _headerExtensions=EXTENSIONS, mid="0")
            v = RtpViewer(transceiver, counting, fanout.keyframe_requested)  # type: ignore[arg-type]
            fanout.add(v)
            viewers.append(v)
    loop = asyncio.get_running_loop()
    started = loop.time()
    t_measure = started + warmup
    t_end = t_measure + seconds
    cpu0: float | None = None
    wall0 = 0.0
    octets0 = 0
    frames = 0
    i = 0
    pts_base = 0
    period = len(units) * 3600
    while True:
        now = loop.time()
        if cpu0 is None and now >= t_measure:
            cpu0, wall0, frames = time.process_time(), time.perf_counter(), 0
            octets0 = _octets(viewers, senders)
        if now >= t_end:
            break
        au = units[i % len(units)]
        if i and i % len(units) == 0:
            pts_base += period
        unit = AccessUnit(au.data, au.pts + pts_base, au.keyframe, au.wallclock)
        for r in readers:  # what StreamHub._on_unit does for each reader
            r.push(unit)
        if i == 0 and fanout is not None:
            await asyncio.sleep(0.01)  # the fan-out has the first keyframe: start the viewers on it
            for v in viewers:
                fanout.start(v)
        i += 1
        frames += 1
        await asyncio.sleep(max(0.0, started + i * 0.04 - loop.time()))
    assert cpu0 is not None
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    octets = _octets(viewers, senders) - octets0
    stream_bps = sum(len(u.data) for u in units) / (len(units) / 25)
    viewer_seconds = octets / stream_bps  # video actually delivered in the window, in viewer-seconds
    # RTP packets each viewer was sent (aiortc counts its own; the shared path's viewers count theirs)
    sent = [v.packets for v in viewers] if viewers else [s._RTCRtpSender__packet_count for s in senders]  # type: ignore[attr-defined]
    for s in senders:
        s.track.stop()
        await s.stop()
    if fanout is not None:
        for v in viewers:
            fanout.remove(v)
    for r in readers:
        r.close()
    for c in conns:
        for pair in c._nominated.values():
            pair.protocol.transport.close()
    return {
        "path": path,
        "viewers": n,
        "cpu_percent_of_one_core": round(100 * cpu / wall, 1),
        # CPU per second of one viewer's video (the load-independent figure): x N viewers / 10 = % of a core
        "cpu_ms_per_viewer_second": round(1e3 * cpu / viewer_seconds, 3) if viewer_seconds else None,
        "implied_percent_of_core_at_25fps": round(100 * n * cpu / viewer_seconds, 1) if viewer_seconds else None,
        "delivered_fraction": round(viewer_seconds / (n * wall), 3),
        "frames_fed": frames,
        "packets_sent_min": min(sent) if sent else 0,
    }


async def main_async(args: argparse.Namespace) -> None:
    units = await asyncio.to_thread(encode_gops)
    kbps = sum(len(u.data) for u in units) * 8 / (len(units) / 25) / 1000
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    addr = sink.getsockname()
    header = {
        "kind": "egress_micro_run",
        "note": args.note,
        "units": len(units),
        "stream_kbps": round(kbps),
        "loadavg_start": _loadavg(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    rows: list[dict[str, Any]] = []
    with args.out.open("a", encoding="utf-8") as out:
        out.write(json.dumps(header) + "\n")
        print(json.dumps(header), flush=True)
        for rnd in range(args.rounds):
            order = ("per_viewer", "shared") if rnd % 2 == 0 else ("shared", "per_viewer")
            for n in [int(x) for x in args.viewers.split(",")] if "storm" in args.steps else []:
                for path in order:
                    row = {"kind": "egress_micro_storm", "round": rnd + 1, **await run_storm(path, n, units, addr)}
                    row["loadavg"] = _loadavg()
                    rows.append(row)
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                    print(json.dumps(row), flush=True)
            for n in [int(x) for x in args.viewers.split(",")] if "cpu" in args.steps else []:
                for path in order:
                    row = {
                        "kind": "egress_micro",
                        "round": rnd + 1,
                        **await run_path(path, n, units, args.warmup, args.seconds, addr),
                    }
                    row["loadavg"] = _loadavg()
                    rows.append(row)
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                    print(json.dumps(row), flush=True)
        med = {}
        for n in sorted({r["viewers"] for r in rows}):
            for path in ("per_viewer", "shared"):
                mine = [
                    r["implied_percent_of_core_at_25fps"]
                    for r in rows
                    if r["kind"] == "egress_micro" and r["viewers"] == n and r["path"] == path
                ]
                if mine:
                    med[f"cpu/{n}/{path}"] = round(statistics.median(mine), 1)
                storms = [
                    r for r in rows if r["kind"] == "egress_micro_storm" and r["viewers"] == n and r["path"] == path
                ]
                for key in ("loop_lag_storm_p95_ms", "loop_lag_storm_max_ms", "joiners_all_live_s"):
                    vals = [r[key] for r in storms if r[key] is not None]
                    if vals:
                        med[f"storm/{n}/{path}/{key}"] = round(statistics.median(vals), 2)
            if f"cpu/{n}/shared" in med:
                ratio = med[f"cpu/{n}/shared"] / med[f"cpu/{n}/per_viewer"]
                med[f"cpu/{n}/saving_percent"] = round(100 * (1 - ratio), 1)
        summary = {"kind": "egress_micro_medians", "rounds": args.rounds, "medians": med}
        out.write(json.dumps(summary) + "\n")
        print(json.dumps(summary), flush=True)
    sink.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--viewers", default="20,50")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", default="cpu,storm", help="cpu: CPU per viewer; storm: loop lag while N join")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "egress_micro.jsonl")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
