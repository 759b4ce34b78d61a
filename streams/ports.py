"""The stream core's boundary: what a hub exchanges with its sources, and what it needs from outside.

- :class:`Upstream` (built by an :class:`UpstreamFactory`): one camera's source of access units, driven
  by its hub through :class:`UpstreamCallbacks`. Two implementations: :class:`streams.rtsp.RtspUpstream`
  (PyAV pulling the camera) and :class:`streams.transcode.upstream.TranscodeUpstream` (one ffmpeg
  reading the camera hub).
- :class:`Ownership`: whether this process may pull a camera. A single node always may
  (:class:`LocalOwnership`); a cluster leases cameras between nodes (``gateway.cluster``).
- :class:`HubMetrics` and :class:`TranscodeMetrics`: what the hub and the transcoder report
  (``gateway.metrics.Metrics`` in the app; :data:`NO_METRICS` where nothing should be reported).
- :data:`UrlResolver`, :data:`CameraLookup`: a camera's source URL, and whether a camera exists
  (the camera store in the app).

The RTSP puller's own need, where to open a camera, is :class:`streams.rtsp.CameraOpener`.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from streams.packets import AccessUnit

__all__ = [
    "NO_METRICS",
    "CameraLookup",
    "HubMetrics",
    "LocalOwnership",
    "NoMetrics",
    "Ownership",
    "StreamInfo",
    "TranscodeMetrics",
    "Upstream",
    "UpstreamCallbacks",
    "UpstreamFactory",
    "UpstreamState",
    "UpstreamTimeouts",
    "UrlResolver",
]

# A camera's source URL (with credentials, kept in memory only); raises for unknown cameras.
UrlResolver = Callable[[str], Awaitable[str]]
# Raises for an unknown camera (``CameraStore.get`` in the app); what it returns is not used.
CameraLookup = Callable[[str], Awaitable[object]]


class UpstreamState(enum.StrEnum):
    """Where a camera's upstream session is."""

    idle = "idle"
    connecting = "connecting"
    live = "live"
    reconnecting = "reconnecting"
    failed = "failed"


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What the camera sends."""

    codec: str
    width: int
    height: int
    extradata: bytes
    fps: float | None


@dataclass(frozen=True, slots=True)
class UpstreamCallbacks:
    """What an upstream reports to its hub, each called on the event loop: an access unit, a state
    change (with a reason when it failed), what the stream is, and bytes received."""

    on_unit: Callable[[AccessUnit], None]
    on_state: Callable[[UpstreamState, str | None], None]
    on_info: Callable[[StreamInfo], None]
    on_bytes: Callable[[int], None]


@dataclass(frozen=True, slots=True)
class UpstreamTimeouts:
    """Timeouts and backoff of an upstream."""

    open_s: float = 8.0
    read_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    failed_after: int = 3


class Upstream(Protocol):
    """One camera's source of access units; it reports through the :class:`UpstreamCallbacks` it was
    built with and reconnects (or restarts) on its own until stopped."""

    @property
    def attempts(self) -> int:
        """Sessions started so far (the hub shows ``attempts - 1`` as reconnects)."""
        ...

    @property
    def alive(self) -> bool:
        """Still running (a stopped or finished upstream is replaced by a new one)."""
        ...

    def start(self) -> None:
        """Start; may raise to refuse (e.g. :class:`~streams.transcode.upstream.TranscodeCapacity`)."""
        ...

    def stop(self) -> None:
        """Ask it to stop, without waiting."""
        ...

    async def join(self, wait_s: float = 10.0) -> None:
        """Wait (at most ``wait_s``) until it has stopped."""
        ...


class UpstreamFactory(Protocol):
    """Builds a camera's upstream (not started) for a hub: the RTSP puller, or a transcode."""

    def __call__(
        self,
        camera_id: str,
        url: str,
        loop: asyncio.AbstractEventLoop,
        *,
        callbacks: UpstreamCallbacks,
        timeouts: UpstreamTimeouts,
    ) -> Upstream: ...


class Ownership(Protocol):
    """Who may pull a camera when several gateway nodes share cameras (see ``gateway.cluster``)."""

    @property
    def may_refuse(self) -> bool:
        """Whether :meth:`claim` can refuse (other processes pull cameras too); False on a single node."""
        ...

    async def claim(self, camera_id: str) -> None:
        """Allow this process to pull the camera, or raise :class:`~streams.StreamUnavailable`
        (e.g. another node owns it)."""
        ...

    def released(self, camera_id: str) -> None:
        """This process stopped pulling the camera."""
        ...


class LocalOwnership:
    """A single node: every camera is this process's to pull."""

    may_refuse = False

    async def claim(self, camera_id: str) -> None:
        """Always allowed."""

    def released(self, camera_id: str) -> None:
        """Nothing to give back."""


class HubMetrics(Protocol):
    """What a :class:`~streams.StreamHub` reports. Camera ids are registered cameras only."""

    def viewers_changed(self, camera_id: str, protocol: str, delta: int) -> None:
        """Readers that hold the camera open (viewers) came (+) or went (-)."""
        ...

    def upstream_state_changed(self, camera_id: str, state: UpstreamState) -> None:
        """The camera's upstream is now in ``state``."""
        ...

    def upstream_retrying(self, camera_id: str) -> None:
        """The camera's upstream dropped or failed and will try again."""
        ...

    def upstream_received(self, camera_id: str, nbytes: int, bitrate_bps: float) -> None:
        """``nbytes`` more came from the camera; ``bitrate_bps`` over the last seconds."""
        ...

    def first_unit_delivered(self, protocol: str, wait_s: float) -> None:
        """A reader's consumer took its first access unit ``wait_s`` after attaching."""
        ...

    def gop_dropped(self, camera_id: str, protocol: str) -> None:
        """A slow reader lost a GOP."""
        ...


class TranscodeMetrics(Protocol):
    """What the shared transcodes report (:class:`~streams.feeds.StreamFeeds`)."""

    def transcodes_running(self, variant: str, count: int) -> None:
        """``count`` transcodes of ``variant`` run now."""
        ...

    def transcode_restarted(self, camera_id: str) -> None:
        """A camera's transcoder process ended and is restarted."""
        ...


class NoMetrics:
    """Reports nothing: a :class:`HubMetrics` and :class:`TranscodeMetrics` for hubs whose figures
    belong to no one (the transcoded streams' own hubs: their upstream states would overwrite the
    cameras' series, and the transcodes are counted by :class:`TranscodeMetrics` instead) and for tests."""

    def viewers_changed(self, camera_id: str, protocol: str, delta: int) -> None:
        """Not reported."""

    def upstream_state_changed(self, camera_id: str, state: UpstreamState) -> None:
        """Not reported."""

    def upstream_retrying(self, camera_id: str) -> None:
        """Not reported."""

    def upstream_received(self, camera_id: str, nbytes: int, bitrate_bps: float) -> None:
        """Not reported."""

    def first_unit_delivered(self, protocol: str, wait_s: float) -> None:
        """Not reported."""

    def gop_dropped(self, camera_id: str, protocol: str) -> None:
        """Not reported."""

    def transcodes_running(self, variant: str, count: int) -> None:
        """Not reported."""

    def transcode_restarted(self, camera_id: str) -> None:
        """Not reported."""


NO_METRICS = NoMetrics()
