"""ChartSeries: what the report draws over time, in memory that stops growing (rows merge two by two)."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from edge_bus.sinks import charts
from edge_bus.sinks.report import ReportData, render_report
from edge_bus.telemetry.chart_series import FROZEN_CLASS, MAX_ROWS, ChartSeries, ChartSeriesBuilder
from edge_bus.telemetry.series import FrameSeries, SeriesBuilder
from edge_bus.telemetry.stats import EXACT_LATENCIES, LatencyStats


def _frames(n: int, seed: int = 0) -> FrameSeries:
    """``n`` frames: varied times, a stage that starts at frame 5, every 9th frame frozen, every 50th after a
    drop, a glass-to-glass time on even frames, lesions on two frames in three."""
    rng = np.random.default_rng(seed)
    b = SeriesBuilder()
    for i in range(n):
        stages = {"infer": float(rng.gamma(3, 1))} | ({"render": float(rng.gamma(2, 0.3))} if i >= 5 else {})
        lesion = i % 3 != 0
        b.add_values(3 * i, float(5 + rng.gamma(2, 2)), stages, ("malignant" if i % 7 == 0 else "benign") if lesion
                     else "normal", float(rng.random()), lesion, 40.0 + i % 5 if i % 2 == 0 else None,
                     frozen=i % 9 == 4, dropped_before=2 if i % 50 == 49 else 0)
    return b.build()


def test_one_row_a_frame_holds_each_frames_numbers() -> None:
    """Up to MAX_ROWS frames, each row is one frame: its times (none for a frozen frame), its malignancy (a
    lesion frame's only), its class (frozen ones as FROZEN_CLASS), its drops; a stage first seen at frame 5
    has no value before."""
    frames = _frames(300)
    rows = ChartSeries.from_frames(frames)
    answered = frames.answered
    assert rows.frame_count == len(rows.frames) == 300 and rows.stages.keys() == {"infer", "render"}
    np.testing.assert_array_equal(rows.first, frames.frame)
    np.testing.assert_array_equal(rows.e2e.mean(), np.where(answered, frames.e2e_ms, np.nan))
    np.testing.assert_array_equal(rows.e2e.lo, np.where(answered, frames.e2e_ms, np.inf))
    np.testing.assert_array_equal(rows.malignancy.mean(), np.where(answered & frames.lesion, frames.malignancy,
                                                                   np.nan))
    np.testing.assert_array_equal(rows.stages["render"].n[:5], 0)
    assert rows.g2g is not None and rows.g2g.n.sum() == sum(1 for i in range(300) if i % 2 == 0 and i % 9 != 4)
    assert rows.frozen_count == (~answered).sum() and rows.classes[FROZEN_CLASS][4] == 1
    assert rows.dropped is not None and rows.dropped.tolist() == frames.dropped_before.tolist()  # type: ignore[union-attr]
    assert rows.e2e_distribution.stats().count == answered.sum()


def test_rows_merge_two_by_two_and_keep_every_frame_counted() -> None:
    """1,000 frames into 8 rows at most: the rows then hold 128 frames each (the last what is left), and
    their sums, counts, extremes, classes and drops are those of all the frames."""
    frames = _frames(1000)
    rows = ChartSeries.from_frames(frames, max_rows=8)
    assert len(rows.frames) <= 8 and rows.frame_count == 1000 and rows.frames[0] == 128
    answered = frames.answered
    e2e = frames.e2e_ms[answered]
    assert rows.e2e.n.sum() == answered.sum() and rows.e2e.total.sum() == pytest.approx(e2e.sum())
    assert (rows.e2e.lo.min(), rows.e2e.hi.max()) == (e2e.min(), e2e.max())
    mal = frames.malignancy[answered & frames.lesion]
    assert rows.malignancy.n.sum() == len(mal) and rows.malignancy.total.sum() == pytest.approx(mal.sum())
    assert (rows.first[0], rows.last[-1]) == (0, 2997)
    assert rows.classes[FROZEN_CLASS].sum() == (~answered).sum()
    assert sum(int(v.sum()) for v in rows.classes.values()) == 1000
    assert rows.dropped is not None and rows.dropped.sum() == frames.dropped_before.sum()  # type: ignore[union-attr]
    assert rows.e2e_distribution.stats().count == answered.sum()


def test_merged_rows_draw_the_same_charts_as_the_frames_where_buckets_meet_rows() -> None:
    """1,024 frames in 64 rows of 16 drawn in 64 buckets give the same SVG as the 1,024 frames drawn in
    64 buckets of 16: the merged rows lose nothing the charts show."""
    frames = _frames(1024, seed=4)
    base = ReportData(title="t", summary={}, latency={}, hardware={}, max_points=64, malignancy_threshold=0.5)
    exact = render_report(replace(base, series=ChartSeries.from_frames(frames)))
    merged = render_report(replace(base, series=ChartSeries.from_frames(frames, max_rows=64)))
    svgs = [re.findall(r"<svg.*?</svg>", html, re.DOTALL) for html in (exact, merged)]
    assert len(svgs[0]) == 3 and svgs[0] == svgs[1]


def test_a_run_of_any_length_holds_max_rows() -> None:
    """Four times MAX_ROWS frames: still at most MAX_ROWS rows (each of 4 frames), all frames counted."""
    b = ChartSeriesBuilder()
    for i in range(4 * MAX_ROWS):
        b.add(i, 5.0, {"infer": 3.0}, "benign", 0.2, True)
    assert len(b) <= MAX_ROWS and b.stride == 4 and b.build().frame_count == 4 * MAX_ROWS


def test_latency_percentiles_past_the_exact_values_are_within_half_a_percent() -> None:
    """Past EXACT_LATENCIES values the histogram takes over: count, mean and max exact, percentiles within
    0.5% of numpy's; the values themselves are no longer kept (memory stays about 1 MiB a stage)."""
    v = np.random.default_rng(1).gamma(3, 1.5, EXACT_LATENCIES + 5000) + 2.0
    stats = LatencyStats(v)
    assert not stats.exact and len(stats) == len(v)
    s = stats.stats()
    assert (s.count, s.mean_ms, s.max_ms) == (len(v), round(float(v.mean()), 3), round(float(v.max()), 3))
    got = stats.percentiles([0, 50, 90, 99, 99.9, 100])
    np.testing.assert_allclose(got, np.percentile(v, [0, 50, 90, 99, 99.9, 100]), rtol=0.005)
    values, counts = stats.distribution()
    assert counts.sum() == len(v) and len(values) < 3000
    assert "<svg" in charts.latency_histogram(stats)
    # the open-ended bins read as the values' own min and max: zeros stay 0, not 1 µs; 10^6..10^9 ms hold
    zeros = LatencyStats(np.zeros(EXACT_LATENCIES + 1))
    assert zeros.percentiles([0, 50, 100]) == [0.0, 0.0, 0.0]
    huge = np.random.default_rng(2).uniform(1e6, 1e9, EXACT_LATENCIES + 1)
    np.testing.assert_allclose(LatencyStats(huge).percentiles([0, 50, 99, 100]),
                               np.percentile(huge, [0, 50, 99, 100]), rtol=0.005)

