"""Pixel-format conversion shared by the sources, the renderer and the video sink."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["to_bgr"]


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` as uint8: itself when it is, else scaled min–max to 0–255 (a 16-bit PNG holding 10- or
    12-bit data, read as 8 bits by OpenCV, came out nearly black and was called normal)."""
    if pixels.dtype == np.uint8:
        return pixels
    return cv2.normalize(pixels, np.empty(pixels.shape, np.uint8), 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)


def to_bgr(pixels: np.ndarray, *, copy: bool = False) -> np.ndarray:
    """Gray (HxW, HxWx1), BGR or BGRA pixels → contiguous BGR uint8 HxWx3.

    Other dtypes than uint8 are scaled min–max to 0–255. ``copy``: never return ``pixels`` itself
    (the renderer draws on the result; a frame's own pixels must stay as they were)."""
    img = to_uint8(pixels)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.ndim == 3 and img.shape[2] == 3:
        if copy and img is pixels:
            return img.copy()
        return np.ascontiguousarray(img)
    raise ValueError(f"an image of shape {list(pixels.shape)} is not gray, BGR or BGRA")
