"""HLS load client: N players of one camera, in their own process (so the gateway's CPU is its own).

``--mode segments``: players that reload the media playlist once per target duration and fetch new
segments (what ffmpeg, VLC and most native players do). ``--mode parts``: LL-HLS players (hls.js
low-latency mode): a blocking reload for the next part, then that part, back to back.
A stall is a gap longer than ``--stall-s`` between two pieces of media arriving at one player.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time
from urllib.parse import urljoin

import aiohttp


def arrived(rec: dict[str, float], last: float, size: int, stall_s: float) -> float:
    """Count a piece of media that arrived now; returns now."""
    now = time.monotonic()
    gap = now - last
    if rec["media"]:
        rec["max_gap_s"] = max(rec["max_gap_s"], gap)
        rec["stalls"] += 1 if gap > stall_s else 0
    rec["media"] += 1
    rec["bytes"] += size
    return now


async def player(
    session: aiohttp.ClientSession, url: str, mode: str, until: float, stall_s: float, out: list[dict[str, float]]
) -> None:
    rec = {"media": 0.0, "bytes": 0.0, "requests": 0.0, "max_gap_s": 0.0, "stalls": 0.0, "errors": 0.0}
    out.append(rec)

    async def get(u: str) -> tuple[int, bytes]:
        rec["requests"] += 1
        async with session.get(u) as r:
            return r.status, await r.read()

    st, body = await get(url)
    if st != 200:
        rec["errors"] += 1
        return
    media_url = urljoin(url, next(ln for ln in body.decode().splitlines() if ln and not ln.startswith("#")))
    st, body = await get(media_url)
    text = body.decode()
    last = time.monotonic()
    seen: set[int] = set()
    while time.monotonic() < until:
        if mode == "segments":
            segs = [int(x) for x in re.findall(r"^seg(\d+)\.m4s", text, re.M)]
            for n in segs[-2:] if not seen else segs:
                if n in seen:
                    continue
                seen.add(n)
                st, data = await get(urljoin(media_url, f"seg{n}.m4s" + media_url[media_url.index("?") :]))
                if st == 200:
                    last = arrived(rec, last, len(data), stall_s)
            td = re.search(r"#EXT-X-TARGETDURATION:(\d+)", text)
            await asyncio.sleep(float(td.group(1)) if td else 2.0)
            st, body = await get(media_url)
            text = body.decode() if st == 200 else text
        else:
            hint = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"', text)
            if hint is None:
                rec["errors"] += 1
                return
            st, data = await get(urljoin(media_url, hint.group(1)))
            if st == 200:
                last = arrived(rec, last, len(data), stall_s)
            else:
                rec["errors"] += 1
            msn = re.findall(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text)
            m0 = int(msn[0]) if msn else 0
            n_done = text.count("#EXTINF")
            tail = text.split("#EXTINF")[-1] if n_done else text
            parts = tail.count("#EXT-X-PART:") + 1
            st, body = await get(f"{media_url}&_HLS_msn={m0 + n_done}&_HLS_part={parts - 1}")
            if st == 200:
                text = body.decode()


async def run(args: argparse.Namespace) -> dict[str, object]:
    # Like a native player: the first request carries a stream token, the rest only the session key.
    headers = {"Authorization": f"Bearer {args.token}"} if args.token and args.bearer else {}
    if args.stream_token:
        args.url += ("&" if "?" in args.url else "?") + f"token={args.stream_token}"
    conn = aiohttp.TCPConnector(limit=0)
    recs: list[dict[str, float]] = []
    async with aiohttp.ClientSession(headers=headers, connector=conn, timeout=aiohttp.ClientTimeout(total=30)) as s:
        until = time.monotonic() + args.duration
        tasks = []
        for _ in range(args.clients):
            tasks.append(asyncio.create_task(player(s, args.url, args.mode, until, args.stall_s, recs)))
            await asyncio.sleep(args.ramp_s / max(args.clients, 1))
        results = await asyncio.gather(*tasks, return_exceptions=True)
    failures = [repr(r)[:120] for r in results if isinstance(r, BaseException)]
    gaps = [r["max_gap_s"] for r in recs]
    return {
        "mode": args.mode,
        "clients": args.clients,
        "duration_s": args.duration,
        "failures": len(failures),
        "failure_examples": failures[:3],
        "requests": int(sum(r["requests"] for r in recs)),
        "media_pieces": int(sum(r["media"] for r in recs)),
        "megabytes": round(sum(r["bytes"] for r in recs) / 1e6, 1),
        "errors": int(sum(r["errors"] for r in recs)),
        "players_with_stalls": sum(1 for r in recs if r["stalls"]),
        "max_gap_s_p50": round(statistics.median(gaps), 3) if gaps else None,
        "max_gap_s_max": round(max(gaps), 3) if gaps else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True, help="index.m3u8 of the camera")
    ap.add_argument("--token", default="", help="bearer token")
    ap.add_argument("--bearer", action="store_true", help="send the bearer token on every request (as hls.js would)")
    ap.add_argument("--stream-token", default="", help="a stream token for index.m3u8 (native players)")
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--ramp-s", type=float, default=5.0)
    ap.add_argument("--mode", choices=["segments", "parts"], default="segments")
    ap.add_argument("--stall-s", type=float, default=None, help="default: 2.5 x segment (segments), 1 s (parts)")
    args = ap.parse_args()
    if args.stall_s is None:
        args.stall_s = 5.0 if args.mode == "segments" else 1.0
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
