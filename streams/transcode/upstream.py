"""A transcode as a hub upstream: reads a camera from the stream hub, runs one ffmpeg, yields H.264.

The transcoder's own :class:`~streams.StreamHub` (one per variant) builds these through
:class:`TranscoderPool`, so transcoded streams get the same readers, GOP cache, idle close and
restarts as cameras; every viewer of a transcoded camera shares one ffmpeg process. A process that
dies is restarted with backoff and its readers resume at the next keyframe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from streams.hub import StreamHub
from streams.packets import AccessUnit
from streams.ports import StreamInfo, UpstreamCallbacks, UpstreamFactory, UpstreamState, UpstreamTimeouts
from streams.reader import Reader, ReaderClosed
from streams.transcode.command import Decoder, Encoder, TranscodeSpec, build_command

__all__ = ["TranscodeCapacity", "TranscodeUpstream", "TranscoderPool", "VariantSpec"]

log = logging.getLogger(__name__)
_AUD = b"\x00\x00\x00\x01\x09"
_HW_FAIL_WINDOW_S = 3.0  # a hardware encoder that dies this soon without output is given up


class TranscodeCapacity(Exception):
    """The configured cap on concurrent transcodes is reached."""


@dataclass(frozen=True, slots=True)
class VariantSpec:
    """How a variant is encoded."""

    name: str
    height: int | None
    bitrate_kbps: int


@dataclass
class TranscoderPool:
    """Shared by every transcode: the cap, the source hub, the encoder choice and live processes."""

    source: StreamHub  # the cameras' hub
    max_concurrent: int
    encoder: Encoder = Encoder.software
    decoder: Decoder = Decoder.software
    ffmpeg_bin: str = "ffmpeg"
    keyframe_s: float = 1.0
    running: dict[str, TranscodeUpstream] = field(default_factory=dict)
    # Set per stage when the configured hardware could not run here (each stage falls back on its own:
    # a box may decode on NVDEC but have no NVENC).
    decoder_failed: bool = False
    encoder_failed: bool = False
    restarts: int = 0
    on_change: Callable[[TranscoderPool], None] | None = None  # metrics
    on_restart: Callable[[str], None] | None = None

    def restarted(self, camera_id: str) -> None:
        self.restarts += 1
        if self.on_restart is not None:
            self.on_restart(camera_id)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    def acquire(self, key: str, up: TranscodeUpstream) -> None:
        if key not in self.running and len(self.running) >= self.max_concurrent:
            raise TranscodeCapacity(
                f"all {self.max_concurrent} transcoder slots are busy (transcoder.max_concurrent); try again later"
            )
        self.running[key] = up
        self._changed()

    def release(self, key: str, up: TranscodeUpstream) -> None:
        if self.running.get(key) is up:
            del self.running[key]
            self._changed()

    def encoder_now(self) -> Encoder:
        return Encoder.software if self.encoder_failed else self.encoder

    def decoder_now(self) -> Decoder:
        return Decoder.software if self.decoder_failed else self.decoder

    def fall_back(self) -> None:
        """A process with hardware stages died at once: give up the decoder first, then the encoder."""
        if self.decoder_now() is not Decoder.software:
            self.decoder_failed = True
            log.warning("transcoder: the %s decoder does not work here; decoding in software", self.decoder)
        elif self.encoder_now() is not Encoder.software:
            self.encoder_failed = True
            log.warning("transcoder: the %s encoder does not work here; using libx264", self.encoder)

    def factory(self, variant: VariantSpec) -> UpstreamFactory:
        """An ``upstream_factory`` for a :class:`~streams.StreamHub` of this variant."""

        def make(
            camera_id: str,
            url: str,  # unused: a transcode reads the camera hub, never the camera
            loop: asyncio.AbstractEventLoop,
            *,
            callbacks: UpstreamCallbacks,
            timeouts: UpstreamTimeouts,
        ) -> TranscodeUpstream:
            return TranscodeUpstream(camera_id, self, variant, loop, callbacks=callbacks, timeouts=timeouts)

        return make


class TranscodeUpstream:
    """One ffmpeg process fed from the camera hub: an :class:`~streams.ports.Upstream` of a variant's hub."""

    def __init__(
        self,
        camera_id: str,
        pool: TranscoderPool,
        variant: VariantSpec,
        loop: asyncio.AbstractEventLoop,
        *,
        callbacks: UpstreamCallbacks,
        timeouts: UpstreamTimeouts = UpstreamTimeouts(),
    ) -> None:
        self.camera_id = camera_id
        self.pool = pool
        self.variant = variant
        self._loop = loop
        self._cb = callbacks
        self.timeouts = timeouts
        self.key = f"{camera_id}/{variant.name}"
        self.attempts = 0
        self.proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.last_error: str | None = None

    # -- the Upstream protocol ----------------------------------------------------------------
    def start(self) -> None:
        """Take a slot (raises :class:`TranscodeCapacity`) and start."""
        self.pool.acquire(self.key, self)
        self._task = self._loop.create_task(self._run(), name=f"transcode-{self.key}")

    def stop(self) -> None:
        """Stop the process and give the slot back."""
        self._stopped = True
        self.pool.release(self.key, self)
        self._kill()
        if self._task is not None:
            self._task.cancel()

    async def join(self, wait_s: float = 10.0) -> None:
        """Wait (at most ``wait_s``) for the run loop to end."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), wait_s)

    @property
    def alive(self) -> bool:
        """Started and not stopped."""
        return not self._stopped and self._task is not None and not self._task.done()

    @property
    def pid(self) -> int | None:
        """The running ffmpeg's process id."""
        return self.proc.pid if self.proc is not None and self.proc.returncode is None else None

    # -- running ------------------------------------------------------------------------------
    def _kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def _run(self) -> None:
        delay = self.timeouts.backoff_initial_s
        failures = 0
        first = True
        try:
            while not self._stopped:
                self._cb.on_state(UpstreamState.connecting if first else UpstreamState.reconnecting, None)
                first = False
                self.attempts += 1
                started = time.monotonic()
                produced, reason = await self._session()
                if self._stopped:
                    break
                if produced:
                    failures, delay = 0, self.timeouts.backoff_initial_s
                else:
                    failures += 1
                self.last_error = reason
                self.pool.restarted(self.camera_id)
                state = UpstreamState.failed if failures >= self.timeouts.failed_after else UpstreamState.reconnecting
                self._cb.on_state(state, reason)
                wait = delay * random.uniform(0.8, 1.2)
                log.warning("transcode %s: %s; restarting in %.1f s", self.key, reason, wait)
                if not produced and time.monotonic() - started < _HW_FAIL_WINDOW_S:
                    self.pool.fall_back()
                    delay = self.timeouts.backoff_initial_s  # the next try is a different command
                await asyncio.sleep(wait)
                delay = min(delay * 2, self.timeouts.backoff_max_s)
        finally:
            self._kill()
            self.pool.release(self.key, self)
            if not self._loop.is_closed():
                self._cb.on_state(UpstreamState.idle, None)

    async def _session(self) -> tuple[bool, str]:
        """One ffmpeg run; (produced any picture, why it ended)."""
        source = self.pool.source
        reader = await source.attach(self.camera_id, "transcode")
        helpers: list[asyncio.Task[None]] = []
        try:
            info = source.info(self.camera_id) or await source.wait_info(self.camera_id, self.timeouts.open_s)
            spec = TranscodeSpec(
                input_codec=info.codec,
                fps=info.fps or 25.0,
                height=self.variant.height if self.variant.height and self.variant.height < info.height else None,
                bitrate_kbps=self.variant.bitrate_kbps,
                keyframe_s=self.pool.keyframe_s,
                encoder=self.pool.encoder_now(),
                decoder=self.pool.decoder_now(),
            )
            cmd = build_command(spec, self.pool.ffmpeg_bin)
            self.proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
            log.info(
                "transcode %s: ffmpeg pid %d (decode %s, encode %s)",
                self.key, self.proc.pid, spec.decoder.value, spec.encoder.value,
            )  # fmt: skip
            stamps: deque[tuple[int, float]] = deque(maxlen=256)
            errors: deque[str] = deque(maxlen=5)
            feeder = asyncio.create_task(self._feed(reader, stamps))
            drain = asyncio.create_task(self._stderr(errors))
            helpers += [feeder, drain]
            produced = await self._read(stamps, spec, info)
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError, ReaderClosed, Exception):
                await feeder
            self._kill()
            rc = await self.proc.wait()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(drain, 1.0)
            detail = "; ".join(errors)[-200:]
            return produced, f"transcoder exited ({rc})" + (f": {detail}" if detail else "")
        except Exception as e:
            return False, f"transcoder failed: {type(e).__name__}: {str(e)[:160]}"
        finally:
            source.detach(reader, "transcode restarted")
            self._kill()
            for task in helpers:  # also when this session was cancelled (stop) mid-way
                task.cancel()
                task.add_done_callback(_retrieve)

    async def _feed(self, reader: Reader, stamps: deque[tuple[int, float]]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        generation = reader.generation
        while True:
            au = await reader.get()
            if reader.generation != generation:
                self._kill()  # the camera restarted: start ffmpeg again on its next keyframe
                return
            stamps.append((au.pts, au.wallclock))
            self.proc.stdin.write(au.data)
            await self.proc.stdin.drain()

    async def _stderr(self, errors: deque[str]) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for line in self.proc.stderr:
            text = line.decode(errors="replace").strip()
            if text:
                errors.append(text[:200])

    async def _read(self, stamps: deque[tuple[int, float]], spec: TranscodeSpec, info: StreamInfo) -> bool:
        """Split ffmpeg's output into pictures at the access unit delimiters and hand them on."""
        assert self.proc is not None and self.proc.stdout is not None
        buf = b""
        produced = False
        seq = 0
        last_pts = -1
        while True:
            chunk = await self.proc.stdout.read(1 << 16)
            if not chunk:
                return produced
            self._cb.on_bytes(len(chunk))
            buf += chunk
            start = buf.find(_AUD)
            if start < 0:
                continue
            while True:
                nxt = buf.find(_AUD, start + len(_AUD))
                if nxt < 0:
                    break
                data = buf[start:nxt]
                start = nxt
                pts, wall = stamps.popleft() if stamps else (last_pts + 3600, time.time())
                if pts <= last_pts:
                    pts = last_pts + 1
                last_pts = pts
                keyframe = _is_idr(data)
                if not produced:
                    if not keyframe:
                        continue
                    produced = True
                    w, h = _scaled(info.width, info.height, spec.height)
                    self._cb.on_info(StreamInfo("h264", w, h, b"", spec.fps))
                    self._cb.on_state(UpstreamState.live, None)
                seq += 1
                self._cb.on_unit(AccessUnit(data, pts, keyframe, wall, seq))
            buf = buf[start:]


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a helper task's outcome as seen (it ends with ReaderClosed or a broken pipe when stopped)."""
    if not task.cancelled():
        task.exception()


def _is_idr(data: bytes) -> bool:
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        if i + 3 < len(data):
            t = data[i + 3] & 0x1F
            if t == 5:
                return True
            if t == 1:
                return False
        i = data.find(b"\x00\x00\x01", i + 3)
    return False


def _scaled(width: int, height: int, to_height: int | None) -> tuple[int, int]:
    if not to_height or height <= 0:
        return width, height
    w = round(width * to_height / height)
    return w - (w % 2), to_height
