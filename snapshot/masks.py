"""Privacy masks per camera: stored in ``camera_masks``, read through a short-lived cache."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from snapshot.models import CameraMask
from snapshot.render import Mask
from storage.db import Database

__all__ = ["MaskSet", "MaskStore", "masks_version"]


@dataclass(frozen=True, slots=True)
class MaskSet:
    """A camera's masks and a version that changes with their content (0 = no masks)."""

    version: int
    masks: tuple[Mask, ...]


def masks_version(masks: list[dict[str, Any]]) -> int:
    """A content hash, so every gateway node computes the same version (thumbnails shared via Redis)."""
    if not masks:
        return 0
    raw = json.dumps(masks, sort_keys=True, separators=(",", ":")).encode()
    return int.from_bytes(hashlib.sha256(raw).digest()[:6], "big") or 1


_NONE = MaskSet(0, ())


def _to_set(masks: list[dict[str, Any]]) -> MaskSet:
    items = tuple(Mask(tuple((float(x), float(y)) for x, y in m["points"]), m.get("mode", "fill")) for m in masks)
    return MaskSet(masks_version(masks), items)


class MaskStore:
    """Reads and replaces masks. Few cameras have masks, so the whole table is read at once and kept
    for ``ttl_s``: a 1,000-camera wall costs one query per ``ttl_s``, not one per camera. A change made
    on this node applies at once; one made on another node applies here within ``ttl_s``.
    """

    def __init__(self, db: Database, ttl_s: float = 5.0) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self._all: dict[str, MaskSet] = {}
        self._expires = 0.0
        self._writes = 0
        self._loading: asyncio.Future[None] | None = None

    async def for_camera(self, camera_id: str) -> MaskSet:
        """The masks to draw on this camera's thumbnails."""
        if time.monotonic() >= self._expires:
            if self._loading is None:  # one query for every caller that finds the copy expired
                self._loading = asyncio.ensure_future(self._read_all())
                self._loading.add_done_callback(lambda _f: setattr(self, "_loading", None))
            await asyncio.shield(self._loading)
        return self._all.get(camera_id, _NONE)

    async def _read_all(self) -> None:
        writes = self._writes
        async with self.db.session() as s:
            rows = (await s.execute(select(CameraMask.camera_id, CameraMask.masks))).all()
        if self._writes == writes:  # else a change landed meanwhile: keep it, the next caller reloads
            self._all = {cid: _to_set(list(masks)) for cid, masks in rows if masks}
            self._expires = time.monotonic() + self.ttl_s

    async def get(self, camera_id: str) -> list[dict[str, Any]]:
        """A camera's masks as stored (``[{"points": [[x, y], ...], "mode": ...}]``)."""
        async with self.db.session() as s:
            row = await s.get(CameraMask, camera_id)
            return list(row.masks) if row else []

    async def set(self, camera_id: str, masks: list[dict[str, Any]], author: str) -> MaskSet:
        """Replace a camera's masks (an empty list removes them)."""
        async with self.db.session() as s:
            row = await s.get(CameraMask, camera_id)
            if row is None:
                s.add(CameraMask(camera_id=camera_id, masks=masks, updated_by=author))
            else:
                row.masks = masks
                row.updated_by = author
        entry = _to_set(masks)
        self._writes += 1
        self._all = {**self._all, camera_id: entry}
        return entry
