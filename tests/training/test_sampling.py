"""The training loop's epoch order: a plain permutation by default, BUSI-weighted draws on request."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="training tests need the train extra (torch)")

from models.training.data import CachedSplit  # noqa: E402
from models.training.train import epoch_order, parse_args  # noqa: E402


def _split(n_busi: int, n_bra: int) -> CachedSplit:
    n = n_busi + n_bra
    return CachedSplit(images=np.zeros((n, 4, 4), np.uint8), masks=np.zeros((n, 4, 4), np.uint8),
                       labels=np.ones(n, np.int64), sources=np.array(["busi"] * n_busi + ["busbra"] * n_bra),
                       names=np.array([str(i) for i in range(n)]))


def test_default_order_is_a_permutation() -> None:
    order = epoch_order(_split(30, 70), 1.0, np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(100))


def test_busi_weight_sets_the_expected_share_of_busi_draws() -> None:
    split = _split(467, 1499)  # the protocol's training split
    rng = np.random.default_rng(0)
    draws = np.concatenate([epoch_order(split, 2.5, rng) for _ in range(20)])
    assert len(draws) == 20 * len(split)  # an epoch keeps its length
    share = float(np.mean(split.sources[draws] == "busi"))
    expected = 2.5 * 467 / (2.5 * 467 + 1499)  # 0.438, against 0.238 unweighted
    assert share == pytest.approx(expected, abs=0.01)


def test_busi_weight_defaults_to_one() -> None:
    assert parse_args(["--out", "x"]).busi_weight == 1.0
