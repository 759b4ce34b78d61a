"""The current GOP of a camera: every access unit since the last keyframe."""

from __future__ import annotations

from streams.packets import AccessUnit

__all__ = ["GopCache"]


class GopCache:
    """Access units from the latest keyframe on, so a new reader starts decodable at once.

    Bounded: a camera with a very long GOP stops caching past ``max_units`` (new readers then
    wait for the next keyframe instead of the cache growing without limit).
    """

    def __init__(self, max_units: int) -> None:
        self.max_units = max_units
        self._units: list[AccessUnit] = []
        self._overflow = False
        self.keyframe: AccessUnit | None = None

    def add(self, au: AccessUnit) -> None:
        """Record one access unit."""
        if au.keyframe:
            self._units = [au]
            self._overflow = False
            self.keyframe = au
        elif self._units and not self._overflow:
            if len(self._units) >= self.max_units:
                self._units = []
                self._overflow = True
            else:
                self._units.append(au)

    def snapshot(self) -> list[AccessUnit]:
        """The cached units, keyframe first (empty when no usable keyframe is cached)."""
        return list(self._units)

    def clear(self) -> None:
        """Forget everything (the upstream restarted: old units do not continue the new stream)."""
        self._units = []
        self._overflow = False
        self.keyframe = None
