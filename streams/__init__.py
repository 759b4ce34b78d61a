"""The stream hub: one upstream RTSP session per camera, shared by every output."""

from streams.hub import StreamHub, StreamUnavailable
from streams.packets import AccessUnit
from streams.reader import Reader, ReaderClosed
from streams.upstream import StreamInfo, UpstreamState

__all__ = ["AccessUnit", "Reader", "ReaderClosed", "StreamHub", "StreamInfo", "StreamUnavailable", "UpstreamState"]
