"""The PTZ port: what the gateway asks of a steerable camera, whatever protocol it speaks.

Coordinates are ONVIF's generic spaces, which every driver maps to: pan and tilt in -1..1, zoom in
0..1 for positions; speeds in -1..1 for continuous moves; translations in -1..1 (zoom -1..1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Preset", "PtzCapabilities", "PtzDriver", "PtzError", "PtzPosition"]


class PtzError(Exception):
    """The camera refused a command or could not be reached (the message names which, never a secret)."""


@dataclass(frozen=True, slots=True)
class PtzCapabilities:
    """What the camera's PTZ can do."""

    continuous: bool = True
    absolute: bool = False
    relative: bool = False
    home: bool = False
    max_presets: int = 0

    def as_dict(self) -> dict[str, object]:
        """For the API."""
        return {
            "continuous": self.continuous,
            "absolute": self.absolute,
            "relative": self.relative,
            "home": self.home,
            "max_presets": self.max_presets,
        }


@dataclass(frozen=True, slots=True)
class PtzPosition:
    """Where the head points (pan, tilt in -1..1, zoom in 0..1) and whether it is moving."""

    pan: float
    tilt: float
    zoom: float
    moving: bool = False


@dataclass(frozen=True, slots=True)
class Preset:
    """A stored position the camera can return to."""

    token: str
    name: str


class PtzDriver(Protocol):
    """One camera's PTZ. Every method may raise :class:`PtzError`."""

    async def capabilities(self) -> PtzCapabilities:
        """What the head can do."""
        ...

    async def position(self) -> PtzPosition | None:
        """Where it points, if the camera reports it."""
        ...

    async def presets(self) -> list[Preset]:
        """The stored presets."""
        ...

    async def continuous(self, pan: float, tilt: float, zoom: float, timeout_s: float) -> None:
        """Move at these speeds; the camera stops by itself after ``timeout_s``."""
        ...

    async def stop(self) -> None:
        """Stop every movement."""
        ...

    async def absolute(self, pan: float, tilt: float, zoom: float | None) -> None:
        """Go to a position."""
        ...

    async def relative(self, pan: float, tilt: float, zoom: float | None) -> None:
        """Move by a translation."""
        ...

    async def home(self) -> None:
        """Go to the home position."""
        ...

    async def goto_preset(self, token: str) -> None:
        """Go to a stored preset."""
        ...

    async def set_preset(self, name: str, token: str | None = None) -> str:
        """Store the current position as a preset (replacing ``token`` if given); its token."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
