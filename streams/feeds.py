"""Where an output's pictures come from: the camera's own stream, or the camera's shared transcode.

WebRTC and HLS ask :class:`StreamFeeds` for a reader; it decides per camera and output
(:func:`streams.transcode.plan.needs_transcode`). Transcoded streams live in their own
:class:`~streams.StreamHub` per variant, whose upstream is one ffmpeg process fed from the
camera hub, so every viewer of a transcoded camera shares one transcode.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from streams.hub import StreamHub
from streams.ports import NO_METRICS, CameraLookup, StreamInfo, TranscodeMetrics
from streams.reader import Reader
from streams.settings import HubSettings, TranscoderSettings
from streams.transcode.command import Decoder, Encoder
from streams.transcode.plan import BROWSER_CODECS, Variant, needs_transcode
from streams.transcode.upstream import TranscodeCapacity, TranscoderPool, VariantSpec

__all__ = ["Feed", "StreamFeeds", "TranscodeCapacity", "UnsupportedCodec"]

log = logging.getLogger(__name__)


class UnsupportedCodec(Exception):
    """The camera's codec cannot be played by browsers and transcoding is off."""

    def __init__(self, codec: str) -> None:
        super().__init__(codec)
        self.codec = codec


@dataclass(slots=True)
class Feed:
    """A reader and where it came from."""

    camera_id: str
    reader: Reader
    source: StreamHub
    info: StreamInfo
    transcoded: bool

    def detach(self, reason: str) -> None:
        self.source.detach(self.reader, reason)


class StreamFeeds:
    """Hands out feeds: readers of browser-playable streams, each of the camera's own stream or of its
    shared transcode (a choice of source, not HTTP routing)."""

    def __init__(
        self,
        hub: StreamHub,
        hub_settings: HubSettings,
        settings: TranscoderSettings,
        known_camera: CameraLookup,
        metrics: TranscodeMetrics = NO_METRICS,
    ) -> None:
        self.hub = hub
        self.metrics = metrics
        self.settings = settings
        self.pool = TranscoderPool(
            source=hub,
            max_concurrent=settings.max_concurrent if settings.enabled else 0,
            encoder=Encoder(settings.encoder),
            decoder=Decoder(settings.decoder),
            ffmpeg_bin=settings.ffmpeg_bin,
            keyframe_s=settings.keyframe_s,
            on_change=self._count,
            on_restart=self.metrics.transcode_restarted,
        )

        async def exists(camera_id: str) -> str:
            await known_camera(camera_id)  # raises (NotFound) for unknown cameras
            return ""  # the transcoder reads the camera hub, never a URL

        self._variants = {
            Variant.auto: VariantSpec("h264", None, settings.bitrate_kbps),
            Variant.low: VariantSpec("low", settings.low_height, settings.low_bitrate_kbps),
        }
        # Transcoded streams report nothing as hubs (by design): their upstream states and bytes would
        # overwrite the cameras' series under the same camera label; the transcodes are counted by
        # ``metrics`` (running per variant, restarts per camera) instead. Their ownership is the
        # camera hub's: a transcode runs where the camera is pulled (see _transcoded).
        self.transcoded = {
            v: StreamHub(hub_settings, exists, NO_METRICS, upstream_factory=self.pool.factory(spec))
            for v, spec in self._variants.items()
        }

    def _count(self, pool: TranscoderPool) -> None:
        for spec in self._variants.values():
            n = sum(1 for key in pool.running if key.endswith("/" + spec.name))
            self.metrics.transcodes_running(spec.name, n)

    async def attach(
        self,
        camera_id: str,
        protocol: str,
        *,
        known_codec: str | None = None,
        variant: Variant = Variant.auto,
        timeout_s: float = 8.0,
        passive: bool = False,
        consume: bool = True,
    ) -> Feed:
        """A reader for ``protocol``; raises StreamUnavailable, UnsupportedCodec, TranscodeCapacity, NotFound.

        ``passive``: only for a camera's own stream; the reader does not keep the camera open.
        ``consume=False``: the reader only counts a viewer that a shared consumer feeds (it queues nothing)."""
        want = needs_transcode(known_codec, variant)
        if not want:
            reader = await self.hub.attach(camera_id, protocol, passive=passive, consume=consume)
            try:
                info = self.hub.info(camera_id) or await self.hub.wait_info(camera_id, timeout_s)
            except BaseException:
                self.hub.detach(reader, "setup failed")
                raise
            if info.codec in BROWSER_CODECS:
                return Feed(camera_id, reader, self.hub, info, transcoded=False)
            self.hub.detach(reader, "needs a transcode")
            known_codec = info.codec
        return await self._transcoded(camera_id, protocol, variant, known_codec, timeout_s, consume)

    async def _transcoded(
        self, camera_id: str, protocol: str, variant: Variant, codec: str | None, timeout_s: float, consume: bool
    ) -> Feed:
        if not self.settings.enabled:
            raise UnsupportedCodec(codec or "this codec")
        src = self.transcoded[variant]
        # In a cluster the camera's pull (and so its transcode) lives on the node holding its lease:
        # claim it through the camera hub first, which raises OwnedElsewhere (a redirect) if another has it.
        hold = None
        if self.hub.ownership.may_refuse:
            hold = await self.hub.attach(camera_id, "transcode", with_backlog=False)
        try:
            reader = await src.attach(camera_id, protocol, consume=consume)
            try:
                info = src.info(camera_id) or await src.wait_info(camera_id, timeout_s + 4.0)  # + ffmpeg start
            except BaseException:
                src.detach(reader, "setup failed")
                raise
        finally:
            if hold is not None:
                self.hub.detach(hold, "claimed")
        return Feed(camera_id, reader, src, info, transcoded=True)

    def describe(self, camera_id: str) -> dict[str, Any]:
        """Transcodes of a camera for the API."""
        out = {}
        for v, hub in self.transcoded.items():
            if camera_id in hub.cameras():
                out[self._variants[v].name] = hub.describe(camera_id)
        return out

    def running(self) -> dict[str, int | None]:
        """Running transcodes and their ffmpeg process ids."""
        return {key: up.pid for key, up in self.pool.running.items()}

    async def end_camera(self, camera_id: str, reason: str) -> None:
        for hub in self.transcoded.values():
            await hub.end_camera(camera_id, reason)

    async def close(self) -> None:
        for hub in self.transcoded.values():
            await hub.close()
