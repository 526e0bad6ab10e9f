"""Metrics shared by training, eval and the model card."""

from __future__ import annotations

import numpy as np
import pytest

from edge_bus.metrics import choose_operating_points, dice, iou, rates_at, roc_auc, roc_curve


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


def test_rates_count_a_score_at_the_threshold_as_positive_and_divide_by_all() -> None:
    r = rates_at(np.array([0.5, 0.2, 0.9]), np.array([True, False, False]), 0.5)
    assert (r.sensitivity, r.specificity, r.accuracy) == (1.0, 0.5, pytest.approx(2 / 3))


def test_operating_point_ties_and_the_call_nothing_threshold() -> None:
    """Hand-worked cases (target 0.5 where it matters):
    * sensitive: scores pos 0.7, 0.9 / neg 0.1 — thresholds 0.4 (SEN 1) and 0.8 (SEN 0.5) both give
      SPE 1 with SEN >= 0.5; the one with the better SEN (0.4) wins;
    * specific: pos 0.9 / neg 0.1, 0.2 with target 0.5 — thresholds 0.15 (SPE 0.5) and 0.55 (SPE 1)
      both reach the target with SEN 1; the one with the better SPE (0.55) wins;
    * balanced: pos 0.35, 0.95 / neg 0.3, 0.7 — thresholds 0.325 and 0.825 both give J 0.5; the
      one nearer 0.5 (0.325) wins;
    * specific: pos 0.2 / neg 0.9 — only 'call nothing positive' (a threshold above 1) reaches SPE 1."""
    sens = choose_operating_points(np.array([0.7, 0.9, 0.1]), np.array([True, True, False]), target=0.5)
    assert sens["sensitive"].threshold == pytest.approx(0.4) and (sens["sensitive"].sensitivity,
                                                                   sens["sensitive"].specificity) == (1.0, 1.0)
    tie = choose_operating_points(np.array([0.9, 0.1, 0.2]), np.array([True, False, False]), target=0.5)
    assert tie["specific"].threshold == pytest.approx(0.55) and tie["specific"].specificity == 1.0
    bal = choose_operating_points(np.array([0.35, 0.95, 0.3, 0.7]), np.array([True, True, False, False]))
    assert bal["balanced"].threshold == pytest.approx(0.325)
    spec = choose_operating_points(np.array([0.2, 0.9]), np.array([True, False]))["specific"]
    assert spec.threshold > 1.0 and (spec.sensitivity, spec.specificity) == (0.0, 1.0)


def test_roc_curve_runs_corner_to_corner_through_every_threshold_and_its_area_is_the_auc() -> None:
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(200), 1)  # many ties
    positive = rng.random(200) < scores
    fpr, tpr = roc_curve(scores, positive)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()
    assert len(fpr) == len(np.unique(scores)) + 1
    assert float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)) == pytest.approx(roc_auc(scores, positive))
    for t in np.unique(scores):  # each corner is rates_at one of the thresholds
        r = rates_at(scores, positive, t)
        assert any(np.isclose(fpr, 1 - r.specificity) & np.isclose(tpr, r.sensitivity))
    assert [a.size for a in roc_curve(scores, np.zeros(200, bool))] == [0, 0]


def test_rates_without_images_of_a_class_are_null_in_json() -> None:
    """eval on a folder with no malignant image wrote ``"sensitivity": NaN``, which no strict JSON parser
    reads; with no lesion image at all the accuracy read 0.0 instead of unknown."""
    import json

    benign_only = rates_at(np.array([0.2, 0.9]), np.array([False, False]), 0.5)
    doc = json.dumps(benign_only.to_json(), allow_nan=False)  # raises on a NaN
    assert json.loads(doc) == {"threshold": 0.5, "accuracy": 0.5, "sensitivity": None, "specificity": 0.5}
    nothing = rates_at(np.array([]), np.array([], dtype=bool), 0.5)
    assert json.loads(json.dumps(nothing.to_json(), allow_nan=False))["accuracy"] is None


def test_a_nan_score_makes_the_auc_unknown() -> None:
    """argsort ranked NaN above every score: AUC 1.0 for [0.1, 0.9, NaN] with the NaN positive."""
    assert np.isnan(roc_auc(np.array([0.1, 0.9, np.nan]), np.array([False, True, True])))
