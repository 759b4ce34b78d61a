"""Where every vehicle is now: the latest fix per vehicle and a spatial index over them.

One small interface, :class:`VehicleIndex`, two implementations: :class:`MemoryVehicleIndex` (in
process, a k-d tree; the default) and :class:`RedisVehicleIndex` (Redis GEO, so that several gateway
nodes share one picture; used when ``redis_url`` is set). Both keep a fix as current only when it
is newer than the one they hold, and both answer "the k nearest vehicles whose fix is at least this
recent" exactly.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from camera_registry.geo import EARTH_RADIUS_M, PointIndex, haversine_m

__all__ = ["Fix", "IndexUnavailable", "MemoryVehicleIndex", "RedisVehicleIndex", "VehicleIndex"]


class IndexUnavailable(RuntimeError):
    """The shared index cannot be reached (Redis down); callers answer 503 or do without."""


@dataclass(frozen=True, slots=True)
class Fix:
    """One GPS position of a vehicle."""

    vehicle_id: str
    lat: float
    lon: float
    t: float  # epoch seconds
    speed: float | None = None
    heading: float | None = None


class VehicleIndex(Protocol):
    """Latest positions and nearest-vehicle search."""

    max_abs_lat: float  # latitudes beyond this cannot be indexed

    async def update(self, fixes: Sequence[Fix], hidden: Sequence[bool] | None = None) -> list[bool]:
        """Apply fixes in order; each becomes current only if newer than the vehicle's current one.

        A ``hidden`` fix (a foreign truck outside the district) counts as the newest but takes the
        vehicle out of the index. Returns, per fix, whether it became current.
        """
        ...

    async def get(self, vehicle_id: str) -> Fix | None:
        """The vehicle's current fix (None if unknown or hidden)."""
        ...

    async def get_many(self, vehicle_ids: Iterable[str]) -> dict[str, Fix]:
        """Current fixes of these vehicles (hidden and unknown ones left out)."""
        ...

    async def latest_fixes(self, vehicle_ids: Iterable[str]) -> dict[str, Fix]:
        """The newest fix of each of these vehicles, hidden ones included (the location rule
        follows trucks outside the district too); unknown ones left out."""
        ...

    async def nearest(
        self, lat: float, lon: float, k: int, radius_m: float | None, min_t: float
    ) -> list[tuple[Fix, float]]:
        """Up to ``k`` (fix, metres) of vehicles with a fix at ``min_t`` or later, nearest first."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class MemoryVehicleIndex:
    """In-process index: a dict of fixes and a :class:`PointIndex`."""

    max_abs_lat = 90.0

    def __init__(self) -> None:
        self._latest: dict[str, tuple[Fix, bool]] = {}  # vehicle -> (fix, hidden)
        self.points = PointIndex()

    async def update(self, fixes: Sequence[Fix], hidden: Sequence[bool] | None = None) -> list[bool]:
        out = []
        for i, fix in enumerate(fixes):
            cur = self._latest.get(fix.vehicle_id)
            if cur is not None and cur[0].t >= fix.t:
                out.append(False)
                continue
            hide = bool(hidden[i]) if hidden is not None else False
            self._latest[fix.vehicle_id] = (fix, hide)
            if hide:
                self.points.remove(fix.vehicle_id)
            else:
                self.points.set(fix.vehicle_id, fix.lat, fix.lon)
            out.append(True)
        return out

    async def get(self, vehicle_id: str) -> Fix | None:
        cur = self._latest.get(vehicle_id)
        return None if cur is None or cur[1] else cur[0]

    async def get_many(self, vehicle_ids: Iterable[str]) -> dict[str, Fix]:
        out = {}
        for vid in vehicle_ids:
            cur = self._latest.get(vid)
            if cur is not None and not cur[1]:
                out[vid] = cur[0]
        return out

    async def latest_fixes(self, vehicle_ids: Iterable[str]) -> dict[str, Fix]:
        return {vid: cur[0] for vid in vehicle_ids if (cur := self._latest.get(vid)) is not None}

    async def nearest(
        self, lat: float, lon: float, k: int, radius_m: float | None, min_t: float
    ) -> list[tuple[Fix, float]]:
        # Ask for k candidates first; stale fixes push the search outwards only when present.
        kk = k
        while True:
            cand = self.points.nearest(lat, lon, kk, radius_m)
            out = [(fix, d) for vid, d in cand if (fix := self._latest[vid][0]).t >= min_t]
            if len(out) >= k or len(cand) < kk:
                return out[:k]
            kk *= 4

    async def close(self) -> None:
        return None


# KEYS: geo set, fix hash. ARGV: n, then n groups of (vehicle, t, lon, lat, packed fix, hidden).
_UPDATE = """
local out = {}
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
  local b = 2 + i * 6
  local vid, t = ARGV[b], tonumber(ARGV[b + 1])
  local cur = redis.call('HGET', KEYS[2], vid)
  local ct = cur and tonumber(string.match(cur, '^[^|]+'))
  if ct and ct >= t then
    out[i + 1] = 0
  else
    redis.call('HSET', KEYS[2], vid, ARGV[b + 4])
    if ARGV[b + 5] == '1' then
      redis.call('ZREM', KEYS[1], vid)
    else
      redis.call('GEOADD', KEYS[1], ARGV[b + 2], ARGV[b + 3], vid)
    end
    out[i + 1] = 1
  end
end
return out
"""

# KEYS: geo set, fix hash. ARGV: lon, lat, radius m, count, min t.
# Returns the number of members found, then the fresh ones' packed fixes.
_NEAREST = """
local res = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[1], ARGV[2], 'BYRADIUS', ARGV[3], 'm',
  'ASC', 'COUNT', ARGV[4])
local min_t = tonumber(ARGV[5])
local out = {#res}
for _, vid in ipairs(res) do
  local fix = redis.call('HGET', KEYS[2], vid)
  if fix then
    local t = tonumber(string.match(fix, '^[^|]+'))
    if t and t >= min_t then
      out[#out + 1] = vid
      out[#out + 1] = fix
    end
  end
end
return out
"""

# Search radii tried in turn when no radius is given (a single wide GEOSEARCH is slow: start small).
_RADII_M = (1_000.0, 3_000.0, 10_000.0, 50_000.0, 250_000.0, 2_000_000.0, math.pi * EARTH_RADIUS_M)


def _pack(fix: Fix, hidden: bool) -> str:
    sp = "" if fix.speed is None else repr(fix.speed)
    hd = "" if fix.heading is None else repr(fix.heading)
    return f"{fix.t!r}|{fix.lat!r}|{fix.lon!r}|{sp}|{hd}|{'h' if hidden else ''}"


def _unpack(vid: str, packed: bytes | str) -> tuple[Fix, bool]:
    s = packed.decode() if isinstance(packed, bytes) else packed
    t, lat, lon, sp, hd, *rest = s.split("|")
    fix = Fix(vid, float(lat), float(lon), float(t), float(sp) if sp else None, float(hd) if hd else None)
    return fix, bool(rest and rest[0])


class RedisVehicleIndex:
    """Redis GEO: one geo set of current positions and one hash of packed fixes.

    Updates run as one Lua script per batch, so "newer than current" holds across gateway nodes.
    Redis GEO cannot index latitudes beyond +-85.05 degrees.
    """

    max_abs_lat = 85.05112878

    def __init__(self, client: Any, prefix: str = "liandong:vehicles") -> None:
        self.client = client
        # One hash tag: both keys land on the same Redis Cluster slot (a script touches both).
        self.keys = [f"{{{prefix}}}:geo", f"{{{prefix}}}:fix"]
        self._update = client.register_script(_UPDATE)
        self._nearest = client.register_script(_NEAREST)

    @staticmethod
    async def _call(aw: Awaitable[Any]) -> Any:
        from redis.exceptions import RedisError

        try:
            return await aw
        except (RedisError, OSError) as e:
            raise IndexUnavailable(f"vehicle positions in Redis unavailable: {type(e).__name__}") from None

    async def update(self, fixes: Sequence[Fix], hidden: Sequence[bool] | None = None) -> list[bool]:
        out: list[bool] = []
        step = 500  # bounded script run time per call
        for start in range(0, len(fixes), step):
            args: list[Any] = [0]
            chunk = fixes[start : start + step]
            for i, fix in enumerate(chunk):
                hide = bool(hidden[start + i]) if hidden is not None else False
                args += [
                    fix.vehicle_id,
                    repr(fix.t),
                    repr(fix.lon),
                    repr(fix.lat),
                    _pack(fix, hide),
                    "1" if hide else "0",
                ]
            args[0] = len(chunk)
            res = await self._call(self._update(keys=self.keys, args=args))
            out += [bool(int(x)) for x in res]
        return out

    async def get(self, vehicle_id: str) -> Fix | None:
        raw = await self._call(self.client.hget(self.keys[1], vehicle_id))
        if raw is None:
            return None
        fix, hidden = _unpack(vehicle_id, raw)
        return None if hidden else fix

    async def get_many(self, vehicle_ids: Iterable[str]) -> dict[str, Fix]:
        ids = list(vehicle_ids)
        if not ids:
            return {}
        out = {}
        for vid, raw in zip(ids, await self._call(self.client.hmget(self.keys[1], ids)), strict=True):
            if raw is not None:
                fix, hidden = _unpack(vid, raw)
                if not hidden:
                    out[vid] = fix
        return out

    async def latest_fixes(self, vehicle_ids: Iterable[str]) -> dict[str, Fix]:
        ids = list(vehicle_ids)
        if not ids:
            return {}
        raws = await self._call(self.client.hmget(self.keys[1], ids))
        return {vid: _unpack(vid, raw)[0] for vid, raw in zip(ids, raws, strict=True) if raw is not None}

    async def nearest(
        self, lat: float, lon: float, k: int, radius_m: float | None, min_t: float
    ) -> list[tuple[Fix, float]]:
        if k <= 0:
            return []
        radii = [r for r in _RADII_M if radius_m is None or r < radius_m]
        if radius_m is not None:
            radii.append(radius_m)
        count = k
        ri = 0
        while True:
            r = radii[ri]
            res = await self._call(
                self._nearest(keys=self.keys, args=[repr(lon), repr(lat), repr(r), count, repr(min_t)])
            )
            found = int(res[0])
            fresh = []
            for j in range(1, len(res), 2):
                vid = res[j].decode() if isinstance(res[j], bytes) else str(res[j])
                fix, _ = _unpack(vid, res[j + 1])
                fresh.append((fix, haversine_m(lat, lon, fix.lat, fix.lon)))
            if len(fresh) >= k:
                break
            if found >= count:
                count *= 4  # the count cut the answer short: ask for more at this radius
            elif ri + 1 < len(radii):
                ri += 1  # everything within r was seen: widen
            else:
                break
        fresh.sort(key=lambda x: x[1])
        return fresh[:k]

    async def close(self) -> None:
        await self.client.aclose()
