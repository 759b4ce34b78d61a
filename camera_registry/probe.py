"""Probe camera sources: an RTSP DESCRIBE + first packets through PyAV, off the event loop.

Errors are reported as short credential-free reasons (FFmpeg messages can contain the URL).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from camera_registry.egress import REASON as OUTSIDE_NETWORKS
from camera_registry.egress import CameraAddressRefused, CameraNetworks
from camera_registry.models import CameraStatus
from camera_registry.store import CameraStore, NotFound
from camera_registry.urls import FFMPEG_PROTOCOL_WHITELIST
from storage.db import utcnow
from storage.secretbox import SecretBoxError

__all__ = ["ProbeResult", "classify_error", "probe_cameras", "probe_url"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What a probe found."""

    camera_id: str
    status: CameraStatus
    reason: str | None = None
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    elapsed_s: float = 0.0
    checked_at: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (what the CLI prints and the API returns)."""
        return {
            "camera_id": self.camera_id,
            "status": self.status.value,
            "reason": self.reason,
            "codec": self.codec,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "elapsed_s": round(self.elapsed_s, 3),
            "checked_at": self.checked_at.isoformat() if self.checked_at else None,
        }


def classify_error(err: BaseException) -> tuple[CameraStatus, str]:
    """A status and a fixed, credential-free reason for an FFmpeg/OS error."""
    name = type(err).__name__
    if isinstance(err, CameraAddressRefused):
        return CameraStatus.error, OUTSIDE_NETWORKS
    # Only the error's own text: str() of an FFmpeg error also holds the URL, whose port or path
    # could contain "401" or "404" (and whose credentials must never be echoed anyway).
    text = str(getattr(err, "strerror", None) or (err.args[0] if err.args else "")).lower()
    text = re.sub(r"['\"]?[a-z][a-z0-9+.-]*://\S*", " ", text)
    if isinstance(err, ConnectionRefusedError) or "connection refused" in text:
        return CameraStatus.offline, "connection refused"
    if isinstance(err, TimeoutError) or "timed out" in text or "timeout" in text:
        return CameraStatus.offline, "timed out"
    if "401" in text or "unauthorized" in text:
        return CameraStatus.error, "authentication failed (401)"
    if "404" in text or "not found" in text:
        return CameraStatus.error, "stream not found (404)"
    if "503" in text or "service unavailable" in text:
        return CameraStatus.offline, "camera unavailable (503)"
    if "no route" in text or "unreachable" in text:
        return CameraStatus.offline, "host unreachable"
    if "name or service" in text or "resolve" in text:
        return CameraStatus.offline, "host name not resolved"
    if "end of file" in text or isinstance(err, EOFError):
        return CameraStatus.offline, "connection closed by camera"
    return CameraStatus.error, f"probe failed ({name})"


def probe_url(camera_id: str, url: str, timeout_s: float = 5.0, networks: CameraNetworks | None = None) -> ProbeResult:
    """Open ``url`` (blocking) where ``networks`` allow, read stream info and the first packet; never raises."""
    started = time.monotonic()
    us = str(int(timeout_s * 1_000_000))
    options = {
        "rtsp_transport": "tcp",
        "protocol_whitelist": FFMPEG_PROTOCOL_WHITELIST,
        "timeout": us,
        "analyzeduration": "500000",
        "probesize": "65536",
    }
    try:
        with (networks or CameraNetworks()).open(url, options=options, timeout=(timeout_s, timeout_s)) as container:
            if not container.streams.video:
                return ProbeResult(
                    camera_id, CameraStatus.error, "no video stream", elapsed_s=time.monotonic() - started
                )
            vs = container.streams.video[0]
            ctx = vs.codec_context
            rate = vs.average_rate or vs.guessed_rate
            return ProbeResult(
                camera_id,
                CameraStatus.online,
                None,
                codec=ctx.name,
                width=ctx.width or None,
                height=ctx.height or None,
                fps=round(float(rate), 2) if rate else None,
                elapsed_s=time.monotonic() - started,
            )
    except Exception as e:  # every failure becomes a status, never a traceback
        elapsed = time.monotonic() - started
        status, reason = classify_error(e)
        if reason.startswith("probe failed") and elapsed >= 0.9 * timeout_s:
            # FFmpeg reports its own socket timeout or PyAV's open deadline as "invalid data".
            status, reason = CameraStatus.offline, f"no answer within {timeout_s:g} s"
        log.info("probe of camera %s: %s", camera_id, reason)
        return ProbeResult(camera_id, status, reason, elapsed_s=elapsed)


async def probe_cameras(
    store: CameraStore,
    camera_ids: Sequence[str],
    *,
    concurrency: int = 4,
    timeout_s: float = 5.0,
    on_result: Callable[[ProbeResult], None] | None = None,
) -> list[ProbeResult]:
    """Probe cameras with bounded concurrency and record each result in the store.

    Each probe runs in a thread of a pool of ``concurrency`` threads (PyAV blocks). Cameras deleted
    meanwhile are skipped. Results are sorted by camera id.
    """
    results: list[ProbeResult] = []
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(max(1, concurrency))
    # FFmpeg honours its deadlines; this guard only keeps a wedged FFmpeg from holding the caller.
    guard_s = timeout_s * 3 + 2

    async def one(cid: str) -> None:
        async with sem:
            started = time.monotonic()
            try:
                url = await store.open_url(cid)
            except NotFound:
                return
            except SecretBoxError:
                res = ProbeResult(cid, CameraStatus.error, "stored credentials cannot be decrypted")
            else:
                try:
                    probe = loop.run_in_executor(pool, probe_url, cid, url, timeout_s, store.networks)
                    res = await asyncio.wait_for(probe, guard_s)
                except TimeoutError:
                    res = ProbeResult(cid, CameraStatus.offline, f"no answer within {guard_s:g} s")
            res = replace(res, elapsed_s=time.monotonic() - started, checked_at=utcnow())
            await store.set_status(
                cid,
                res.status,
                reason=res.reason,
                codec=res.codec,
                width=res.width,
                height=res.height,
                fps=res.fps,
                seen=res.checked_at,
            )
            results.append(res)
            if on_result:
                on_result(res)

    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="probe")
    try:
        await asyncio.gather(*(one(c) for c in camera_ids))
    finally:
        # Never wait here: a cancelled caller must not block the event loop on running probes.
        pool.shutdown(wait=False, cancel_futures=True)
    return sorted(results, key=lambda r: r.camera_id)
