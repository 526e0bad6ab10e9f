"""The near-duplicate check of the model card: which pairs cross folds, and the gated Dice."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_bus.datasets import LabeledImage
from edge_bus.evaluation import EvalReport, ImageResult
from models.training.near_duplicates import NearPair, copy_counts, correlations, cross_fold_pairs, gated_dice


def test_only_copies_in_different_folds_are_listed(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    scan, other = rng.integers(0, 255, (120, 160), np.uint8), rng.integers(0, 255, (120, 160), np.uint8)
    images = {"a.png": scan, "a_resaved.png": cv2.resize(cv2.resize(scan, (200, 150)), (160, 120)),
              "a_same_fold.png": scan, "b.png": other}
    for name, pixels in images.items():
        cv2.imwrite(str(tmp_path / name), pixels)
    folds = {"a.png": 0, "a_resaved.png": 2, "a_same_fold.png": 0, "b.png": 3}
    items = [LabeledImage(tmp_path / n, (), "benign", folds[n], "busi") for n in images]
    pairs = cross_fold_pairs(items, correlations(items))
    assert sorted((p.a.image.name, p.b.image.name) for p in pairs) == [("a.png", "a_resaved.png"),
                                                                       ("a_resaved.png", "a_same_fold.png")]
    assert all(p.ncc > 0.93 for p in pairs)


def test_gated_dice_counts_a_lesion_called_normal_as_no_mask() -> None:
    def result(label: str, p: float, dice: float | None) -> ImageResult:
        return ImageResult(name="x", label=label, lesion_prob=p, malignancy=0.5, predicted="benign", dice=dice,
                           iou=dice)

    report = EvalReport(model="m", backend="openvino", precision="int8", data="d", n_images=3, counts={},
                        dice=0.8, iou=None, auc=None, normal_fp_rate=None, accuracy_3class=None,
                        operating_points={}, lesion_threshold=0.9,
                        results=[result("benign", 0.95, 0.8), result("malignant", 0.5, 0.8),
                                 result("normal", 0.2, None)])
    assert gated_dice(report) == pytest.approx(0.4)  # the second lesion is called normal: no mask shown


def test_each_image_with_copies_is_counted_once_per_place(tmp_path: Path) -> None:
    """A test image with copies both in training and in fold 1 counts in each of those, once in all."""
    def item(name: str, fold: int) -> LabeledImage:
        return LabeledImage(tmp_path / f"{name}.png", (), "benign", fold, "busi")

    t, t2, v = item("t", 0), item("t2", 0), item("v", 1)
    pairs = [NearPair(t, item("a", 2), 0.99), NearPair(t, item("b", 3), 0.98), NearPair(t, v, 0.97),
             NearPair(t2, item("c", 4), 0.95), NearPair(v, item("d", 2), 0.96)]
    counts = copy_counts(pairs)
    assert counts.test == {"benign/t.png", "benign/t2.png"}
    assert counts.test_in_training == {"benign/t.png", "benign/t2.png"}
    assert counts.test_in_validation == {"benign/t.png"}
    assert counts.validation_in_training == {"benign/v.png"}
