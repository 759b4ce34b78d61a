"""GB/T 28181 devices and channels in the camera registry (the server's :class:`DeviceDirectory`).

A channel is a camera whose source is ``gb28181://<device id>/<channel id>`` and whose id is the
channel id; it carries the tags ``gb28181`` and ``gb-device:<device id>`` (and ``civil:<code>``), so
groups, policies, the wall and the map treat it as any camera. A later catalog updates the name
and source of a channel's camera and never its placement (area, department, position), which are
an admin's. A device is *accepted* when any camera names it or an admin accepted it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import select

from camera_registry.models import Camera, CameraKind, CameraStatus
from camera_registry.schemas import CameraIn
from camera_registry.store import CameraStore
from gb28181.manscdp import CatalogItem

__all__ = ["CameraDirectory", "is_channel"]

log = logging.getLogger(__name__)


def is_channel(item: CatalogItem) -> bool:
    """Whether a catalog item is a video source: a 20-digit id whose type code (digits 11-13) is a
    device or channel (111-199), not a business group (215), virtual organisation (216) or platform."""
    code = int(item.device_id[10:13])
    return 111 <= code <= 199


class CameraDirectory:
    """Devices' channels as registry cameras; ``changed`` is awaited after every change (the
    gateway re-reads the inventory into the policy then)."""

    def __init__(self, store: CameraStore, changed: Callable[[], Awaitable[None]]) -> None:
        self.store = store
        self._changed = changed
        self._accepted: dict[str, tuple[str, str]] = {}  # device -> (area, department) for its cameras

    def _prefix(self, device_id: str) -> str:
        return f"gb28181://{device_id}/"

    async def _cameras(self, device_id: str) -> list[Camera]:
        async with self.store.db.session() as s:
            q = select(Camera).where(Camera.source_url.startswith(self._prefix(device_id), autoescape=True))
            return list((await s.execute(q)).scalars())

    async def accepted(self, device_id: str) -> bool:
        """Accepted by an admin, or has cameras."""
        return device_id in self._accepted or bool(await self._cameras(device_id))

    def accept(self, device_id: str, area: str = "", department: str = "") -> None:
        """An admin accepts a device: its next REGISTER succeeds and its catalog becomes cameras
        placed in ``area`` and ``department``."""
        self._accepted[device_id] = (area, department)

    async def catalog(self, device_id: str, items: list[CatalogItem]) -> None:
        """Create or update the cameras of a device's channels."""
        channels = [it for it in items if is_channel(it)]
        if not channels:
            return
        area, department = self._accepted.get(device_id, ("", ""))
        async with self.store.db.session() as s:
            ids = [c.device_id for c in channels]
            existing = {c.id: c for c in (await s.execute(select(Camera).where(Camera.id.in_(ids)))).scalars()}
            rows = []
            for it in channels:
                old = existing.get(it.device_id)
                tags = {"gb28181", f"gb-device:{device_id}"}
                if it.civil_code.isdigit():
                    tags.add(f"civil:{it.civil_code}")
                if it.manufacturer:
                    tags.add(f"vendor:{it.manufacturer[:50]}")
                rows.append(
                    CameraIn(
                        id=it.device_id,
                        name=it.name,
                        kind=CameraKind.fixed,
                        source_url=f"gb28181://{device_id}/{it.device_id}",
                        area=old.area if old else area,
                        department=old.department if old else department,
                        lat=old.lat if old else None,
                        lon=old.lon if old else None,
                        tags=sorted(tags | set(old.tags or [])) if old else sorted(tags),
                    )
                )
            results = await self.store.upsert_many(s, rows)
        made = sum(r.outcome == "created" for r in results)
        log.info("GB/T 28181 device %s: catalog of %d channels (%d new cameras)", device_id, len(rows), made)
        for it in channels:
            status = CameraStatus.online if it.status in ("ON", "ONLINE", "OK") else CameraStatus.offline
            await self.store.set_status(
                it.device_id, status, reason=None if status is CameraStatus.online else "channel reported off"
            )
        await self._changed()

    async def device_state(self, device_id: str, online: bool, reason: str) -> None:
        """The device's channels follow it online or offline."""
        for cam in await self._cameras(device_id):
            if online:
                await self.store.set_status(cam.id, CameraStatus.online, reason=None)
            else:
                await self.store.set_status(cam.id, CameraStatus.offline, reason=f"GB/T 28181 device: {reason}")
