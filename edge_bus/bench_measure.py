"""Timing primitives for ``edge-bus bench`` and the CI benchmarks: samples → :class:`Timing`.

Everything is timed with :func:`time.perf_counter` in milliseconds. Several things measured for
the same run are *interleaved* (a block of each in turn, round after round) so a background
load that comes and goes — another process, a CI neighbour — slows all of them alike and the
ratios between them stay meaningful even when the absolute numbers do not.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

__all__ = ["Timing", "sample_interleaved", "summarize"]


@dataclass(frozen=True)
class Timing:
    """Milliseconds per call of one measured thing, benchmark_app style.

    ``fps`` is calls per second of the thing alone (``1000 / mean_ms``: batch 1, one call at a
    time). ``precision`` is what actually ran (engines only). A thing that could not be measured
    has ``error`` set, ``count`` 0 and NaN numbers.
    """

    name: str
    count: int
    median_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    p99_ms: float
    fps: float
    precision: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.count > 0

    @classmethod
    def failed(cls, name: str, error: str) -> Timing:
        nan = math.nan
        return cls(name, 0, nan, nan, nan, nan, nan, nan, None, error)

    def to_json(self) -> dict[str, object]:
        return {
            "median_ms": _num(self.median_ms),
            "mean_ms": _num(self.mean_ms),
            "min_ms": _num(self.min_ms),
            "max_ms": _num(self.max_ms),
            "p99_ms": _num(self.p99_ms),
            "fps": _num(self.fps, 2),
            "count": self.count,
            "precision": self.precision,
            "error": self.error,
        }


def _num(v: float, digits: int = 3) -> float | None:
    return round(float(v), digits) if math.isfinite(v) else None


def summarize(name: str, samples_ms: Sequence[float], precision: str | None = None) -> Timing:
    """A :class:`Timing` from per-call milliseconds (at least one sample)."""
    v = np.asarray(samples_ms, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Timing.failed(name, "no samples")
    mean = float(v.mean())
    return Timing(
        name=name,
        count=int(v.size),
        median_ms=float(np.median(v)),
        mean_ms=mean,
        min_ms=float(v.min()),
        max_ms=float(v.max()),
        p99_ms=float(np.percentile(v, 99.0)),
        fps=1000.0 / mean if mean > 0 else math.nan,
        precision=precision,
    )


def sample_interleaved(
    calls: Mapping[str, Callable[[], object]],
    seconds_each: float,
    *,
    burst: int = 8,
    settle: int = 3,
    min_count: int = 5,
    max_count: int = 100_000,
    idle_s: float = 0.0,
) -> dict[str, list[float]]:
    """Time each call in ``calls`` in turn, a block at a time, until about ``seconds_each ×
    len(calls)`` seconds have passed and every call has ``min_count`` samples.

    A block is ``settle`` untimed calls then ``burst`` timed ones: the first calls after switching
    from one runtime to another run on cold caches and sleeping thread pools (measured: up to 2×
    slower on a 2-core EPYC), which a live stream — one engine, every frame — never sees.
    ``idle_s``: a pause before each block (not counted in the time budget), so the thread pool of
    the runtime measured before has gone to sleep: ONNX Runtime's threads spin for 10-20 ms after a
    call, and on a 2-core AVX512-VNNI EPYC OpenVINO INT8 measured right after it read 2.7 ms against
    1.4 ms after a 20 ms pause (ONNX Runtime itself read the same either way).
    Returns ``{name: [ms, ...]}``; every name gets the same number of samples.
    """
    if not calls:
        return {}
    samples: dict[str, list[float]] = {name: [] for name in calls}
    deadline = time.perf_counter() + max(0.0, seconds_each) * len(calls)
    clock = time.perf_counter
    while True:
        for name, fn in calls.items():
            if idle_s > 0:
                time.sleep(idle_s)
                deadline += idle_s
            for _ in range(max(0, settle)):
                fn()
            out = samples[name]
            for _ in range(max(1, burst)):
                t = clock()
                fn()
                out.append((clock() - t) * 1e3)
        count = len(next(iter(samples.values())))
        if count >= max_count or (count >= min_count and clock() >= deadline):
            return samples


T = TypeVar("T")


def cycle(items: Sequence[T], fn: Callable[[T], object]) -> Callable[[], object]:
    """A no-argument call that applies ``fn`` to the next of ``items`` each time, round and round."""
    state = [0]

    def call() -> object:
        i = state[0]
        state[0] = i + 1
        return fn(items[i % len(items)])

    return call
