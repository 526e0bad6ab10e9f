"""Metrics shared by training, eval and the model card."""

from __future__ import annotations

import numpy as np
import pytest

from edge_bus.metrics import choose_operating_points, dice, iou, rates_at, roc_auc


def test_dice_and_iou() -> None:
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:5] = True
    b[:, :5] = True
    assert dice(a, b) == pytest.approx(2 * 25 / 100)
    assert iou(a, b) == pytest.approx(25 / 75)
    assert dice(a, a) == 1.0 and dice(np.zeros_like(a), np.zeros_like(a)) == 1.0


def test_auc_against_brute_force_with_ties() -> None:
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, 200).astype(float)
    y = rng.random(200) > 0.6
    pos, neg = scores[y], scores[~y]
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert roc_auc(scores, y) == pytest.approx(brute)
    assert np.isnan(roc_auc(scores, np.zeros(200, bool)))


def test_rates_and_operating_points() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(400) > 0.7
    scores = np.clip(rng.normal(0.35 + 0.3 * y, 0.15), 0, 1)
    r = rates_at(scores, y, 0.5)
    assert r.sensitivity == pytest.approx(np.mean(scores[y] >= 0.5))
    assert r.specificity == pytest.approx(np.mean(scores[~y] < 0.5))
    ops = choose_operating_points(scores, y, target=0.94)
    assert ops["sensitive"].sensitivity >= 0.94
    assert ops["specific"].specificity >= 0.94
    j = ops["balanced"].sensitivity + ops["balanced"].specificity
    assert j >= max(o.sensitivity + o.specificity for o in ops.values()) - 1e-12
    assert ops["sensitive"].threshold <= ops["balanced"].threshold <= ops["specific"].threshold


def test_eval_limit_spreads_over_every_class() -> None:
    """BUSI fold 0 lists 27 normal, 88 benign, 42 malignant images in that order: --limit 80 picked
    none of the malignant ones (a stride of 1, then the first 80)."""
    from collections import Counter

    from edge_bus.evaluation import spread

    items = ["normal"] * 27 + ["benign"] * 88 + ["malignant"] * 42
    for n, want in ((80, {"normal": 14, "benign": 44, "malignant": 22}), (40, {"normal": 7, "benign": 22,
                                                                               "malignant": 11})):
        assert Counter(spread(items, n)) == want
    assert spread(items, 500) == items and spread([], 5) == []
