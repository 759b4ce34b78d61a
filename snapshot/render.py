"""Decode a keyframe, scale it, apply privacy masks, encode JPEG (blocking: run off the event loop)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import av
import cv2
import numpy as np

__all__ = ["Mask", "decode_keyframe", "render_jpeg"]


@dataclass(frozen=True, slots=True)
class Mask:
    """A privacy mask: a polygon in relative coordinates (0..1 of width and height), filled or blurred."""

    points: tuple[tuple[float, float], ...]
    mode: str = "fill"  # fill | blur


def decode_keyframe(codec: str, data: bytes) -> np.ndarray:
    """One Annex-B keyframe access unit (parameter sets included) to a BGR image."""
    ctx = av.CodecContext.create(codec, "r")
    frames: list[av.VideoFrame] = []
    # The parser holds the last access unit until it sees the next one: flush it, then the decoder.
    for pkt in [*ctx.parse(data), *ctx.parse(b"")]:
        frames.extend(ctx.decode(pkt))  # type: ignore[attr-defined]
    frames.extend(ctx.decode(None))  # type: ignore[attr-defined]
    if not frames:
        raise ValueError("keyframe did not decode")
    return frames[0].to_ndarray(format="bgr24")


def render_jpeg(image: np.ndarray, width: int, masks: Sequence[Mask] = (), quality: int = 80) -> bytes:
    """Scale to ``width`` (keeping the aspect ratio), mask, and encode."""
    h, w = image.shape[:2]
    out_w = min(width, w)
    out_h = max(1, round(h * out_w / w))
    img = cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_AREA) if out_w != w else image.copy()
    for m in masks:
        pts = np.array([[round(x * out_w), round(y * out_h)] for x, y in m.points], dtype=np.int32)
        if len(pts) < 3:
            continue
        if m.mode == "blur":
            region = np.zeros(img.shape[:2], dtype=np.uint8)
            cv2.fillPoly(region, [pts], 255)
            k = max(3, (out_w // 16) | 1)
            blurred = cv2.GaussianBlur(img, (k, k), 0)
            img[region == 255] = blurred[region == 255]
        else:
            cv2.fillPoly(img, [pts], (40, 40, 40))
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf)
