"""The stream hub: one upstream RTSP session per camera, shared by every output."""

from gateway.hub.hub import StreamHub, StreamUnavailable
from gateway.hub.packets import AccessUnit
from gateway.hub.reader import Reader, ReaderClosed
from gateway.hub.upstream import StreamInfo, UpstreamState

__all__ = ["AccessUnit", "Reader", "ReaderClosed", "StreamHub", "StreamInfo", "StreamUnavailable", "UpstreamState"]
