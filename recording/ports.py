"""What the recorder needs from the stream core and the rest of the gateway."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from streams.ports import StreamInfo
from streams.reader import Reader

__all__ = ["HubReaders", "RecordingEvents"]


class HubReaders(Protocol):
    """The camera hub, as far as a recorder reads it (``streams.StreamHub``)."""

    async def attach(
        self, camera_id: str, protocol: str, *, with_backlog: bool = True, passive: bool = False
    ) -> Reader:
        """A reader of the camera, starting with the cached GOP."""
        ...

    def detach(self, reader: Reader, reason: str = "detached") -> None:
        """Stop reading."""
        ...

    def info(self, camera_id: str) -> StreamInfo | None:
        """What the camera sends, if it is being pulled (None: it is not)."""
        ...

    async def wait_info(self, camera_id: str, timeout_s: float) -> StreamInfo:
        """What the camera sends, once it is open."""
        ...


# Where the recorder reports what operators must know (recording paused for lack of disk, resumed):
# (event type, data, the cameras it is about).
RecordingEvents = Callable[[str, dict[str, Any], list[str]], None]
