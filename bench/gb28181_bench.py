"""GB/T 28181 media: CPU of PS -> access units per 2 Mbit/s channel, this package's demuxer against
FFmpeg's MPEG-PS demuxer through PyAV; and SIP registrations (digest REGISTER round trips) per second.

    python -m bench.gb28181_bench [--seconds 20] [--out bench/results/gb28181.json]

The stream: 720p25 H.264 at 2 Mbit/s (libx264, 1 s GOP) muxed by :class:`gb28181.ps.PsMuxer` and cut
into 1,400-byte RTP payloads, as a device sends it. CPU is process time over the stream's duration
(a share of one core). RTP parsing is excluded (it is the same for both ways).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import socket
import statistics
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

from gb28181.manscdp import CatalogItem
from gb28181.ps import PsDemuxer, PsMuxer
from gb28181.server import Gb28181Server
from gb28181.settings import Gb28181Settings
from gb28181.sip import SipMessage, new_branch, parse
from httpdigest import digest
from streams.packets import AccessUnitAssembler


def make_stream(seconds: int) -> tuple[list[bytes], float]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "clip.h264"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=25:duration={seconds}",
             "-c:v", "libx264", "-preset", "veryfast", "-b:v", "2M", "-maxrate", "2M", "-bufsize", "1M", "-g", "25",
             "-bf", "0", "-pix_fmt", "yuv420p", str(path)],
            check=True,
        )  # fmt: skip
        c = av.open(str(path), mode="r", format="h264")
        mux = PsMuxer()
        ps = b"".join(mux.mux(bytes(p), i * 3600, bool(p.is_keyframe)) for i, p in enumerate(c.demux()) if p.size)
    return [ps[i : i + 1400] for i in range(0, len(ps), 1400)], len(ps) * 8 / seconds


def own(payloads: list[bytes]) -> tuple[float, int]:
    t0 = time.process_time()
    d, asm, n = PsDemuxer(), AccessUnitAssembler("h264"), 0
    tb = Fraction(1, 90_000)
    for p in payloads:
        for f in d.feed(p):
            n += sum(1 for _ in asm.feed(f.data, f.pts, tb))
    return time.process_time() - t0, n


def pyav(payloads: list[bytes]) -> tuple[float, int]:
    t0 = time.process_time()
    c = av.open(io.BytesIO(b"".join(payloads)), mode="r", format="mpeg")
    asm, n = AccessUnitAssembler("h264"), 0
    vs = c.streams.video[0]
    for pkt in c.demux(vs):
        if pkt.size:
            n += sum(1 for _ in asm.feed(bytes(pkt), pkt.pts, vs.time_base))
    return time.process_time() - t0, n


class _Dir:
    async def accepted(self, device_id: str) -> bool:
        return True

    async def catalog(self, device_id: str, items: list[CatalogItem]) -> None:
        return None

    async def device_state(self, device_id: str, online: bool, reason: str) -> None:
        return None


async def registrations(devices: int) -> dict[str, float]:
    """``devices`` distinct devices register with digest (two round trips each) from one socket each."""
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    sip_port = port.getsockname()[1]
    port.close()
    s = Gb28181Settings(enabled=True, sip_port=sip_port, password="pw", register_rate_per_s=1e6)
    server = Gb28181Server(s, _Dir())
    server.query_catalog = lambda device_id: asyncio.sleep(0)  # type: ignore[method-assign,assignment]
    await server.start()
    loop = asyncio.get_running_loop()
    lat: list[float] = []

    async def one(i: int) -> None:
        dev = f"3402000000132{i:07d}"
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        uri = "sip:34020000002000000001@3402000000"

        def req(cseq: int, auth: str | None) -> bytes:
            m = SipMessage(method="REGISTER", uri=uri)
            for n, v in (("Via", f"SIP/2.0/UDP 127.0.0.1;branch={new_branch()}"), ("From", f"<sip:{dev}@x>;tag=1"),
                         ("To", f"<sip:{dev}@x>"), ("Call-ID", dev), ("CSeq", f"{cseq} REGISTER")):  # fmt: skip
                m.add(n, v)
            if auth:
                m.add("Authorization", auth)
            return m.encode()

        await asyncio.sleep(i / devices)  # spread over one second, as devices coming back after an outage
        t0 = time.perf_counter()
        try:
            await loop.sock_sendto(sock, req(1, None), ("127.0.0.1", sip_port))
            ch = parse(await asyncio.wait_for(loop.sock_recv(sock, 65536), 2))
            auth = digest.authorization(ch.get("WWW-Authenticate") or "", dev, "pw", "REGISTER", uri)
            await loop.sock_sendto(sock, req(2, auth), ("127.0.0.1", sip_port))
            ok = parse(await asyncio.wait_for(loop.sock_recv(sock, 65536), 2))
            if ok.status == 200:
                lat.append(time.perf_counter() - t0)
        except TimeoutError:
            pass  # counted below as unanswered
        finally:
            sock.close()

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(devices)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await server.stop()
    lat.sort()
    return {
        "devices": devices,
        "unanswered": devices - len(lat),
        "wall_s": round(wall, 3),
        "cpu_s_incl_clients": round(cpu, 3),
        "register_p50_ms": round(statistics.median(lat) * 1000, 2),
        "register_p95_ms": round(lat[int(len(lat) * 0.95)] * 1000, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    payloads, bps = make_stream(a.seconds)
    runs: dict[str, list[float]] = {"own": [], "pyav": []}
    units = {}
    for _ in range(3):
        for name, fn in (("own", own), ("pyav", pyav)):
            cpu, n = fn(payloads)
            runs[name].append(cpu)
            units[name] = n
    result = {
        "stream_mbit_s": round(bps / 1e6, 2),
        "stream_s": a.seconds,
        "units": units,
        "ps_to_units_core_pct": {k: round(min(v) / a.seconds * 100, 3) for k, v in runs.items()},
        "registrations": asyncio.run(registrations(a.devices)),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
