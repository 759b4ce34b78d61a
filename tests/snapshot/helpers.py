"""Helpers shared by the snapshot tests."""

from __future__ import annotations

import asyncio

import cv2
import numpy as np

from fixtures.camera_server import FixtureCameraServer


async def settled_connections(cams: FixtureCameraServer, mount: str) -> int:
    """Sessions opened to ``mount`` so far, read after the fixture's event stream has caught up."""
    await asyncio.sleep(0.3)  # the server reports connections on its stdout, a moment after they happen
    return cams.total_connections(mount)


def jpeg_image(data: bytes) -> np.ndarray:
    """Decode a JPEG reply."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, "not a JPEG"
    return img
