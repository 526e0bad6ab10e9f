from __future__ import annotations

import math

import numpy as np
import pytest

from edge_bus.telemetry.stats import SUMMARY_KEYS, FpsMeter, LatencyStats, StageMetrics
from edge_bus.types import StageTimes


def test_summary_matches_numpy() -> None:
    values = np.random.default_rng(3).gamma(3.0, 4.0, 1001)
    s = LatencyStats(values.tolist()).summary()
    assert tuple(s) == SUMMARY_KEYS
    assert s["count"] == 1001
    for key, q in (("p50_ms", 50), ("p90_ms", 90), ("p99_ms", 99)):
        assert s[key] == round(float(np.percentile(values, q)), 3)
    assert s["mean_ms"] == round(float(values.mean()), 3)
    assert s["max_ms"] == round(float(values.max()), 3)


def test_empty_summary_is_count_zero_and_nulls() -> None:
    s = LatencyStats().summary()
    assert s == {"count": 0, "mean_ms": None, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}


def test_non_finite_values_are_ignored() -> None:
    stats = LatencyStats([1.0, math.nan, 3.0, math.inf])
    assert stats.summary()["count"] == 2 and stats.summary()["mean_ms"] == 2.0


def test_stage_metrics_order_e2e_last_and_g2g_only_when_seen() -> None:
    m = StageMetrics(["decode", "infer"])
    m.add_times(StageTimes({"infer": 5.0, "decode": 1.0, "render": 0.5}, e2e_ms=7.0))
    m.add("end_to_end", 9.0)
    summary = m.summary()
    assert list(summary) == ["decode", "infer", "render", "end_to_end"]
    assert summary["end_to_end"]["count"] == 2 and summary["end_to_end"]["max_ms"] == 9.0
    m.add_times(StageTimes({}, e2e_ms=1.0, glass_to_glass_ms=40.0))
    assert m.summary()["glass_to_glass"]["p50_ms"] == 40.0


def test_fps_meter_overall_and_recent() -> None:
    fps = FpsMeter(window=5)
    for i in range(11):
        fps.tick(i * 0.1)  # 10 FPS
    assert fps.fps == pytest.approx(10.0) and fps.recent_fps == pytest.approx(10.0)
    for i in range(5):
        fps.tick(1.0 + (i + 1) * 0.05)  # then 20 FPS
    assert fps.recent_fps == pytest.approx(20.0)
    assert fps.frames == 16 and fps.fps == pytest.approx(15 / 1.25)
    started = FpsMeter()
    started.start(0.0)
    started.tick(0.5)
    assert started.fps == pytest.approx(2.0)


def test_typed_summary_is_what_latency_json_holds() -> None:
    stats = LatencyStats([1.0, 2.0, 3.0, 10.0])
    typed = stats.stats()
    assert typed.count == 4 and typed.max_ms == 10.0 and typed.p50_ms == 2.5
    assert typed.to_json() == stats.summary()
    assert LatencyStats().stats().p99_ms is None


def test_one_list_of_pipeline_stages_names_them_everywhere() -> None:
    """The stage names were written out in five places (pipeline, charts, bench, gates, report)."""
    from edge_bus.bench_gates import STAGE_SHARES
    from edge_bus.bench_stream import STAGES
    from edge_bus.telemetry.stats import PIPELINE_STAGES

    cpu_stages = tuple(s for s in PIPELINE_STAGES if s != "infer")
    assert STAGES == cpu_stages and tuple(STAGE_SHARES) == cpu_stages


def test_percentiles_interpolate_linearly() -> None:
    """[1, 2, 3, 4]: p90 sits at rank 0.9 × 3 = 2.7, so 3 + 0.7 = 3.7; p99 at 2.97 → 3.97."""
    s = LatencyStats([4.0, 1.0, 3.0, 2.0]).stats()
    assert (s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms, s.mean_ms) == pytest.approx((2.5, 3.7, 3.97, 4.0, 2.5))


def test_a_frame_without_end_to_end_adds_only_its_stages() -> None:
    m = StageMetrics(["decode"])
    m.add_times(StageTimes({"decode": 1.0}, e2e_ms=9.0, glass_to_glass_ms=20.0), end_to_end=False)
    summary = m.summary()
    assert summary["decode"]["count"] == 1 and summary["end_to_end"]["count"] == 0 and "glass_to_glass" not in summary
