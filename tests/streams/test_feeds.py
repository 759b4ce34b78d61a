"""StreamFeeds and the hub's Ownership port, without cameras: a refused claim starts no transcode."""

from __future__ import annotations

import asyncio

import pytest

from streams import StreamFeeds, StreamHub, StreamUnavailable, Upstream, Variant
from streams.ports import UpstreamCallbacks, UpstreamTimeouts
from streams.settings import HubSettings, TranscoderSettings


class Refusing:
    """An Ownership whose cameras all belong to another node."""

    may_refuse = True

    def __init__(self) -> None:
        self.claims: list[str] = []

    async def claim(self, camera_id: str) -> None:
        self.claims.append(camera_id)
        raise StreamUnavailable(f"camera '{camera_id}' is served by node b")

    def released(self, camera_id: str) -> None:
        raise AssertionError("never claimed, never released")


def no_upstream(
    camera_id: str,
    url: str,
    loop: asyncio.AbstractEventLoop,
    *,
    callbacks: UpstreamCallbacks,
    timeouts: UpstreamTimeouts,
) -> Upstream:
    raise AssertionError("a refused camera must not be pulled")


async def resolve(camera_id: str) -> str:
    return "rtsp://127.0.0.1:9/never"


async def known(camera_id: str) -> object:
    return camera_id


async def test_a_camera_owned_elsewhere_is_refused_before_any_transcode_starts() -> None:
    ownership = Refusing()
    hub = StreamHub(HubSettings(), resolve, upstream_factory=no_upstream, ownership=ownership)
    feeds = StreamFeeds(hub, HubSettings(), TranscoderSettings(), known)
    try:
        with pytest.raises(StreamUnavailable, match="served by node b"):
            await feeds.attach("cam-1", "webrtc", known_codec="hevc", variant=Variant.auto)
        assert ownership.claims == ["cam-1"]
        assert feeds.running() == {}  # no ffmpeg, no slot taken
        assert hub.cameras() == [] and feeds.transcoded[Variant.auto].cameras() == []
    finally:
        await feeds.close()
        await hub.close()
