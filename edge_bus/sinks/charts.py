"""The report's charts as inline SVG: latency histogram and timeline, class timeline, stage bars.

The timelines draw a :class:`~edge_bus.telemetry.chart_series.ChartSeries` (the run in at most 16,384
rows) in at most ``max_points`` buckets (mean line with a min–max band), so a 100k-frame report stays
small; the histogram counts every value (:class:`~edge_bus.telemetry.stats.LatencyStats`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

from edge_bus.sinks.svg import (
    INK,
    MUTED,
    Plot,
    area_path,
    fmt_num,
    legend,
    line_path,
    nice_step,
    nice_ticks,
    svg_document,
    text,
)
from edge_bus.telemetry.chart_series import FROZEN_CLASS, ChartSeries, Column
from edge_bus.telemetry.stats import PIPELINE_STAGES, LatencyStats

__all__ = [
    "CLASS_COLORS",
    "FROZEN_CLASS",
    "OTHER_COLOR",
    "STAGE_COLORS",
    "Buckets",
    "bucket_stats",
    "class_timeline",
    "latency_histogram",
    "latency_timeline",
    "make_buckets",
    "color_for_stage",
    "stage_bars",
    "stage_color",
]

CLASS_COLORS = {"normal": "#2e9e5e", "benign": "#e6a528", "malignant": "#d64545"}
OTHER_COLOR = "#9aa0a6"
#: the classes' colours for text on white: the amber of the bands read 2.4:1 there (about 5:1 now)
CLASS_TEXT_COLORS = {"normal": "#1e7a45", "benign": "#8a5a00", "malignant": "#b3261e"}
MAX_SHOWN_EPISODES = 40
"""Lesion episodes bracketed on the class timeline (none past it) and listed in the report's table: a
100k-frame --loop run had 1,667, their brackets 0.56 px apart and their numbers one smear (577 KB of SVG)."""
STAGE_COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#bab0ac")
E2E_COLOR = "#1f2933"
G2G_COLOR = "#c2185b"
DROP_COLOR = "#d32f2f"
SUMMARY_STAGES = ("end_to_end", "glass_to_glass")


#: every chart gives a pipeline stage (:data:`PIPELINE_STAGES`) the same colour, whichever stages it shows


def stage_color(i: int) -> str:
    return STAGE_COLORS[i % len(STAGE_COLORS)]


def color_for_stage(name: str, i: int) -> str:
    """A pipeline stage's own colour; any other name the ``i``-th colour after theirs."""
    if name in PIPELINE_STAGES:
        return stage_color(PIPELINE_STAGES.index(name))
    return stage_color(len(PIPELINE_STAGES) + i)


@dataclass(frozen=True, eq=False)
class Buckets:
    """Consecutive groups of a :class:`ChartSeries`' rows: ``starts`` (first row of each) and the frame span
    they cover; ``downsampled``: some bucket holds more than one frame."""

    starts: np.ndarray
    x: np.ndarray  # frame index at the bucket centre
    x_first: np.ndarray
    x_last: np.ndarray
    downsampled: bool


def make_buckets(series: ChartSeries, max_points: int) -> Buckets:
    n = len(series.frames)
    count = min(n, max(1, max_points))
    starts = np.unique(np.linspace(0, n, count, endpoint=False).astype(np.int64))
    ends = np.append(starts[1:], n) - 1
    first, last = series.first[starts].astype(np.float64), series.last[ends].astype(np.float64)
    return Buckets(starts, (first + last) / 2.0, first, last, downsampled=len(starts) < series.frame_count)


def bucket_stats(column: Column, b: Buckets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bucket (mean, min, max) of a column's frames; NaN where a bucket has none."""
    counts = np.add.reduceat(column.n, b.starts)
    sums = np.add.reduceat(column.total, b.starts)
    lo = np.minimum.reduceat(column.lo, b.starts)
    hi = np.maximum.reduceat(column.hi, b.starts)
    empty = counts == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(empty, np.nan, sums / np.maximum(counts, 1))
    return mean, np.where(empty, np.nan, lo), np.where(empty, np.nan, hi)


# --------------------------------------------------------------------------- histogram
def latency_histogram(e2e: np.ndarray | LatencyStats) -> str:
    """End-to-end latency distribution with p50/p90/p99 markers; values past p99.9 share one bar.
    ``e2e``: the values (non-finite ones are left out), or their :class:`LatencyStats`."""
    stats = e2e if isinstance(e2e, LatencyStats) else LatencyStats(np.asarray(e2e, dtype=np.float64))
    if not len(stats):
        return ""
    vmin, p50, p90, p99, p999, vmax = stats.percentiles([0, 50, 90, 99, 99.9, 100])
    v, weights = stats.distribution()
    if vmax > vmin:
        lo_v, hi = vmin, min(vmax, p999 + 0.1 * (p999 - vmin))
    else:  # one value (a run of one frame): centred in a range whose tick labels differ (was 218 218 219)
        half = max(1.0, 0.05 * abs(vmin))
        lo_v, hi = max(0.0, vmin - half), vmin + half
    step = nice_step((hi - lo_v) / 40.0)
    lo = math.floor(lo_v / step) * step
    edges = np.arange(lo, hi + step, step)
    if len(edges) < 2:
        edges = np.array([lo, lo + step])
    counts, _ = np.histogram(np.clip(v, lo, edges[-1]), bins=edges, weights=weights)
    counts = counts.astype(np.int64)
    overflow = int(weights[v > edges[-1]].sum())
    counts[-1] -= overflow  # np.clip put them in the last bin
    bar_x1 = edges[-1] + (2 * step if overflow else 0)
    plot = Plot(float(lo), float(bar_x1), 0.0, max(1.0, float(max(counts.max(), overflow)) * 1.12), height=250, top=26)
    parts = [plot.axes("end-to-end latency (ms)", "frames", y_ticks=_int_ticks(plot.y1))]
    base = float(plot.py(0))
    for left, c in zip(edges[:-1].tolist(), counts.tolist(), strict=True):
        if c:
            x0, x1 = float(plot.px(left)), float(plot.px(left + step))
            y = float(plot.py(c))
            parts.append(
                f'<rect x="{x0 + 0.5:.1f}" y="{y:.1f}" width="{max(0.8, x1 - x0 - 1):.1f}" '
                f'height="{base - y:.1f}" fill="#4e79a7"/>'
            )
    if overflow:
        x0, x1 = float(plot.px(edges[-1] + step * 0.5)), float(plot.px(edges[-1] + step * 1.5))
        y = float(plot.py(overflow))
        parts.append(f'<rect x="{x0:.1f}" y="{y:.1f}" width="{x1 - x0:.1f}" height="{base - y:.1f}" fill="#9c755f"/>')
        label = f"&gt;{fmt_num(float(edges[-1]))} (max {fmt_num(vmax)})"
        parts.append(text((x0 + x1) / 2, y - 4, label, anchor="end", size=10, fill=MUTED))
    for i, (name, val, dash) in enumerate((("p50", p50, "2 2"), ("p90", p90, "5 3"), ("p99", p99, "8 3"))):
        x = float(plot.px(min(val, bar_x1)))
        parts.append(
            f'<line x1="{x:.1f}" y1="{plot.top}" x2="{x:.1f}" y2="{base:.1f}" stroke="{INK}" '
            f'stroke-width="1.2" stroke-dasharray="{dash}"/>'
        )
        parts.append(text(x + 4, plot.top + 10 + 12 * i, name, size=10, fill=INK, halo=True))
    summary_line = f"p50 {fmt_num(p50)} ms · p90 {fmt_num(p90)} ms · p99 {fmt_num(p99)} ms · max {fmt_num(vmax)} ms"
    parts.append(text(plot.left, 16, escape(summary_line), size=12, weight="600"))
    return svg_document(plot.width, plot.height, "".join(parts), "End-to-end latency histogram")


def _int_ticks(top: float, bottom: float = 0.0, target: int = 4) -> list[float]:
    """Whole-number ticks over [bottom, top] (frame numbers and counts: a few frames were labelled 0, 0.2,
    0.4, ...)."""
    ticks = [t for t in nice_ticks(bottom, top, target) if abs(t - round(t)) < 1e-9]
    return ticks or [float(round(bottom))]


# --------------------------------------------------------------------------- latency timeline
def latency_timeline(series: ChartSeries, stages: Sequence[str] | None = None, max_points: int = 1200) -> str:
    """Stacked per-stage latency (bucket means of the ``stages`` named, default all) under the
    end-to-end line; a min–max band when downsampled. Frames were dropped before: a red tick under that
    frame (or bucket), so drops can be read against the latency."""
    if series.frame_count == 0:
        return ""
    b = make_buckets(series, max_points)
    e_mean, e_lo, e_hi = bucket_stats(series.e2e, b)
    stacked: list[tuple[str, np.ndarray, np.ndarray]] = []
    base = np.zeros(len(b.starts))
    for name, column in series.stages.items():
        if stages is not None and name not in stages:
            continue
        mean = np.nan_to_num(bucket_stats(column, b)[0], nan=0.0)
        stacked.append((name, base, base + mean))
        base = base + mean
    g_mean = bucket_stats(series.g2g, b)[0] if series.g2g is not None and series.g2g.any else None
    peak = np.nanmax(np.concatenate([e_hi if b.downsampled else e_mean, base, g_mean if g_mean is not None else []]))
    p99 = series.e2e_distribution.percentiles([99])
    cap = 3.0 * p99[0] if p99 else float(peak)
    clipped = bool(np.isfinite(peak) and peak > cap > 0)
    top = cap if clipped else (float(peak) if np.isfinite(peak) and peak > 0 else 1.0)
    x0, x1 = float(b.x_first[0]), float(max(b.x_last[-1], b.x_first[0] + 1))
    # a clipped chart says so on a line of its own under the legend (beside it, right-aligned, it printed
    # over a long legend's last entries)
    plot = Plot(x0, x1, 0.0, top * 1.08, height=270 + (14 if clipped else 0), top=44 if clipped else 30)
    parts = [plot.axes("frame", "latency (ms)", x_ticks=_int_ticks(x1, x0, 8))]
    for i, (name, lo, hi) in enumerate(stacked):
        parts.append(area_path(plot, b.x, lo, hi, color_for_stage(name, i), 0.85))
    if b.downsampled:
        parts.append(area_path(plot, b.x, e_lo, e_hi, E2E_COLOR, 0.15))
    parts.append(line_path(plot, b.x, e_mean, E2E_COLOR, 1.4))
    if g_mean is not None:
        parts.append(line_path(plot, b.x, g_mean, G2G_COLOR, 1.4, dash="5 3"))
    items = [(name, color_for_stage(name, i), "box") for i, (name, _, _) in enumerate(stacked)]
    items.append(("end-to-end" + (" (mean, min–max band)" if b.downsampled else ""), E2E_COLOR, "line"))
    if g_mean is not None:
        items.append(("glass-to-glass", G2G_COLOR, "dash"))
    drops = np.add.reduceat(series.dropped, b.starts) if series.dropped is not None else None
    if drops is not None and drops.any():
        y0 = float(plot.py(0.0))
        ticks = "".join(f"M{float(plot.px(x)):.1f},{y0:.1f}v-9" for x in b.x[drops > 0])
        parts.append(f'<path d="{ticks}" stroke="{DROP_COLOR}" stroke-width="2"/>')
        items.append((f"dropped frames ({int(drops.sum())})", DROP_COLOR, "line"))
    parts.append(legend(items, plot.left, 16))
    if clipped:
        note = f"clipped at {fmt_num(top)} ms (peak {fmt_num(float(peak))} ms)"
        parts.append(text(plot.left, 32, escape(note), size=11, fill="#b3261e"))
    return svg_document(plot.width, plot.height, "".join(parts), "Per-frame latency timeline")


# --------------------------------------------------------------------------- class timeline
def _class_order(labels: Iterable[str]) -> list[str]:
    seen = set(labels)
    last = [FROZEN_CLASS] if FROZEN_CLASS in seen else []
    return [c for c in CLASS_COLORS if c in seen] + sorted(seen - set(CLASS_COLORS) - {FROZEN_CLASS}) + last


def class_timeline(
    series: ChartSeries,
    threshold: float | None = None,
    max_points: int = 1200,
    episodes: Sequence[tuple[int, int]] = (),
) -> str:
    """A coloured band of the predicted class per frame (class shares per bucket when downsampled)
    above the P(malignant | lesion) of the lesion frames (mean line, min–max band; buckets without a
    lesion frame leave gaps). ``episodes``: (first, last) frame of each lesion episode, bracketed and
    numbered from 1 under the band (none past :data:`MAX_SHOWN_EPISODES`)."""
    if series.frame_count == 0:
        return ""
    b = make_buckets(series, max_points)
    order = _class_order(series.classes)
    counts = np.stack([np.add.reduceat(series.classes[c], b.starts) for c in order], axis=1)
    share = counts / counts.sum(axis=1, keepdims=True)

    width, band_top, band_h = 1000, 30, 34
    episodes = episodes if len(episodes) <= MAX_SHOWN_EPISODES else ()
    plot = Plot(float(b.x_first[0]), float(max(b.x_last[-1], b.x_first[0] + 1)), 0.0, 1.0, height=250,
                top=94 if episodes else 82)  # room for the episodes' brackets under the band
    parts: list[str] = []
    # run-length merge identical rows so a steady class is one rectangle
    change = np.flatnonzero(np.any(np.diff(share, axis=0) != 0, axis=1)) + 1
    run_starts = np.concatenate(([0], change))
    run_ends = np.append(change, len(share))
    half = _half_step(b)
    for s, e in zip(run_starts.tolist(), run_ends.tolist(), strict=True):
        xa = max(float(plot.left), float(plot.px(b.x_first[s] - half)))
        xb = min(float(plot.width - plot.right), float(plot.px(b.x_last[e - 1] + half)))
        y = float(band_top)
        for k, frac in enumerate(share[s].tolist()):
            if frac <= 0:
                continue
            h = band_h * frac
            color = CLASS_COLORS.get(order[k], OTHER_COLOR)
            parts.append(
                f'<rect x="{xa:.1f}" y="{y:.1f}" width="{max(0.5, xb - xa):.1f}" height="{h:.2f}" fill="{color}"/>'
            )
            y += h
    parts.append(text(plot.left - 6, band_top + band_h / 2 + 4, "class", anchor="end", size=11, fill=MUTED))
    y_ep = band_top + band_h + 6
    for number, (first, last) in enumerate(episodes, start=1):
        xa = max(float(plot.left), float(plot.px(first - half)))
        xb = min(float(plot.width - plot.right), float(plot.px(last + half)))
        parts.append(f'<path d="M{xa:.1f},{y_ep - 3} V{y_ep} H{xb:.1f} V{y_ep - 3}" fill="none" stroke="{INK}" '
                     f'stroke-width="1.6"/>')
        parts.append(text((xa + xb) / 2, y_ep + 11, str(number), anchor="middle", size=10, halo=True))
    m_mean, m_lo, m_hi = bucket_stats(series.malignancy, b)
    parts.append(plot.axes("frame", "P(malignant | lesion)", x_ticks=_int_ticks(plot.x1, plot.x0, 8),
                           y_ticks=[0, 0.25, 0.5, 0.75, 1.0]))
    if b.downsampled:
        parts.append(area_path(plot, b.x, m_lo, m_hi, CLASS_COLORS["malignant"], 0.18))
    parts.append(line_path(plot, b.x, m_mean, CLASS_COLORS["malignant"], 1.4))
    if threshold is not None and 0 <= threshold <= 1:
        y = float(plot.py(threshold))
        parts.append(
            f'<line x1="{plot.left}" y1="{y:.1f}" x2="{width - plot.right}" y2="{y:.1f}" stroke="{INK}" '
            f'stroke-dasharray="5 3"/>'
        )
        parts.append(
            # 4 decimals, as the summary table and the manifest (at 2, 0.8925 read 0.89)
            text(width - plot.right - 4, y - 4, f"threshold {threshold:.4f}", anchor="end", size=10, halo=True)
        )
    totals = counts.sum(axis=0)
    items = [
        (f"{c} ({100 * t / max(1, series.frame_count):.1f}%)", CLASS_COLORS.get(c, OTHER_COLOR), "box")
        for c, t in zip(order, totals.tolist(), strict=True)
    ]
    items.append(("malignancy of lesion frames" + (" (mean, min–max band)" if b.downsampled else ""),
                  CLASS_COLORS["malignant"], "line"))
    parts.append(legend(items, plot.left, 16))
    return svg_document(width, plot.height, "".join(parts), "Class timeline and malignancy probability")


def _half_step(b: Buckets) -> float:
    """Half a frame (or bucket) so single-frame runs still get a visible width."""
    return 0.0 if b.downsampled else 0.5


# --------------------------------------------------------------------------- stage bars
def stage_bars(latency: Mapping[str, Mapping[str, object]]) -> str:
    """Mean ms per stage as horizontal bars, then end-to-end (and glass-to-glass) for reference."""
    rows: list[tuple[str, float, str]] = []
    for i, (name, s) in enumerate((k, v) for k, v in latency.items() if k not in SUMMARY_STAGES):
        rows.append((name, _mean(s), color_for_stage(name, i)))
    for name, color in (("end_to_end", E2E_COLOR), ("glass_to_glass", G2G_COLOR)):
        if name in latency:
            rows.append((name.replace("_", "-"), _mean(latency[name]), color))
    rows = [r for r in rows if math.isfinite(r[1])]
    if not rows:
        return ""
    row_h, label_w, width = 26, 130, 1000
    height = row_h * len(rows) + 34
    top_v = max(v for _, v, _ in rows) or 1.0
    plot = Plot(0.0, top_v * 1.15, 0.0, 1.0, width=width, height=height, left=label_w, top=8, bottom=26)
    parts = []
    for t in nice_ticks(0.0, plot.x1, 6):
        x = float(plot.px(t))
        parts.append(f'<line x1="{x:.1f}" y1="{plot.top}" x2="{x:.1f}" y2="{height - plot.bottom}" stroke="#e3e7eb"/>')
        parts.append(text(x, height - 8, fmt_num(t), anchor="middle", size=11, fill=MUTED))
    for i, (name, v, color) in enumerate(rows):
        y = plot.top + i * row_h
        w = float(plot.px(v)) - plot.left
        parts.append(text(label_w - 8, y + 17, escape(name), anchor="end", size=12))
        parts.append(
            f'<rect x="{plot.left}" y="{y + 4}" width="{max(1.0, w):.1f}" height="{row_h - 8}" rx="2" fill="{color}"/>'
        )
        parts.append(text(plot.left + w + 6, y + 17, f"{fmt_num(v)} ms", size=11, weight="600"))
    return svg_document(width, height, "".join(parts), "Mean latency per stage")


def _mean(summary: Mapping[str, object]) -> float:
    v = summary.get("mean_ms")
    return float(v) if isinstance(v, int | float) else math.nan
