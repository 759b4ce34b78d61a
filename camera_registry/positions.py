"""Live vehicle positions: batch intake with per-item validation, latest positions in a spatial
index, track history, and "nearest camera" look-ups (moving cameras by their vehicle's fix)."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import deque
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from camera_registry.geo import PointIndex
from camera_registry.store import CameraStore

if TYPE_CHECKING:
    from gateway.settings import VehicleSettings

__all__ = ["Fix", "NearbyCamera", "PositionService"]


@dataclass(frozen=True, slots=True)
class Fix:
    """One GPS position."""

    vehicle_id: str
    lat: float
    lon: float
    t: float  # epoch seconds
    speed: float | None = None
    heading: float | None = None


@dataclass(frozen=True, slots=True)
class NearbyCamera:
    """A camera and how far it is."""

    camera_id: str
    distance_m: float
    kind: str
    vehicle_id: str | None
    position_age_s: float | None


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
            t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("time: not an ISO 8601 time or epoch seconds") from None
        if t.tzinfo is None:
            raise ValueError("time: needs a timezone (e.g. +08:00 or Z)")
        return t.timestamp()
    raise ValueError("time: required (ISO 8601 or epoch seconds)")


class PositionService:
    """Keeps the latest fix per vehicle, its recent track, and the spatial indexes."""

    def __init__(
        self,
        settings: VehicleSettings,
        store: CameraStore,
        home_district: str,
        inside_district: Callable[[float, float], bool],
        on_fix: Callable[[str, float, float, float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.home_district = home_district
        self.inside_district = inside_district
        self.on_fix = on_fix
        self.latest: dict[str, Fix] = {}
        self.tracks: dict[str, deque[Fix]] = {}
        self.vehicles: dict[str, tuple[str, str]] = {}  # id -> (kind, home district)
        self.vehicle_cameras: dict[str, list[tuple[str, str]]] = {}  # vehicle -> [(camera, kind)]
        self.fixed = PointIndex()
        self.fixed_kind: dict[str, str] = {}
        self.moving = PointIndex()

    async def load(self) -> None:
        """Read vehicles and camera positions from the inventory."""
        _, vehicles = await self.store.attributes()
        self.vehicles = {v.id: (v.kind.value, v.home_district) for v in vehicles.values()}
        cams = await self.store.positions()
        self.vehicle_cameras = {}
        fixed = []
        for cid, kind, lat, lon, vid in cams:
            if vid:
                self.vehicle_cameras.setdefault(vid, []).append((cid, kind))
            elif lat is not None and lon is not None:
                fixed.append((cid, lat, lon))
                self.fixed_kind[cid] = kind
        self.fixed.replace(fixed)

    def _foreign_truck(self, vehicle_id: str) -> bool:
        kind, home = self.vehicles.get(vehicle_id, ("", ""))
        return kind == "truck" and home != self.home_district

    def ingest(self, items: Sequence[Any], now: float | None = None) -> dict[str, Any]:
        """Validate and apply a batch; bad items are reported one by one, good ones applied."""
        now = time.time() if now is None else now
        if len(items) > self.settings.max_batch:
            raise ValueError(f"body: at most {self.settings.max_batch} positions per request")
        accepted = stale = outside = 0
        errors: list[dict[str, Any]] = []
        cutoff = now - self.settings.track_retention_s
        for i, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise ValueError("item: must be an object")
                vid = item.get("vehicle_id")
                if not isinstance(vid, str) or not vid:
                    raise ValueError("vehicle_id: required")
                if vid not in self.vehicles:
                    raise ValueError("vehicle_id: unknown vehicle")
                lat = _num(item, "lat", -90, 90, True)
                lon = _num(item, "lon", -180, 180, True)
                t = _time(item.get("time"))
                if t > now + self.settings.max_future_skew_s:
                    raise ValueError("time: in the future")
                speed = _num(item, "speed", 0, 1000, False)
                heading = _num(item, "heading", 0, 360, False)
            except ValueError as e:
                errors.append({"index": i, "error": str(e)})
                continue
            assert lat is not None and lon is not None
            fix = Fix(vid, lat, lon, t, speed, heading)
            if self.on_fix is not None:
                self.on_fix(vid, lat, lon, t)  # the ACL's location rule sees every fix
            if self._foreign_truck(vid) and not self.inside_district(lat, lon):
                # Trucks registered elsewhere are tracked only inside the district.
                self.moving.remove(vid)
                self.latest.pop(vid, None)
                outside += 1
                continue
            if t >= cutoff:
                track = self.tracks.setdefault(vid, deque())
                track.append(fix)
                while track and track[0].t < cutoff:
                    track.popleft()
            cur = self.latest.get(vid)
            if cur is not None and cur.t >= t:
                stale += 1  # kept in the track, not current
            else:
                self.latest[vid] = fix
                self.moving.set(vid, lat, lon)
            accepted += 1
        return {
            "accepted": accepted,
            "not_current": stale,
            "outside_district": outside,
            "rejected": len(errors),
            "errors": errors[:100],
        }

    def track(self, vehicle_id: str, since: float | None = None) -> list[Fix]:
        """A vehicle's recent fixes, in arrival order."""
        return [f for f in self.tracks.get(vehicle_id, ()) if since is None or f.t >= since]

    def nearest(
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
        # Ask the trees for a few candidates first and widen only when filters (freshness, kind,
        # permission) leave too few: most queries touch a handful of points.
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
                found = self.moving.nearest(lat, lon, min(k, len(self.moving)), radius_m)
                if len(found) >= k:
                    exhausted = False
                    bound = min(bound, found[-1][1])
                for vid, d in found:
                    fix = self.latest.get(vid)
                    if fix is None or now - fix.t > max_age:
                        continue
                    for cid, kind in self.vehicle_cameras.get(vid, []):
                        if (kinds is None or kind in kinds) and (visible is None or cid in visible):
                            out.append(NearbyCamera(cid, d, kind, vid, round(now - fix.t, 1)))
            out = [c for c in out if c.distance_m <= bound]
            if len(out) >= limit or exhausted:
                break
            k *= 4
        out.sort(key=lambda c: c.distance_m)
        return out[:limit]
