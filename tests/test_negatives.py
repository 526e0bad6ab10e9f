"""Lesion-free crops (:mod:`edge_bus.negatives`): squares of a lesion image that miss the lesion."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_bus.negatives import CROP_SIDE, crop_rng, lesion_free_square


def _disk(h: int, w: int, centre: tuple[int, int], radius: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, centre, radius, 1, -1)
    return mask


@pytest.mark.parametrize("shape", [(200, 200), (150, 300), (300, 120)])
def test_a_square_misses_the_lesion_grown_by_the_margin_and_lies_inside_the_image(shape: tuple[int, int]) -> None:
    h, w = shape
    mask = _disk(h, w, (w // 4, h // 4), min(h, w) // 10)
    grown = cv2.dilate(mask, np.ones((2 * 6 + 1, 2 * 6 + 1), np.uint8))
    rng = np.random.default_rng(0)
    found = 0
    for _ in range(200):
        sq = lesion_free_square(mask, rng, margin_px=6)
        if sq is None:
            continue
        found += 1
        assert sq.w == sq.h and sq.x + sq.w <= w and sq.y + sq.h <= h
        assert CROP_SIDE[0] * min(h, w) - 1 <= sq.w <= CROP_SIDE[1] * min(h, w)
        assert not grown[sq.y : sq.y + sq.h, sq.x : sq.x + sq.w].any()
    assert found > 100  # a small lesion off the centre leaves room in most draws


def test_a_square_may_touch_the_lesion_just_beyond_the_margin() -> None:
    """A lesion in the top-left corner: a square drawn at x = margin + 1 is allowed, at x = margin not."""
    mask = np.zeros((100, 100), np.uint8)
    mask[:, :10] = 1  # a band down the left edge, 10 px wide
    rng = np.random.default_rng(1)
    xs = [sq.x for sq in (lesion_free_square(mask, rng, margin_px=5) for _ in range(300)) if sq is not None]
    assert xs and min(xs) >= 15


def test_none_when_the_lesion_leaves_no_room() -> None:
    assert lesion_free_square(np.ones((64, 64), np.uint8), np.random.default_rng(0), margin_px=2) is None


def test_the_draws_follow_the_image_name_only() -> None:
    mask = _disk(120, 160, (30, 30), 12)
    first = [lesion_free_square(mask, crop_rng("benign (3).png"), 4) for _ in range(3)]
    again = [lesion_free_square(mask, crop_rng("benign (3).png"), 4) for _ in range(3)]
    other = lesion_free_square(mask, crop_rng("benign (4).png"), 4)
    assert first == again and first[0] is not None and other != first[0]
