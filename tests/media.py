"""Shared helpers for tests that use the real fixture cameras."""

from __future__ import annotations

import av

from gateway.hub.packets import AccessUnit


def decode_units(units: list[AccessUnit], codec: str = "h264") -> list[av.VideoFrame]:
    """Decode access units with FFmpeg; raises on corrupt data."""
    ctx = av.CodecContext.create(codec, "r")
    frames: list[av.VideoFrame] = []
    for au in units:
        for pkt in ctx.parse(au.data):
            frames.extend(ctx.decode(pkt))  # type: ignore[arg-type]
    for pkt in ctx.parse(b""):
        frames.extend(ctx.decode(pkt))  # type: ignore[arg-type]
    return frames
