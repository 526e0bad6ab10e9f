"""Lesion-free crops: normal tissue from lesion images, from every scanner in the data.

BUSI is the only dataset here with normal images (133, from one hospital), so a "no lesion" answer
checked on them alone says nothing about another scanner. A square of a lesion image that stays
clear of the lesion, with a margin, is normal tissue from that image's scanner: training uses such
crops as negatives (``models/training``) and ``edge-bus eval`` scores them
(:func:`edge_bus.evaluation.score_lesion_free_crops`), both through :func:`lesion_free_square`;
:func:`lesion_free_crops` cuts them from an image's full-resolution scan area.
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np

from edge_bus.types import ROI

__all__ = ["CROP_MARGIN", "CROP_SIDE", "crop_rng", "lesion_free_crops", "lesion_free_square"]

CROP_SIDE = (0.35, 0.6)
"""A crop's side, as a fraction of the image's shorter side (drawn uniformly)."""

CROP_MARGIN = 8 / 256
"""The lesion is grown by this fraction of the image's shorter side before a crop must miss it (8 px
of the 256 px images training cuts its crops from)."""


def lesion_free_square(mask: np.ndarray, rng: np.random.Generator, margin_px: int, tries: int = 20) -> ROI | None:
    """A random square of ``mask``'s image that misses the lesion grown by ``margin_px``, or ``None``
    when ``tries`` draws all touch it. The side is drawn from :data:`CROP_SIDE` of the shorter side,
    then the corner uniformly (on a square image the draws are those training has always made)."""
    h, w = mask.shape[:2]
    kernel = np.ones((2 * margin_px + 1, 2 * margin_px + 1), np.uint8)
    integral = cv2.integral((cv2.dilate(mask.astype(np.uint8), kernel) > 0).astype(np.uint8))
    for _ in range(tries):
        side = int(min(h, w) * rng.uniform(*CROP_SIDE))
        if side < 1:
            continue
        x, y = (int(v) for v in rng.integers(0, [w - side + 1, h - side + 1]))
        inside = integral[y + side, x + side] - integral[y, x + side] - integral[y + side, x] + integral[y, x]
        if inside == 0:
            return ROI(x, y, side, side)
    return None


def crop_rng(name: str) -> np.random.Generator:
    """The crops' random draws for the image called ``name``: the same crops whatever order, subset
    or machine the images are scored in."""
    return np.random.default_rng(zlib.crc32(name.encode("utf-8")))


def lesion_free_crops(image: np.ndarray, mask: np.ndarray, roi: ROI, name: str, n: int) -> list[np.ndarray]:
    """Up to ``n`` lesion-free squares of ``image``'s scan area ``roi`` (at full resolution), as views;
    ``mask`` is the image's lesion mask. Drawn from ``name`` (:func:`crop_rng`), the lesion grown by
    :data:`CROP_MARGIN` of the scan area's shorter side. Fewer when the lesion leaves no room."""
    tissue = image[roi.y : roi.y + roi.h, roi.x : roi.x + roi.w]
    lesion = mask[roi.y : roi.y + roi.h, roi.x : roi.x + roi.w]
    rng = crop_rng(name)
    margin = max(1, round(CROP_MARGIN * min(tissue.shape[:2])))
    crops = []
    for _ in range(n):
        square = lesion_free_square(lesion, rng, margin)
        if square is None:
            break
        crops.append(tissue[square.y : square.y + square.h, square.x : square.x + square.w])
    return crops
