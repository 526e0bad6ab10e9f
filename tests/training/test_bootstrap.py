"""Bootstrap intervals of the test metrics: class counts kept per resample, paired FP32 − INT8 gaps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge_bus.evaluation import ImageResult
from edge_bus.zoo import parse_manifest
from models.training.bootstrap import bootstrap, resample_indices

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "emt_net"


def _results(seed: int, n_b: int = 30, n_m: int = 20, n_n: int = 10, noise: float = 0.0) -> list[ImageResult]:
    rng = np.random.default_rng(seed)
    out = []
    for i, label in enumerate(["benign"] * n_b + ["malignant"] * n_m + ["normal"] * n_n):
        mal = float(np.clip((0.7 if label == "malignant" else 0.3) + rng.normal(0, 0.2 + noise), 0, 1))
        lesion = label != "normal"
        out.append(ImageResult(name=f"img{i}", label=label, lesion_prob=0.99 if lesion else float(rng.uniform(0, 1)),
                               malignancy=mal, predicted=label, dice=float(rng.uniform(0.5, 0.9)) if lesion else None,
                               iou=None))
    return out


def test_resamples_keep_the_class_counts() -> None:
    labels = ["benign"] * 5 + ["malignant"] * 3 + ["normal"] * 2
    idx = resample_indices(labels, reps=50, seed=1)
    assert idx.shape == (50, 10)
    for row in idx:
        drawn = [labels[i] for i in row]
        assert (drawn.count("benign"), drawn.count("malignant"), drawn.count("normal")) == (5, 3, 2)
    assert len({tuple(r) for r in idx}) > 1  # they differ


def test_intervals_bracket_the_value_and_identical_models_have_a_zero_gap() -> None:
    manifest = parse_manifest(json.loads((SHIPPED / "manifest.json").read_text()), SHIPPED)
    same = _results(0)
    report = bootstrap({"fp32": same, "int8": same}, manifest, reps=300)
    for prec in ("fp32", "int8"):
        for name, m in report[prec].items():  # type: ignore[attr-defined]
            assert m["low"] <= m["value"] <= m["high"], (prec, name, m)
    gap = report["fp32_minus_int8"]
    assert gap == {"dice": {"value": 0.0, "low": 0.0, "high": 0.0}, "auc": {"value": 0.0, "low": 0.0, "high": 0.0}}
    other = bootstrap({"fp32": same, "int8": _results(0, noise=0.3)}, manifest, reps=300)
    auc_gap = other["fp32_minus_int8"]["auc"]  # type: ignore[index]
    assert auc_gap["high"] > auc_gap["low"]  # a noisier INT8: the paired gap has a spread
    assert report["counts"] == {"normal": 10, "benign": 30, "malignant": 20}
