"""``device ping``'s percentile is the statistic latency.json reports (numpy's linear interpolation)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from firmware_bridge.tools import percentile


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1001])
def test_percentile_matches_numpy_as_latency_json_uses(n: int) -> None:
    rng = random.Random(n)
    values = [rng.expovariate(1.0) for _ in range(n)]
    for q in (0, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-12)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 99)
