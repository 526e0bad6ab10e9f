"""Metrics shared by training, ``edge-bus eval`` and the model card (numpy only)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty."""
    p, t = pred.astype(bool), truth.astype(bool)
    denom = p.sum() + t.sum()
    return 1.0 if denom == 0 else float(2.0 * np.logical_and(p, t).sum() / denom)


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    p, t = pred.astype(bool), truth.astype(bool)
    union = np.logical_or(p, t).sum()
    return 1.0 if union == 0 else float(np.logical_and(p, t).sum() / union)


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with ties averaged); nan if one class is absent."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0 or np.isnan(s).any():  # a NaN score has no rank (argsort put it above all)
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve's corners (false-positive rate, true-positive rate), from (0, 0) to (1, 1), one per
    distinct score (``score >= threshold`` means positive; tied scores move together, so the area
    under it by the trapezoid rule is :func:`roc_auc`); empty arrays if one class is absent."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return np.array([]), np.array([])
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    tpr = np.cumsum(y)[last_of_tie] / n_pos
    fpr = np.cumsum(~y)[last_of_tie] / n_neg
    return np.r_[0.0, fpr], np.r_[0.0, tpr]


@dataclass(frozen=True)
class BinaryRates:
    threshold: float
    accuracy: float
    sensitivity: float
    specificity: float

    def to_json(self) -> dict[str, float | None]:
        """Rounded; a rate with no image to measure it on (NaN) is null: a bare NaN is not JSON."""
        return {
            "threshold": round(self.threshold, 6),
            "accuracy": round_or_none(self.accuracy, 4),
            "sensitivity": round_or_none(self.sensitivity, 4),
            "specificity": round_or_none(self.specificity, 4),
        }


def round_or_none(x: float | None, digits: int = 4) -> float | None:
    """``x`` rounded, or None for None and NaN (JSON's null)."""
    return None if x is None or math.isnan(x) else round(float(x), digits)


def rates_at(scores: np.ndarray, positive: np.ndarray, threshold: float) -> BinaryRates:
    """Accuracy, sensitivity, specificity when ``score >= threshold`` means positive."""
    y = np.asarray(positive, dtype=bool)
    called = np.asarray(scores) >= threshold
    tp, tn = int((called & y).sum()), int((~called & ~y).sum())
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return BinaryRates(
        threshold=float(threshold),
        accuracy=(tp + tn) / len(y) if len(y) else float("nan"),
        sensitivity=tp / n_pos if n_pos else float("nan"),
        specificity=tn / n_neg if n_neg else float("nan"),
    )


def _candidates(scores: np.ndarray) -> np.ndarray:
    u = np.unique(np.asarray(scores, dtype=np.float64))
    mids = (u[:-1] + u[1:]) / 2.0 if len(u) > 1 else u
    return np.concatenate([[0.0], mids, [1.0 + 1e-9]])


def choose_operating_points(scores: np.ndarray, positive: np.ndarray, target: float = 0.94) -> dict[str, BinaryRates]:
    """Thresholds for ``sensitive`` (SEN ≥ target, best SPE, then best SEN), ``balanced`` (max
    Youden J, then nearest 0.5) and ``specific`` (SPE ≥ target, best SEN, then best SPE), chosen on
    the data given (validation only). The second key settles ties in favour of the point's own goal:
    thresholds between the same two negatives give the same SPE, and of those the lowest passes the
    most positives (the highest, chosen before, sat on the SEN target's edge with a dominated SEN)."""
    rates = [rates_at(scores, positive, t) for t in _candidates(scores)]
    sens_ok = [r for r in rates if r.sensitivity >= target] or [max(rates, key=lambda r: r.sensitivity)]
    spec_ok = [r for r in rates if r.specificity >= target] or [max(rates, key=lambda r: r.specificity)]
    return {
        "sensitive": max(sens_ok, key=lambda r: (r.specificity, r.sensitivity)),
        "balanced": max(rates, key=lambda r: (r.sensitivity + r.specificity - 1.0, -abs(r.threshold - 0.5))),
        "specific": max(spec_ok, key=lambda r: (r.sensitivity, r.specificity)),
    }
