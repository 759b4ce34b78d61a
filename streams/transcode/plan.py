"""What each output gets: the camera's own stream (passthrough) or one shared transcode."""

from __future__ import annotations

import enum

__all__ = ["BROWSER_CODECS", "Variant", "needs_transcode"]

# What Chromium, Firefox and Safari all decode, over WebRTC and in MSE (Chromium has no H.265).
BROWSER_CODECS = frozenset({"h264"})


class Variant(enum.StrEnum):
    """A stream a viewer can ask for."""

    auto = "auto"  # the camera's stream when browsers play its codec, else H.264 from the transcoder
    low = "low"  # a low-bitrate H.264 rendition for busy walls (always transcoded)


def needs_transcode(codec: str | None, variant: Variant) -> bool | None:
    """True/False when known; None when the camera's codec is not known yet (ask the stream)."""
    if variant is Variant.low:
        return True
    if codec is None:
        return None
    return codec not in BROWSER_CODECS
