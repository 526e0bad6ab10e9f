"""What report.html draws over time, in memory that does not grow with the run.

A :class:`ChartSeries` has one row a frame up to :data:`MAX_ROWS` frames; past that,
:class:`ChartSeriesBuilder` merges neighbouring rows two by two (and from then on puts twice as many
frames in a row), so an overnight run holds about as much as a short one. Each row keeps, per number,
the sum, count, min and max over its frames (:class:`Column`), and how many of its frames had each
class: the report's buckets of rows then give the same means and min–max bands as buckets of frames.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from edge_bus.telemetry.series import FrameSeries
from edge_bus.telemetry.stats import LatencyStats

__all__ = ["FROZEN_CLASS", "MAX_ROWS", "ChartSeries", "ChartSeriesBuilder", "Column"]

MAX_ROWS = 1 << 14
"""Rows a :class:`ChartSeries` holds before two become one (16,384: the charts draw at most 1,200
buckets; about 6 MB with six stages)."""
FROZEN_CLASS = "frozen"
"""The class a frame shown while the board froze the image counts as (no inference ran)."""


@dataclass(frozen=True, eq=False)
class Column:
    """One number per row: the ``total``, count ``n``, ``lo`` and ``hi`` over the row's frames that had it
    (``lo`` +inf and ``hi`` -inf where none did)."""

    total: np.ndarray
    n: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    def mean(self) -> np.ndarray:
        """Per row; NaN where no frame had it."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n > 0, self.total / np.maximum(self.n, 1), np.nan)

    @property
    def any(self) -> bool:
        return bool(self.n.any())


@dataclass(frozen=True, eq=False)
class ChartSeries:
    """The run over time as the report draws it: per row, its ``first`` and ``last`` source frame and its
    ``frames``; the end-to-end, stage and glass-to-glass times of the frames the model answered; the
    P(malignant | lesion) of its answered lesion frames; how many frames had each class (frames shown
    frozen as :data:`FROZEN_CLASS`); and the frames dropped before them (None: no drop at all).
    ``e2e_distribution``: every answered frame's end-to-end time, for the histogram."""

    first: np.ndarray
    last: np.ndarray
    frames: np.ndarray
    e2e: Column
    stages: Mapping[str, Column]
    g2g: Column | None
    malignancy: Column
    classes: Mapping[str, np.ndarray]
    dropped: np.ndarray | None
    e2e_distribution: LatencyStats

    @property
    def frame_count(self) -> int:
        return int(self.frames.sum())

    @property
    def frozen_count(self) -> int:
        frozen = self.classes.get(FROZEN_CLASS)
        return 0 if frozen is None else int(frozen.sum())

    @classmethod
    def empty(cls) -> ChartSeries:
        return ChartSeriesBuilder().build()

    @classmethod
    def from_frames(cls, series: FrameSeries, max_rows: int | None = None) -> ChartSeries:
        """``series``' frames as a run adds them: one row a frame (however many), or at most ``max_rows``."""
        rows = max_rows or max(2, len(series) + len(series) % 2)
        builder = ChartSeriesBuilder(rows)
        g2g = series.glass_to_glass_ms
        dropped = series.dropped_before
        for i, (frame, e2e, label, malignancy, lesion, answered) in enumerate(zip(
                series.frame.tolist(), series.e2e_ms.tolist(), series.label, series.malignancy.tolist(),
                series.lesion.tolist(), series.answered.tolist(), strict=True)):
            builder.add(frame, e2e, {k: float(v[i]) for k, v in series.stages_ms.items()}, label, malignancy,
                        lesion, None if g2g is None or math.isnan(g2g[i]) else float(g2g[i]), frozen=not answered,
                        dropped_before=0 if dropped is None else int(dropped[i]))
        return builder.build()


_Row = TypeVar("_Row", int, float)


def _pairs(rows: array[_Row], merge: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> array[_Row]:
    """Rows 2k and 2k+1 of ``rows`` (an even number) merged into row k, as an array of the same type."""
    v = np.frombuffer(rows, dtype=np.float64 if rows.typecode == "d" else np.int64)
    return array(rows.typecode, np.asarray(merge(v[0::2], v[1::2])).tobytes())


class _ColumnBuilder:
    __slots__ = ("hi", "lo", "n", "total")

    def __init__(self, rows: int = 0) -> None:
        self.total, self.n = array("d", [0.0]) * rows, array("q", [0]) * rows
        self.lo, self.hi = array("d", [math.inf]) * rows, array("d", [-math.inf]) * rows

    def put(self, v: float, new_row: bool) -> None:
        """``v`` into a new last row, or into the last row (a non-finite value is none)."""
        finite = math.isfinite(v)
        if new_row:
            self.total.append(v if finite else 0.0)
            self.n.append(1 if finite else 0)
            self.lo.append(v if finite else math.inf)
            self.hi.append(v if finite else -math.inf)
        elif finite:
            self.total[-1] += v
            self.n[-1] += 1
            if v < self.lo[-1]:
                self.lo[-1] = v
            if v > self.hi[-1]:
                self.hi[-1] = v

    def halve(self) -> None:
        """Rows 2k and 2k+1 become row k (an even number of rows)."""
        self.total, self.n = _pairs(self.total, np.add), _pairs(self.n, np.add)
        self.lo, self.hi = _pairs(self.lo, np.minimum), _pairs(self.hi, np.maximum)

    def build(self) -> Column:
        return Column(np.array(self.total, dtype=np.float64), np.array(self.n, dtype=np.int64),
                      np.array(self.lo, dtype=np.float64), np.array(self.hi, dtype=np.float64))


class ChartSeriesBuilder:
    """Adds frames to a :class:`ChartSeries` as a run goes; holds at most :data:`MAX_ROWS` rows.

    ``e2e``: the run's own end-to-end :class:`LatencyStats` (its ``StageMetrics``'), which the caller fills
    and the series' histogram then shows (not a second copy of the same values); without it the builder
    keeps its own."""

    def __init__(self, max_rows: int = MAX_ROWS, e2e: LatencyStats | None = None) -> None:
        if max_rows < 2 or max_rows % 2:
            raise ValueError("ChartSeriesBuilder: max_rows must be even and at least 2")
        self._max_rows = max_rows
        self._stride = 1  # frames a row holds
        self._first: array[int] = array("q")
        self._last: array[int] = array("q")
        self._frames: array[int] = array("q")
        self._e2e, self._g2g, self._mal = _ColumnBuilder(), _ColumnBuilder(), _ColumnBuilder()
        self._any_g2g = False
        self._stages: dict[str, _ColumnBuilder] = {}
        self._classes: dict[str, array[int]] = {}
        self._dropped: array[int] = array("q")
        self._own_distribution = e2e is None
        self._distribution = LatencyStats() if e2e is None else e2e

    def __len__(self) -> int:
        """Rows."""
        return len(self._frames)

    @property
    def stride(self) -> int:
        """Frames a row holds now (1 until :data:`MAX_ROWS` frames, then 2, 4, ...)."""
        return self._stride

    def add(self, frame: int, e2e_ms: float, stages_ms: Mapping[str, float], label: str, malignancy: float,
            lesion: bool, glass_to_glass_ms: float | None = None, frozen: bool = False,
            dropped_before: int = 0) -> None:
        """One frame: a frozen one (shown again without inference) counts as :data:`FROZEN_CLASS` and
        adds no time nor malignancy."""
        new = not self._frames or self._frames[-1] >= self._stride
        if new:
            if len(self._frames) == self._max_rows:
                self._halve()
            self._first.append(frame)
            self._last.append(frame)
            self._frames.append(1)
            self._dropped.append(dropped_before)
            for column in self._classes.values():
                column.append(0)
        else:
            self._last[-1] = frame
            self._frames[-1] += 1
            self._dropped[-1] += dropped_before
        cls = FROZEN_CLASS if frozen else label
        if cls not in self._classes:
            self._classes[cls] = array("q", [0]) * len(self._frames)
        self._classes[cls][-1] += 1
        nan = math.nan
        if frozen:
            e2e_ms, stages_ms, glass_to_glass_ms, lesion = nan, {}, None, False
        elif self._own_distribution:
            self._distribution.add(e2e_ms)
        self._e2e.put(e2e_ms, new)
        for name, col in self._stages.items():
            col.put(stages_ms.get(name, nan), new)
        if not stages_ms.keys() <= self._stages.keys():
            for name, ms in stages_ms.items():  # in the frame's order: a stage first seen has no rows before
                if name not in self._stages:
                    self._stages[name] = _ColumnBuilder(len(self._frames) - 1)
                    self._stages[name].put(ms, True)
        if glass_to_glass_ms is not None:
            self._any_g2g = True
        self._g2g.put(nan if glass_to_glass_ms is None else glass_to_glass_ms, new)
        self._mal.put(malignancy if lesion else nan, new)

    def _halve(self) -> None:
        self._first = _pairs(self._first, lambda even, odd: even)
        self._last = _pairs(self._last, lambda even, odd: odd)
        self._frames, self._dropped = _pairs(self._frames, np.add), _pairs(self._dropped, np.add)
        self._classes = {k: _pairs(v, np.add) for k, v in self._classes.items()}
        for col in (self._e2e, self._g2g, self._mal, *self._stages.values()):
            col.halve()
        self._stride *= 2

    def build(self) -> ChartSeries:
        dropped = np.array(self._dropped, dtype=np.int64)
        return ChartSeries(
            first=np.array(self._first, dtype=np.int64), last=np.array(self._last, dtype=np.int64),
            frames=np.array(self._frames, dtype=np.int64), e2e=self._e2e.build(),
            stages={k: v.build() for k, v in self._stages.items()},
            g2g=self._g2g.build() if self._any_g2g else None, malignancy=self._mal.build(),
            classes={k: np.array(v, dtype=np.int64) for k, v in self._classes.items()},
            dropped=dropped if dropped.any() else None, e2e_distribution=self._distribution,
        )  # fmt: skip
