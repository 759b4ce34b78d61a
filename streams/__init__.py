"""The stream core: one upstream per camera, shared by every output (WebRTC, HLS, snapshots, transcodes).

A :class:`StreamHub` pulls a camera with its first reader and closes it after the last; outputs get
readers through :class:`StreamFeeds` (the camera's own stream, or its shared transcode). What the core
needs from outside is declared in :mod:`streams.ports`; it imports nothing from the gateway.
"""

from streams.feeds import Feed, StreamFeeds, UnsupportedCodec
from streams.hub import StreamHub, StreamUnavailable
from streams.packets import CLOCK_RATE, AccessUnit, split_nals
from streams.ports import (
    NO_METRICS,
    HubMetrics,
    LocalOwnership,
    NoMetrics,
    Ownership,
    StreamInfo,
    TranscodeMetrics,
    Upstream,
    UpstreamFactory,
    UpstreamState,
)
from streams.reader import Reader, ReaderClosed
from streams.rtsp import CameraOpener, RtspUpstream
from streams.settings import HubSettings, TranscoderSettings
from streams.transcode.plan import BROWSER_CODECS, Variant, needs_transcode
from streams.transcode.upstream import TranscodeCapacity

__all__ = [
    "BROWSER_CODECS",
    "CLOCK_RATE",
    "NO_METRICS",
    "AccessUnit",
    "CameraOpener",
    "Feed",
    "HubMetrics",
    "HubSettings",
    "LocalOwnership",
    "NoMetrics",
    "Ownership",
    "Reader",
    "ReaderClosed",
    "RtspUpstream",
    "StreamFeeds",
    "StreamHub",
    "StreamInfo",
    "StreamUnavailable",
    "TranscodeCapacity",
    "TranscodeMetrics",
    "TranscoderSettings",
    "UnsupportedCodec",
    "Upstream",
    "UpstreamFactory",
    "UpstreamState",
    "Variant",
    "needs_transcode",
    "split_nals",
]
