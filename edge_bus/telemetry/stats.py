"""Latency statistics, per-stage metrics and an FPS meter.

All times are milliseconds measured with :func:`time.perf_counter`. Values are kept (8 bytes
each, in an ``array('d')``) so percentiles are exact: an hour at 30 FPS is ~0.9 MB per stage.
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
    Percentiles use numpy's default (linear interpolation).
    """

    __slots__ = ("_values",)

    def __init__(self, values: Iterable[float] = ()) -> None:
        self._values = array("d")
        self.extend(values)

    def add(self, ms: float) -> None:
        if math.isfinite(ms):
            self._values.append(ms)

    append = add

    def extend(self, values: Iterable[float]) -> None:
        for v in values:
            self.add(float(v))

    def __len__(self) -> int:
        return len(self._values)

    def values(self) -> np.ndarray:
        """A float64 copy of the collected values."""
        return np.array(self._values, dtype=np.float64)

    def stats(self) -> LatencySummary:
        """Count, mean, p50/p90/p99 and max, rounded to 3 decimals; empty → None."""
        n = len(self._values)
        if n == 0:
            return LatencySummary(0, None, None, None, None, None)
        v = np.frombuffer(self._values, dtype=np.float64)
        p50, p90, p99 = np.percentile(v, [50.0, 90.0, 99.0])
        return LatencySummary(n, round(float(v.mean()), 3), round(float(p50), 3), round(float(p90), 3),
                              round(float(p99), 3), round(float(v.max()), 3))

    def summary(self) -> Summary:
        """``{count, mean_ms, p50_ms, p90_ms, p99_ms, max_ms}`` (:meth:`stats` as latency.json has it)."""
        return self.stats().to_json()


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
