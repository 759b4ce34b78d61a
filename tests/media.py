"""Shared helpers for tests that use the real fixture cameras."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import av
import pytest

from fixtures.camera_server import FixtureCameraServer
from streams.packets import AccessUnit

# The hub's timings in the media tests: an unwatched camera closes after 1 s, and a lost one is
# noticed after 2 s and retried at once.
QUICK_HUB = {"idle_close_s": 1.0, "read_timeout_s": 2.0, "reconnect_initial_s": 0.2}


def cameras_fixture(*mounts: str) -> Any:
    """A module-scoped ``cams`` fixture: the fixture RTSP server with ``mounts``, for the whole
    module (a test module says ``cams = cameras_fixture("h264", ...)``)."""

    @pytest.fixture(scope="module", name="cams")
    def cams() -> Iterator[FixtureCameraServer]:
        """The fixture RTSP server with this module's mounts."""
        with FixtureCameraServer(mounts=mounts) as srv:
            yield srv

    return cams


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
