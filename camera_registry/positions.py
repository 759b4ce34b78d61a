"""Live vehicle positions: batch intake with per-item validation, latest positions in a spatial
index (:mod:`camera_registry.vehicle_index`), track history, and "nearest camera" look-ups
(fixed cameras by their place, mounted ones by their vehicle's fresh fix)."""

from __future__ import annotations

import bisect
import math
import time
from array import array
from collections.abc import Callable, Iterable, Sequence, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from camera_registry.geo import PointIndex
from camera_registry.store import CameraStore
from camera_registry.vehicle_index import Fix, MemoryVehicleIndex, VehicleIndex
from storage.times import parse_zoned

if TYPE_CHECKING:
    from camera_registry.settings import VehicleSettings

__all__ = ["Fix", "NearbyCamera", "PositionService", "Track"]

FixListener = Callable[[str, float, float, float], None]


@dataclass(frozen=True, slots=True)
class NearbyCamera:
    """A camera and how far it is."""

    camera_id: str
    distance_m: float
    kind: str
    vehicle_id: str | None
    position_age_s: float | None


class Track:
    """A vehicle's recent fixes, time-ordered, in a flat array of doubles (40 bytes a fix).

    Late fixes are inserted in time order; the oldest are dropped beyond ``max_points``.
    """

    __slots__ = ("_a", "_times", "max_points")
    _W = 5  # t, lat, lon, speed, heading (NaN = unknown)

    def __init__(self, max_points: int) -> None:
        self.max_points = max_points
        self._a = array("d")
        self._times = array("d")

    def __len__(self) -> int:
        return len(self._times)

    def add(self, fix: Fix) -> None:
        """Insert a fix in time order."""
        speed = math.nan if fix.speed is None else fix.speed
        row = (fix.t, fix.lat, fix.lon, speed, math.nan if fix.heading is None else fix.heading)
        if not self._times or fix.t >= self._times[-1]:
            self._times.append(fix.t)
            self._a.extend(row)
        else:
            i = bisect.bisect_right(self._times, fix.t)
            self._times.insert(i, fix.t)
            self._a[i * self._W : i * self._W] = array("d", row)
        excess = len(self._times) - self.max_points
        if excess > 0:
            self.drop_first(excess)

    def drop_first(self, n: int) -> None:
        """Forget the ``n`` oldest fixes."""
        del self._times[:n]
        del self._a[: n * self._W]

    def prune(self, cutoff: float) -> None:
        """Forget fixes older than ``cutoff``."""
        self.drop_first(bisect.bisect_left(self._times, cutoff))

    def points(self, since: float | None = None) -> list[tuple[float, float, float, float | None, float | None]]:
        """(t, lat, lon, speed, heading) from ``since`` on."""
        start = 0 if since is None else bisect.bisect_left(self._times, since)
        a, w = self._a, self._W
        out = []
        for i in range(start, len(self._times)):
            t, lat, lon, sp, hd = a[i * w : i * w + w]
            out.append((t, lat, lon, None if math.isnan(sp) else sp, None if math.isnan(hd) else hd))
        return out


def _num(item: dict[str, Any], key: str, lo: float, hi: float, required: bool) -> float | None:
    v = item.get(key)
    if v is None:
        if required:
            raise ValueError(f"{key}: required")
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"{key}: must be a number")
    if not lo <= v <= hi:
        raise ValueError(f"{key}: must be between {lo:g} and {hi:g}")
    return float(v)


def _time(v: Any) -> float:
    if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    if isinstance(v, str):
        try:
            return parse_zoned(v).timestamp()
        except ValueError as e:
            raise ValueError(f"time: {e} (or epoch seconds)") from None
    raise ValueError("time: required (ISO 8601 or epoch seconds)")


class PositionService:
    """Validates fixes, keeps tracks, and answers nearest-camera questions.

    ``on_fix`` hears every valid fix (the ACL's location rule must see trucks leave the district);
    ``on_moved`` hears fixes that became a vehicle's current position inside what is tracked;
    ``on_taken`` hears the fixes taken in here (not those :meth:`heard_elsewhere`), which a cluster
    node relays to the other nodes.
    """

    def __init__(
        self,
        settings: VehicleSettings,
        store: CameraStore | None,
        home_district: str,
        inside_district: Callable[[float, float], bool],
        *,
        index: VehicleIndex | None = None,
        on_fix: FixListener | None = None,
        on_moved: FixListener | None = None,
        on_taken: FixListener | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.home_district = home_district
        self.inside_district = inside_district
        self.index: VehicleIndex = index if index is not None else MemoryVehicleIndex()
        self.on_fix = on_fix
        self.on_moved = on_moved
        self.on_taken = on_taken
        self.tracks: dict[str, Track] = {}
        self.vehicles: dict[str, tuple[str, str]] = {}  # id -> (kind, home district)
        self.vehicle_cameras: dict[str, list[tuple[str, str]]] = {}  # vehicle -> [(camera, kind)]
        self.fixed = PointIndex()
        self.fixed_kind: dict[str, str] = {}
        self._last_prune = 0.0

    async def load(self) -> None:
        """Read vehicles and camera positions from the inventory."""
        assert self.store is not None
        _, vehicles = await self.store.attributes()
        self.set_inventory(
            {v.id: (v.kind.value, v.home_district) for v in vehicles.values()}, await self.store.positions()
        )

    def set_inventory(
        self,
        vehicles: dict[str, tuple[str, str]],
        cameras: Sequence[tuple[str, str, float | None, float | None, str | None]],
    ) -> None:
        """Vehicles by id (kind, home district) and cameras as (id, kind, lat, lon, vehicle id)."""
        vehicle_cameras: dict[str, list[tuple[str, str]]] = {}
        fixed = []
        fixed_kind = {}
        for cid, kind, lat, lon, vid in cameras:
            if vid:
                vehicle_cameras.setdefault(vid, []).append((cid, kind))
            elif lat is not None and lon is not None:
                fixed.append((cid, lat, lon))
                fixed_kind[cid] = kind
        self.vehicles = dict(vehicles)
        self.vehicle_cameras = vehicle_cameras
        self.fixed_kind = fixed_kind
        self.fixed.replace(fixed)

    def foreign_truck(self, vehicle_id: str) -> bool:
        """Whether the vehicle is a truck registered outside the home district."""
        kind, home = self.vehicles.get(vehicle_id, ("", ""))
        return kind == "truck" and home != self.home_district

    def _validate(self, item: Any, now: float) -> Fix:
        if isinstance(item, ValueError):
            raise item  # the caller could not even parse it (an NDJSON line)
        if not isinstance(item, dict):
            raise ValueError("item: must be an object")
        vid = item.get("vehicle_id")
        if not isinstance(vid, str) or not vid:
            raise ValueError("vehicle_id: required")
        if vid not in self.vehicles:
            raise ValueError("vehicle_id: unknown vehicle")
        lim = self.index.max_abs_lat
        lat = _num(item, "lat", -lim, lim, True)
        lon = _num(item, "lon", -180, 180, True)
        t = _time(item.get("time"))
        if t > now + self.settings.max_future_skew_s:
            raise ValueError("time: in the future")
        speed = _num(item, "speed", 0, 1000, False)
        heading = _num(item, "heading", 0, 360, False)
        assert lat is not None and lon is not None
        return Fix(vid, lat, lon, t, speed, heading)

    async def ingest(self, items: Sequence[Any], now: float | None = None) -> dict[str, Any]:
        """Validate and apply a batch; bad items are reported one by one, good ones applied.

        An item may be a :class:`ValueError` (a line the caller could not parse): it is reported.
        """
        now = time.time() if now is None else now
        if len(items) > self.settings.max_batch:
            raise ValueError(f"body: at most {self.settings.max_batch} positions per request")
        errors: list[dict[str, Any]] = []
        fixes: list[Fix] = []
        hidden: list[bool] = []
        for i, item in enumerate(items):
            try:
                fix = self._validate(item, now)
            except ValueError as e:
                errors.append({"index": i, "error": str(e)})
                continue
            fixes.append(fix)
            # Trucks registered elsewhere are tracked only inside the district.
            hidden.append(self.foreign_truck(fix.vehicle_id) and not self.inside_district(fix.lat, fix.lon))
        current = await self.index.update(fixes, hidden) if fixes else []
        cutoff = now - self.settings.track_retention_s
        stale = outside = 0
        for fix, hide, cur in zip(fixes, hidden, current, strict=True):
            if self.on_fix is not None:
                self.on_fix(fix.vehicle_id, fix.lat, fix.lon, fix.t)  # the ACL's location rule sees every fix
            if self.on_taken is not None:
                self.on_taken(fix.vehicle_id, fix.lat, fix.lon, fix.t)
            if hide:
                outside += 1
                continue
            if fix.t >= cutoff:
                track = self.tracks.get(fix.vehicle_id)
                if track is None:
                    track = self.tracks[fix.vehicle_id] = Track(self.settings.track_max_points)
                track.add(fix)
            if not cur:
                stale += 1  # kept in the track, not current
            elif self.on_moved is not None:
                self.on_moved(fix.vehicle_id, fix.lat, fix.lon, fix.t)
        if now - self._last_prune > 60:
            self.prune(now)
        return {
            "accepted": len(fixes) - outside,
            "not_current": stale,
            "outside_district": outside,
            "rejected": len(errors),
            "errors": errors[:100],
        }

    def heard_elsewhere(self, fixes: Iterable[Fix], now: float | None = None) -> int:
        """Fixes another node took in (already validated there): the location rule hears them at
        once, and they join the tracks as they did there (foreign trucks only inside the district).
        Unknown vehicles and fixes older than the retention are skipped; returns how many joined."""
        cutoff = (time.time() if now is None else now) - self.settings.track_retention_s
        joined = 0
        for fix in fixes:
            if fix.vehicle_id not in self.vehicles or fix.t < cutoff:
                continue
            if self.on_fix is not None:
                self.on_fix(fix.vehicle_id, fix.lat, fix.lon, fix.t)
            if self.foreign_truck(fix.vehicle_id) and not self.inside_district(fix.lat, fix.lon):
                continue
            track = self.tracks.get(fix.vehicle_id)
            if track is None:
                track = self.tracks[fix.vehicle_id] = Track(self.settings.track_max_points)
            track.add(fix)
            joined += 1
        return joined

    def prune(self, now: float | None = None) -> None:
        """Drop track points older than the retention period (and empty tracks)."""
        now = time.time() if now is None else now
        self._last_prune = now
        cutoff = now - self.settings.track_retention_s
        for vid in list(self.tracks):
            track = self.tracks[vid]
            track.prune(cutoff)
            if not len(track):
                del self.tracks[vid]

    def track(
        self, vehicle_id: str, since: float | None = None, now: float | None = None
    ) -> list[tuple[float, float, float, float | None, float | None]]:
        """A vehicle's fixes within the retention period, oldest first: (t, lat, lon, speed, heading)."""
        now = time.time() if now is None else now
        cutoff = now - self.settings.track_retention_s
        track = self.tracks.get(vehicle_id)
        return [] if track is None else track.points(cutoff if since is None else max(since, cutoff))

    async def latest(self, vehicle_id: str) -> Fix | None:
        """The vehicle's current fix, if any (hidden for foreign trucks outside the district)."""
        return await self.index.get(vehicle_id)

    async def latest_many(self, vehicle_ids: Sequence[str]) -> dict[str, Fix]:
        """Current fixes of several vehicles."""
        return await self.index.get_many(vehicle_ids)

    async def nearest(
        self,
        lat: float,
        lon: float,
        *,
        kinds: Set[str] | None = None,
        max_age_s: float | None = None,
        radius_m: float | None = None,
        limit: int = 10,
        visible: Set[str] | None = None,
        now: float | None = None,
    ) -> list[NearbyCamera]:
        """Cameras by distance: fixed ones by their place, mounted ones by their vehicle's fresh fix."""
        now = time.time() if now is None else now
        max_age = self.settings.fresh_s if max_age_s is None else max_age_s
        want_fixed = kinds is None or "fixed" in kinds
        want_moving = kinds is None or bool({"bus", "truck"} & set(kinds))
        # Ask the indexes for a few candidates first and widen only when filters (kind, permission)
        # leave too few: most queries touch a handful of points.
        k = max(limit * 2, 8)
        while True:
            out: list[NearbyCamera] = []
            exhausted = True
            bound = math.inf  # beyond the k-th point of a cut-off list, that list may hide closer cameras
            if want_fixed:
                found = self.fixed.nearest(lat, lon, min(k, len(self.fixed)), radius_m)
                if len(found) >= k:
                    exhausted = False
                    bound = min(bound, found[-1][1])
                for cid, d in found:
                    if visible is None or cid in visible:
                        out.append(NearbyCamera(cid, d, self.fixed_kind.get(cid, "fixed"), None, None))
            if want_moving:
                moving = await self.index.nearest(lat, lon, k, radius_m, now - max_age)
                if len(moving) >= k:
                    exhausted = False
                    bound = min(bound, moving[-1][1])
                for fix, d in moving:
                    for cid, kind in self.vehicle_cameras.get(fix.vehicle_id, []):
                        if (kinds is None or kind in kinds) and (visible is None or cid in visible):
                            out.append(NearbyCamera(cid, d, kind, fix.vehicle_id, round(now - fix.t, 1)))
            out = [c for c in out if c.distance_m <= bound]
            if len(out) >= limit or exhausted:
                break
            k *= 4
        out.sort(key=lambda c: c.distance_m)
        return out[:limit]

    async def close(self) -> None:
        """Release the index's connections."""
        await self.index.close()
