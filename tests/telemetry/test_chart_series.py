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


def _built(series: FrameSeries, max_rows: int = MAX_ROWS) -> ChartSeries:
    b = ChartSeriesBuilder(max_rows)
    for i in range(len(series)):
        b.add(int(series.frame[i]), float(series.e2e_ms[i]), {k: float(v[i]) for k, v in series.stages_ms.items()},
              series.label[i], float(series.malignancy[i]), bool(series.lesion[i]),
              None if series.glass_to_glass_ms is None or np.isnan(series.glass_to_glass_ms[i])
              else float(series.glass_to_glass_ms[i]),
              frozen=not bool(series.answered[i]),
              dropped_before=0 if series.dropped_before is None else int(series.dropped_before[i]))
    return b.build()


def test_one_row_a_frame_is_the_frame_series_itself() -> None:
    """Built frame by frame (the run) and from a FrameSeries (a test, a log read back): the same rows."""
    frames = _frames(300)
    built, direct = _built(frames), ChartSeries.from_frames(frames)
    assert built.frame_count == direct.frame_count == 300 and len(built.frames) == 300
    for a, b in ((built.first, direct.first), (built.last, direct.last), (built.dropped, direct.dropped)):
        np.testing.assert_array_equal(a, b)
    for name in ("e2e", "malignancy", "g2g"):
        x, y = getattr(built, name), getattr(direct, name)
        for field in ("total", "n", "lo", "hi"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field), err_msg=f"{name}.{field}")
    assert built.stages.keys() == direct.stages.keys() == {"infer", "render"}
    np.testing.assert_array_equal(built.stages["render"].n[:5], 0)  # before the stage was first seen
    assert {k: v.tolist() for k, v in built.classes.items()} == {k: v.tolist() for k, v in direct.classes.items()}
    assert built.frozen_count == direct.frozen_count == sum(1 for i in range(300) if i % 9 == 4)


def test_rows_merge_two_by_two_and_keep_every_frame_counted() -> None:
    """1,000 frames into 8 rows at most: the rows then hold 128 frames each (the last what is left), and
    their sums, counts, extremes, classes and drops are those of all the frames."""
    frames = _frames(1000)
    rows = _built(frames, max_rows=8)
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
    merged = render_report(replace(base, series=_built(frames, max_rows=64)))
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

