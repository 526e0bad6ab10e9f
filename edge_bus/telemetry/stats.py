"""Latency statistics, per-stage metrics and an FPS meter.

All times are milliseconds measured with :func:`time.perf_counter`. A stage's first
:data:`EXACT_LATENCIES` values are kept (8 bytes each, in an ``array('d')``) so its percentiles are
exact; past that they go into a histogram of bins 1% wide, so a run of any length holds at most about
1 MiB per stage and its percentiles are within 0.5% (count, mean and max stay exact).
"""

from __future__ import annotations

import math
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from edge_bus.types import StageTimes

__all__ = [
    "END_TO_END",
    "EXACT_LATENCIES",
    "GLASS_TO_GLASS",
    "PIPELINE_STAGES",
    "SUMMARY_KEYS",
    "FpsMeter",
    "LatencyStats",
    "LatencySummary",
    "StageMetrics",
]

END_TO_END = "end_to_end"
GLASS_TO_GLASS = "glass_to_glass"
#: A frame's pipeline stages, in order: the names of latency.json's ``stages``, of ``stages_ms`` in
#: frames.jsonl, of the report's charts and of the bench's stage gates (all but ``infer``).
PIPELINE_STAGES = ("decode", "preprocess", "infer", "postprocess", "render", "write")
SUMMARY_KEYS = ("count", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms")

Summary = dict[str, float | int | None]

EXACT_LATENCIES = 1 << 17
"""Values a :class:`LatencyStats` keeps one by one (1 MiB): past them, percentiles come from a histogram
(:data:`HISTOGRAM_STEP`). 131,072 frames are 73 minutes at 30 fps, 9 at 240 FPS."""
HISTOGRAM_STEP = 1.01
"""A long run's latency histogram: each bin's upper edge is 1% above its lower one, from 1 µs to 10^9 ms
(11 days); a percentile is read as its bin's geometric centre, within 0.5%. A value under 1 µs (0, or a
negative one from a clock stepped back) reads as the smallest value seen, one over 10^9 ms as the largest."""
_HISTOGRAM_LOW_MS = 1e-3
_HISTOGRAM_BINS = 2 + math.ceil(math.log(1e12) / math.log(HISTOGRAM_STEP))  # 2,779 bins, 22 KB


@dataclass(frozen=True)
class LatencySummary:
    """One stage's latency: the number of values and their mean, p50/p90/p99 and max in ms (None
    without values). ``to_json()`` is the latency.json entry."""

    count: int
    mean_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    def to_json(self) -> Summary:
        return {"count": self.count, "mean_ms": self.mean_ms, "p50_ms": self.p50_ms, "p90_ms": self.p90_ms,
                "p99_ms": self.p99_ms, "max_ms": self.max_ms}


class LatencyStats:
    """Collects millisecond values; :meth:`summary` gives count, mean, p50/p90/p99 and max.

    Non-finite values (NaN, inf) are ignored: a stage that did not run must not poison the mean.
    Percentiles use numpy's default (linear interpolation), exactly over the first
    :data:`EXACT_LATENCIES` values and within 0.5% past them (:data:`HISTOGRAM_STEP`), so a run of any
    length holds at most about 1 MiB here. Count, mean, min and max are always exact.
    """

    __slots__ = ("_bins", "_count", "_max", "_min", "_sum", "_values")

    def __init__(self, values: Iterable[float] = ()) -> None:
        self._values: array[float] | None = array("d")
        self._bins: np.ndarray | None = None  # the histogram, once past EXACT_LATENCIES values
        self._count, self._sum, self._min, self._max = 0, 0.0, math.inf, -math.inf
        self.extend(values)

    def add(self, ms: float) -> None:
        if not math.isfinite(ms):
            return
        values = self._values
        if values is not None:  # count, sum, min and max are the values' own until the histogram
            values.append(ms)
            if len(values) > EXACT_LATENCIES:
                self._to_histogram()
            return
        assert self._bins is not None
        self._bins[_bin_of(ms)] += 1
        self._count += 1
        self._sum += ms
        if ms < self._min:
            self._min = ms
        if ms > self._max:
            self._max = ms

    append = add

    def extend(self, values: Iterable[float]) -> None:
        for v in values:
            self.add(float(v))

    def __len__(self) -> int:
        return self._count if self._values is None else len(self._values)

    @property
    def exact(self) -> bool:
        """Every value is still kept (no more than :data:`EXACT_LATENCIES` of them)."""
        return self._values is not None

    def _to_histogram(self) -> None:
        assert self._values is not None
        v = np.frombuffer(self._values, dtype=np.float64)
        self._bins = np.bincount(_bins_of(v), minlength=_HISTOGRAM_BINS).astype(np.int64)
        self._count, self._sum, self._min, self._max = len(v), float(v.sum()), float(v.min()), float(v.max())
        self._values = None

    def distribution(self) -> tuple[np.ndarray, np.ndarray]:
        """``(values, counts)``: each value and 1 while exact; past that each non-empty bin's geometric
        centre (kept within the min and max) and its count. For a histogram of the values."""
        if self._values is not None:
            v = np.array(self._values, dtype=np.float64)
            return v, np.ones(len(v), dtype=np.int64)
        assert self._bins is not None
        used = np.flatnonzero(self._bins)
        return self._centres(used), self._bins[used].copy()

    def _centres(self, bins: np.ndarray) -> np.ndarray:
        """Each bin's geometric centre, kept within the min and max; the open-ended first and last bins
        read as the min and the max."""
        centre = _HISTOGRAM_LOW_MS * HISTOGRAM_STEP ** (bins.astype(np.float64) - 0.5)
        centre = np.where(bins == 0, self._min, np.where(bins == _HISTOGRAM_BINS - 1, self._max, centre))
        return np.clip(centre, self._min, self._max)

    def percentiles(self, qs: Sequence[float]) -> list[float]:
        """The ``qs`` percentiles (0–100) with numpy's linear interpolation; [] without values."""
        if len(self) == 0:
            return []
        if self._values is not None:
            return [float(x) for x in np.percentile(np.frombuffer(self._values, dtype=np.float64), list(qs))]
        assert self._bins is not None
        cumulative = np.cumsum(self._bins)
        out = []
        for q in qs:
            rank = q / 100.0 * (self._count - 1)
            lo, hi = math.floor(rank), math.ceil(rank)
            centres = self._centres(np.searchsorted(cumulative, [lo, hi], side="right"))
            # the smallest and the largest value are known exactly
            v_lo, v_hi = (self._min if k == 0 else self._max if k == self._count - 1 else float(c)
                          for k, c in zip((lo, hi), centres, strict=True))
            out.append(float(v_lo + (v_hi - v_lo) * (rank - lo)))
        return out

    def stats(self) -> LatencySummary:
        """Count, mean, p50/p90/p99 and max, rounded to 3 decimals; empty → None."""
        n = len(self)
        if n == 0:
            return LatencySummary(0, None, None, None, None, None)
        p50, p90, p99 = self.percentiles([50.0, 90.0, 99.0])
        if self._values is not None:
            v = np.frombuffer(self._values, dtype=np.float64)
            mean, top = float(v.mean()), float(v.max())
        else:
            mean, top = self._sum / n, self._max
        return LatencySummary(n, round(mean, 3), round(p50, 3), round(p90, 3), round(p99, 3), round(top, 3))

    def summary(self) -> Summary:
        """``{count, mean_ms, p50_ms, p90_ms, p99_ms, max_ms}`` (:meth:`stats` as latency.json has it)."""
        return self.stats().to_json()


def _bin_of(ms: float) -> int:
    """The histogram bin of one value: 0 up to 1 µs, the last one from 10^9 ms on."""
    if ms <= _HISTOGRAM_LOW_MS:
        return 0
    return min(_HISTOGRAM_BINS - 1, 1 + int(math.log(ms / _HISTOGRAM_LOW_MS) / _LOG_STEP))


def _bins_of(ms: np.ndarray) -> np.ndarray:
    """:func:`_bin_of` of many values."""
    with np.errstate(divide="ignore"):
        raw = 1 + np.floor(np.log(np.maximum(ms, _HISTOGRAM_LOW_MS) / _HISTOGRAM_LOW_MS) / _LOG_STEP)
    return np.where(ms <= _HISTOGRAM_LOW_MS, 0, np.minimum(raw, _HISTOGRAM_BINS - 1)).astype(np.int64)


_LOG_STEP = math.log(HISTOGRAM_STEP)


class StageMetrics:
    """One :class:`LatencyStats` per named stage, plus ``end_to_end`` (always reported, last).

    Stages appear in the summary in the order given to the constructor, then in first-seen order.
    """

    def __init__(self, stages: Sequence[str] = ()) -> None:
        self._stats: dict[str, LatencyStats] = {name: LatencyStats() for name in stages if name != END_TO_END}
        self._e2e = LatencyStats()
        self._g2g = LatencyStats()

    def add(self, stage: str, ms: float) -> None:
        if stage == END_TO_END:
            self._e2e.add(ms)
        elif stage == GLASS_TO_GLASS:
            self._g2g.add(ms)
        else:
            stats = self._stats.get(stage)
            if stats is None:
                stats = self._stats[stage] = LatencyStats()
            stats.add(ms)

    def add_times(self, times: StageTimes, end_to_end: bool = True) -> None:
        """Record one frame's :class:`StageTimes` (stages, e2e and glass-to-glass when known).
        ``end_to_end=False``: only its stages (a frozen frame, shown again without inference)."""
        for stage, ms in times.stages_ms.items():
            self.add(stage, ms)
        if not end_to_end:
            return
        self._e2e.add(times.e2e_ms)
        if times.glass_to_glass_ms is not None:
            self._g2g.add(times.glass_to_glass_ms)

    @property
    def stages(self) -> list[str]:
        """The named stages (without ``end_to_end``)."""
        return list(self._stats)

    def __getitem__(self, stage: str) -> LatencyStats:
        if stage == END_TO_END:
            return self._e2e
        if stage == GLASS_TO_GLASS:
            return self._g2g
        return self._stats[stage]

    def stats(self) -> dict[str, LatencySummary]:
        """Each stage's :class:`LatencySummary`, then ``end_to_end``; ``glass_to_glass`` is added only
        when some frame had it."""
        out = {name: stats.stats() for name, stats in self._stats.items()}
        out[END_TO_END] = self._e2e.stats()
        if len(self._g2g):
            out[GLASS_TO_GLASS] = self._g2g.stats()
        return out

    def summary(self) -> dict[str, Summary]:
        """:meth:`stats` as latency.json has it: ``{stage: {count, mean_ms, ...}}``."""
        return {name: s.to_json() for name, s in self.stats().items()}


class FpsMeter:
    """Frames over wall time. ``tick()`` once per frame shown/processed.

    ``fps``: over the whole run (from :meth:`start`, or from the first tick);
    ``recent_fps``: over the last ``window`` frames (what a HUD should show).
    """

    def __init__(self, window: int = 30, clock: Callable[[], float] = time.perf_counter) -> None:
        if window < 2:
            raise ValueError("FpsMeter window must be >= 2")
        self._clock = clock
        self._recent: deque[float] = deque(maxlen=window)
        self._t0: float | None = None
        self._started = False
        self._last: float | None = None
        self.frames = 0

    @property
    def started(self) -> bool:
        """:meth:`start` was called."""
        return self._started

    def start(self, t: float | None = None) -> None:
        """Start the clock explicitly (then the first frame's time counts too)."""
        self._t0 = self._clock() if t is None else t
        self._started = True

    def tick(self, t: float | None = None) -> float:
        """Count one frame; returns :attr:`recent_fps`."""
        now = self._clock() if t is None else t
        if self._t0 is None:
            self._t0 = now
        self.frames += 1
        self._last = now
        self._recent.append(now)
        return self.recent_fps

    @property
    def elapsed_s(self) -> float:
        if self._t0 is None or self._last is None:
            return 0.0
        return self._last - self._t0

    @property
    def fps(self) -> float:
        intervals = self.frames if self._started else self.frames - 1
        elapsed = self.elapsed_s
        return intervals / elapsed if intervals > 0 and elapsed > 0 else 0.0

    @property
    def recent_fps(self) -> float:
        if len(self._recent) < 2:
            return self.fps
        span = self._recent[-1] - self._recent[0]
        return (len(self._recent) - 1) / span if span > 0 else 0.0
