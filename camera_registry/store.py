"""Async store of cameras and vehicles. Credentials go in encrypted and come out only through
:meth:`CameraStore.open_url` (for FFmpeg), never through API-facing methods."""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from camera_registry.egress import CameraNetworks
from camera_registry.models import Camera, CameraKind, CameraStatus, Vehicle
from camera_registry.schemas import CAMERA_PLAIN_FIELDS, CameraIn, CameraPatch, VehicleIn
from camera_registry.url_secrets import CameraSecrets, merge_secrets
from camera_registry.urls import parse_source_url, same_origin
from storage.db import Database, utcnow
from storage.secretbox import SecretBox

__all__ = ["CameraFilter", "CameraStore", "NotFound", "UpsertResult"]

log = logging.getLogger(__name__)


class NotFound(LookupError):
    """No such camera or vehicle."""


@dataclass(frozen=True, slots=True)
class CameraFilter:
    """Filters of the camera list."""

    area: str | None = None
    station: str | None = None
    kind: CameraKind | None = None
    status: CameraStatus | None = None
    department: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """What an upsert did: ``created``, ``updated`` or ``unchanged``."""

    outcome: str
    camera: Camera | None  # None for a camera :meth:`CameraStore.upsert_many` inserted in bulk


class CameraStore:
    """Cameras and vehicles in the project database."""

    SNAPSHOT_TTL_S = 5.0  # other processes (CLI imports) may change the inventory too

    def __init__(self, db: Database, box: SecretBox, networks: CameraNetworks | None = None) -> None:
        self.db = db
        self.box = box
        # Where camera URLs may lead (cameras.allowed_networks): checked on every write and connect.
        self.networks = networks or CameraNetworks()
        self._snap: list[Camera] | None = None
        self._snap_at = 0.0
        self._snap_gen = 0
        self._refresh: asyncio.Task[None] | None = None

    # -- reading -------------------------------------------------------------------------
    async def _snapshot(self) -> list[Camera]:
        """Every camera, ordered by id, kept in memory (the list API filters thousands per request).

        Re-read at once after this process's writes; for other processes' writes (CLI imports) it
        is re-read in the background every SNAPSHOT_TTL_S: re-reading 20,000 rows takes 0.3-0.9 s
        here, and no request should wait for it.
        """
        if self._snap is None:
            gen = self._snap_gen
            rows = await self._read_all()
            if gen == self._snap_gen:
                self._snap, self._snap_at = rows, time.monotonic()
            return rows
        if time.monotonic() - self._snap_at > self.SNAPSHOT_TTL_S and self._refresh is None:
            self._refresh = asyncio.create_task(self._refresh_snapshot())
        return self._snap

    async def _read_all(self) -> list[Camera]:
        async with self.db.session() as s:
            return list((await s.execute(select(Camera).order_by(Camera.id))).scalars())

    async def _refresh_snapshot(self) -> None:
        gen = self._snap_gen
        try:
            rows = await self._read_all()
            if gen == self._snap_gen:  # a write of ours since then: a newer read wins
                self._snap, self._snap_at = rows, time.monotonic()
        except Exception:  # e.g. the database closing at shutdown; the next request retries
            log.debug("inventory snapshot refresh failed", exc_info=True)
        finally:
            self._refresh = None

    def invalidate(self) -> None:
        """Forget the in-memory snapshot (after any write)."""
        self._snap = None
        self._snap_gen += 1

    async def search(
        self,
        f: CameraFilter = CameraFilter(),
        *,
        only_ids: Collection[str] | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[Camera], int]:
        """A page of cameras (ordered by id) and the total matching; ``only_ids`` limits to a set."""
        rows = await self._snapshot()
        text = f.text.lower() if f.text else None
        allowed = only_ids if only_ids is None or isinstance(only_ids, set | frozenset) else set(only_ids)
        out = [
            c
            for c in rows
            if (allowed is None or c.id in allowed)
            and (not f.area or c.area == f.area)
            and (not f.station or c.station == f.station)
            and (not f.kind or c.kind == f.kind)
            and (not f.status or c.status == f.status)
            and (not f.department or c.department == f.department)
            and (
                not text
                or text in c.name.lower()
                or text in c.id.lower()
                or text in c.area.lower()
                or text in c.station.lower()
            )
        ]
        return out[offset : offset + limit], len(out)

    async def get(self, camera_id: str) -> Camera:
        """One camera, or :class:`NotFound`."""
        async with self.db.session() as s:
            cam = await s.get(Camera, camera_id)
            if cam is None:
                raise NotFound(f"camera '{camera_id}' not found")
            return cam

    async def all_ids(self) -> list[str]:
        """Every camera id."""
        async with self.db.session() as s:
            return list((await s.execute(select(Camera.id).order_by(Camera.id))).scalars())

    async def attributes(
        self,
    ) -> tuple[list[tuple[str, str, str, str, list[str], str | None, str]], dict[str, Vehicle]]:
        """(id, area, kind, department, tags, vehicle_id, station) of every camera, and every vehicle by id."""
        async with self.db.session() as s:
            q = select(
                Camera.id, Camera.area, Camera.kind, Camera.department, Camera.tags, Camera.vehicle_id, Camera.station
            )
            rows = [(r[0], r[1], r[2].value, r[3], list(r[4] or []), r[5], r[6]) for r in (await s.execute(q)).all()]
            vehicles = {v.id: v for v in (await s.execute(select(Vehicle))).scalars()}
        return sorted(rows), vehicles

    async def positions(self) -> list[tuple[str, str, float | None, float | None, str | None]]:
        """(id, kind, lat, lon, vehicle_id) of every camera."""
        async with self.db.session() as s:
            q = select(Camera.id, Camera.kind, Camera.lat, Camera.lon, Camera.vehicle_id)
            return [(r[0], r[1].value, r[2], r[3], r[4]) for r in (await s.execute(q)).all()]

    async def open_url(self, camera_id: str) -> str:
        """The URL with credentials, for FFmpeg only. Never log, return or show it."""
        cam = await self.get(camera_id)
        return self._secrets(cam).open_url(cam.source_url)

    # -- writing -------------------------------------------------------------------------
    def _new_row(self, data: CameraIn) -> dict[str, object]:
        """The table row of a camera that does not exist yet: what :meth:`_apply` writes onto a new
        ``Camera``, without the ORM object (an import of thousands inserts plain rows in bulk)."""
        src = parse_source_url(data.source_url)
        self.networks.check(src.url)
        url, secrets = merge_secrets(src.url, src.credentials, CameraSecrets.loads(None), False)
        now = utcnow()
        row: dict[str, object] = {name: getattr(data, name) for name in CAMERA_PLAIN_FIELDS}
        row.update(
            id=data.id,
            source_url=url,
            credentials_enc=self.box.encrypt(secrets.dumps()) if secrets else None,
            status=CameraStatus.unknown,
            created_at=now,
            updated_at=now,
        )
        return row

    def _apply(self, cam: Camera, data: CameraIn, *, clear_credentials: bool = False) -> bool:
        """Copy ``data`` onto ``cam``; True when anything changed.

        A URL without credentials keeps the stored ones if it points at the same origin (an
        export without credentials re-imports unchanged; admins never see the password), unless
        ``clear_credentials``. A URL on another origin without credentials drops them. Credentials
        in the path or query (``?user=admin&password=x``) are kept the same way, masked in the
        stored URL (:mod:`camera_registry.url_secrets`).
        """
        src = parse_source_url(data.source_url)
        self.networks.check(src.url)
        changed = False
        for name in CAMERA_PLAIN_FIELDS:
            new = getattr(data, name)
            if getattr(cam, name) != new:
                setattr(cam, name, new)
                changed = True
        old = self._secrets(cam)
        keep = bool(old) and not clear_credentials and same_origin(cam.source_url, src.url)
        url, new = merge_secrets(src.url, src.credentials, old, keep)  # values in the path or query too
        if cam.source_url != url:
            cam.source_url = url
            changed = True
        if old != new:
            cam.credentials_enc = self.box.encrypt(new.dumps()) if new else None
            changed = True
        return changed

    def _secrets(self, cam: Camera) -> CameraSecrets:
        return CameraSecrets.loads(self.box.decrypt(cam.credentials_enc) if cam.credentials_enc else None)

    async def upsert(self, s: AsyncSession, data: CameraIn) -> UpsertResult:
        """Create or update a camera by id inside the caller's transaction."""
        self.invalidate()
        cam = await s.get(Camera, data.id)
        if cam is None:
            cam = Camera(id=data.id, status=CameraStatus.unknown, tags=[])
            self._apply(cam, data)
            s.add(cam)
            await s.flush()
            return UpsertResult("created", cam)
        return UpsertResult("updated" if self._apply(cam, data) else "unchanged", cam)

    async def upsert_many(self, s: AsyncSession, rows: Sequence[CameraIn]) -> list[UpsertResult]:
        """Upsert distinct-id cameras in the caller's transaction with one SELECT, one bulk INSERT of
        the new ones and one flush of the changed ones.

        (A ``get`` per row costs a query each and, through autoflush, an INSERT each: 20k rows
        took ~14 s that way. New cameras go in as plain rows: building and flushing an ORM object
        each was half of a district import's time.)
        """
        self.invalidate()
        ids = [r.id for r in rows]
        existing = {c.id: c for c in (await s.execute(select(Camera).where(Camera.id.in_(ids)))).scalars()}
        out = []
        new_rows = []
        for data in rows:
            cam = existing.get(data.id)
            if cam is None:
                new_rows.append(self._new_row(data))
                out.append(UpsertResult("created", None))
            else:
                out.append(UpsertResult("updated" if self._apply(cam, data) else "unchanged", cam))
        await s.flush()
        if new_rows:
            await s.execute(insert(Camera), new_rows)
        return out

    async def create(self, data: CameraIn) -> Camera:
        """Create a camera; :class:`ValueError` when the id exists."""
        async with self.db.session() as s:
            if await s.get(Camera, data.id) is not None:
                raise ValueError(f"id: camera '{data.id}' already exists")
            await self._check_vehicle(s, data.vehicle_id)
            cam = (await self.upsert(s, data)).camera
            assert cam is not None  # upsert always returns its object
            return cam

    async def update(self, camera_id: str, patch: CameraPatch) -> Camera:
        """Apply a partial update; the merged record is validated as a whole."""
        self.invalidate()
        async with self.db.session() as s:
            cam = await s.get(Camera, camera_id)
            if cam is None:
                raise NotFound(f"camera '{camera_id}' not found")
            current = {n: getattr(cam, n) for n in CAMERA_PLAIN_FIELDS}
            current["source_url"] = cam.source_url  # stored credentials: kept by _apply (same origin)
            given = patch.model_dump(exclude_unset=True)
            clear = bool(given.pop("clear_credentials", False))
            merged = CameraIn.model_validate({**current, **given, "id": camera_id})
            await self._check_vehicle(s, merged.vehicle_id)
            self._apply(cam, merged, clear_credentials=clear)
            return cam

    async def delete(self, camera_id: str) -> None:
        """Delete a camera."""
        self.invalidate()
        async with self.db.session() as s:
            cam = await s.get(Camera, camera_id)
            if cam is None:
                raise NotFound(f"camera '{camera_id}' not found")
            await s.delete(cam)

    async def set_status(
        self,
        camera_id: str,
        status: CameraStatus,
        *,
        reason: str | None = None,
        codec: str | None = None,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        seen: dt.datetime | None = None,
    ) -> None:
        """Record a probe or live-session result."""
        async with self.db.session() as s:
            cam = await s.get(Camera, camera_id)
            if cam is None:
                return
            cam.status = status
            cam.status_reason = reason[:256] if reason else None
            if status is CameraStatus.online:
                cam.last_seen = seen or utcnow()
                cam.codec, cam.width, cam.height, cam.fps = codec, width, height, fps
        # Patch the in-memory copy instead of re-reading every camera (probes report constantly).
        self._snap_gen += 1  # a re-read already under way would bring the old status back
        snap = self._snap
        i = bisect.bisect_left(snap, camera_id, key=lambda c: c.id) if snap is not None else -1
        if snap is not None and i < len(snap) and snap[i].id == camera_id:
            for name in ("status", "status_reason", "last_seen", "codec", "width", "height", "fps"):
                setattr(snap[i], name, getattr(cam, name))

    @staticmethod
    async def _check_vehicle(s: AsyncSession, vehicle_id: str | None) -> None:
        if vehicle_id and await s.get(Vehicle, vehicle_id) is None:
            raise ValueError(f"vehicle_id: vehicle '{vehicle_id}' not found")

    # -- vehicles ------------------------------------------------------------------------
    async def upsert_vehicle(self, s: AsyncSession, data: VehicleIn) -> str:
        """Create or update a vehicle inside the caller's transaction; returns the outcome."""
        v = await s.get(Vehicle, data.id)
        fields = data.model_dump()
        if v is None:
            s.add(Vehicle(**fields))
            await s.flush()
            return "created"
        changed = False
        for k, val in fields.items():
            if getattr(v, k) != val:
                setattr(v, k, val)
                changed = True
        return "updated" if changed else "unchanged"

    async def upsert_vehicles(self, s: AsyncSession, rows: Sequence[VehicleIn]) -> list[str]:
        """Upsert distinct-id vehicles in the caller's transaction with one SELECT, one bulk INSERT
        of the new ones and one flush of the changed ones (a ``get`` and a flush per row cost ~10 ms
        each: a district's thousand vehicles took seconds)."""
        ids = [r.id for r in rows]
        existing = {v.id: v for v in (await s.execute(select(Vehicle).where(Vehicle.id.in_(ids)))).scalars()}
        out = []
        new_rows = []
        for data in rows:
            fields = data.model_dump()
            v = existing.get(data.id)
            if v is None:
                new_rows.append(fields)
                out.append("created")
                continue
            changed = False
            for k, val in fields.items():
                if getattr(v, k) != val:
                    setattr(v, k, val)
                    changed = True
            out.append("updated" if changed else "unchanged")
        await s.flush()
        if new_rows:
            await s.execute(insert(Vehicle), new_rows)
        return out

    async def vehicles(self, ids: Sequence[str] | None = None) -> list[Vehicle]:
        """Vehicles (all, or the given ids)."""
        async with self.db.session() as s:
            q = select(Vehicle).order_by(Vehicle.id)
            if ids is not None:
                q = q.where(Vehicle.id.in_(list(ids)))
            return list((await s.execute(q)).scalars())
