"""Photos of a case (the reporter's, the handler's on site): size-limited, checked to be JPEG or PNG
by their bytes (not by what the client says), written atomically under the data dir beside the
other media (``<data_dir>/cases/<case id>/<sha256 prefix>.<ext>``) and listed on the case."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from pathlib import Path
from typing import Any

__all__ = ["PhotoError", "PhotoStore"]

MAGIC = {b"\xff\xd8\xff": ("jpg", "image/jpeg"), b"\x89PNG\r\n\x1a\n": ("png", "image/png")}
SAFE_ID = re.compile(r"^[A-Za-z0-9-]{1,40}$")


class PhotoError(ValueError):
    """A photo that is refused (message names the field)."""


def _kind(data: bytes) -> tuple[str, str]:
    for magic, kind in MAGIC.items():
        if data.startswith(magic):
            return kind
    raise PhotoError("body: a JPEG or PNG image")


class PhotoStore:
    """Case photos on disk."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def _dir(self, incident_id: str) -> Path:
        if not SAFE_ID.match(incident_id):  # ids are ours, but never let one name a path
            raise PhotoError("incident_id: not a case id")
        return self.root / incident_id

    async def save(self, incident_id: str, data: bytes) -> dict[str, Any]:
        """Store a photo of a case (named by its content: the same photo twice is one file); its
        description for the case's attachment list."""
        if not data:
            raise PhotoError("body: an image is required")
        if len(data) > self.max_bytes:
            raise PhotoError(f"body: at most {self.max_bytes} bytes")
        ext, mime = _kind(data)
        digest = hashlib.sha256(data).hexdigest()
        path = self._dir(incident_id) / f"{digest[:32]}.{ext}"

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".part")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(path)  # readers never see half a photo

        await asyncio.to_thread(write)
        return {"type": mime, "size": len(data), "sha256": digest, "file": path.name}

    async def read(self, incident_id: str, meta: dict[str, Any]) -> bytes:
        """The bytes of a stored photo."""
        return await asyncio.to_thread((self._dir(incident_id) / str(meta["file"])).read_bytes)
