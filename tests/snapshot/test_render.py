"""Rendering: scaling, masks (fill and blur), JPEG; mask versions."""

from __future__ import annotations

import cv2
import numpy as np

from snapshot.masks import masks_version
from snapshot.render import Mask, render_jpeg
from tests.snapshot.helpers import jpeg_image


def picture(w: int = 1280, h: int = 720) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # detail everywhere


def test_scales_keeping_aspect_and_never_upscales() -> None:
    assert jpeg_image(render_jpeg(picture(), 320)).shape == (180, 320, 3)
    assert jpeg_image(render_jpeg(picture(640, 360), 1280)).shape == (360, 640, 3)


def test_fill_and_blur_masks() -> None:
    img = picture()
    top_left = Mask(((0, 0), (0.5, 0), (0.5, 0.5), (0, 0.5)), "fill")
    bottom_right = Mask(((0.5, 0.5), (1, 0.5), (1, 1), (0.5, 1)), "blur")
    out = jpeg_image(render_jpeg(img, 320, [top_left, bottom_right], quality=95)).astype(int)
    plain = jpeg_image(render_jpeg(img, 320, [], quality=95)).astype(int)
    filled = out[2:88, 2:158]
    assert abs(filled.mean() - 40) < 4 and filled.std() < 4
    lap = cv2.CV_64F
    blurred = cv2.Laplacian(out[92:178, 162:318].astype(np.uint8), lap).var()
    sharp = cv2.Laplacian(plain[92:178, 162:318].astype(np.uint8), lap).var()
    assert blurred < sharp / 10
    assert abs(out[2:88, 162:318] - plain[2:88, 162:318]).mean() < 3  # unmasked quarter unchanged


def test_masks_version_follows_content() -> None:
    a = [{"points": [[0, 0], [1, 0], [1, 1]], "mode": "fill"}]
    b = [{"points": [[0, 0], [1, 0], [1, 1]], "mode": "blur"}]
    assert masks_version([]) == 0
    assert masks_version(a) == masks_version([dict(a[0])]) != masks_version(b)
