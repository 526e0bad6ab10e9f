"""Device-clock → host-clock mapping from NTP-style TIME_SYNC exchanges.

Pure arithmetic, thread-safe: the link's dispatcher thread adds samples, any thread reads the
current :class:`ClockEstimate` (an immutable value, replaced atomically).

For one exchange, with host times t1 (request sent) and t4 (response received) and device times
t2 (request received) and t3 (response sent)::

    offset θ = ((t2 - t1) + (t3 - t4)) / 2        device clock minus host clock, µs
    delay  δ = (t4 - t1) - (t3 - t2)              round trip spent on the wire, µs

θ is exact when both directions take equally long; any asymmetry (queueing, jitter) errs by at
most δ / 2. So the estimator keeps a window of recent samples, uses only the ones with the
smallest delay (minimum-RTT filter), and fits a line θ(h) = θ0 + drift · (h − h0) through them
once they span enough time, which tracks the drift between the two oscillators.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

__all__ = ["ClockEstimate", "ClockEstimator", "SyncSample"]

_US = 1e6


@dataclass(frozen=True, slots=True)
class SyncSample:
    """One TIME_SYNC exchange: host times in ``time.perf_counter()`` seconds, device times in µs."""

    t1_host_s: float
    t2_device_us: int
    t3_device_us: int
    t4_host_s: float

    @property
    def offset_us(self) -> float:
        return ((self.t2_device_us - self.t1_host_s * _US) + (self.t3_device_us - self.t4_host_s * _US)) / 2

    @property
    def delay_us(self) -> float:
        return (self.t4_host_s - self.t1_host_s) * _US - (self.t3_device_us - self.t2_device_us)

    @property
    def host_mid_s(self) -> float:
        return (self.t1_host_s + self.t4_host_s) / 2


@dataclass(frozen=True, slots=True)
class ClockEstimate:
    """``device_us = host_us + offset_us + drift_ppm·1e-6 · (host_us − ref_host_us)``."""

    ref_host_s: float
    offset_us: float
    drift_ppm: float
    samples_used: int
    min_delay_us: float

    def host_to_device_us(self, t_host_s: float) -> float:
        x = (t_host_s - self.ref_host_s) * _US
        return self.ref_host_s * _US + x + self.offset_us + self.drift_ppm * 1e-6 * x

    def device_to_host(self, t_device_us: float) -> float:
        """Host ``time.perf_counter()`` seconds at which the device clock read ``t_device_us``."""
        x = (t_device_us - self.ref_host_s * _US - self.offset_us) / (1.0 + self.drift_ppm * 1e-6)
        return self.ref_host_s + x / _US


class ClockEstimator:
    """Minimum-RTT filtered offset and linear drift over a sliding window of :class:`SyncSample`.

    ``keep`` is the fraction of the window (lowest delay first, at least ``min_keep`` samples) used
    for the fit; drift is fitted only when those samples span ``min_span_s`` seconds, otherwise the
    last fitted drift (initially 0) is kept. Drift is clamped to ±``max_drift_ppm``.
    """

    def __init__(
        self,
        window: int = 64,
        keep: float = 0.15,
        min_keep: int = 3,
        min_span_s: float = 2.0,
        max_drift_ppm: float = 1000.0,
    ) -> None:
        if window < 1 or not 0.0 < keep <= 1.0:
            raise ValueError("window must be >= 1 and keep in (0, 1]")
        self._samples: deque[SyncSample] = deque(maxlen=window)
        self._keep = keep
        self._min_keep = min_keep
        self._min_span_s = min_span_s
        self._max_drift = max_drift_ppm
        self._drift_ppm = 0.0
        self._estimate: ClockEstimate | None = None
        self._lock = threading.Lock()

    @property
    def estimate(self) -> ClockEstimate | None:
        """The current estimate, or None before the first sample."""
        return self._estimate

    @property
    def sample_count(self) -> int:
        return len(self._samples)

    def reset(self) -> None:
        """Forget the samples (the device may have rebooted); the last estimate stays until a new sample."""
        with self._lock:
            self._samples.clear()

    def add(self, sample: SyncSample) -> ClockEstimate:
        """Add one exchange and return the updated estimate."""
        if sample.t4_host_s < sample.t1_host_s:
            raise ValueError("sync sample has t4 before t1")
        with self._lock:
            self._samples.append(sample)
            self._estimate = self._fit()
            return self._estimate

    def _fit(self) -> ClockEstimate:
        samples = sorted(self._samples, key=lambda s: s.delay_us)
        count = min(len(samples), max(self._min_keep, math.ceil(len(samples) * self._keep)))
        best = samples[:count]
        hosts = [s.host_mid_s for s in best]
        offsets = [s.offset_us for s in best]
        ref = math.fsum(hosts) / count
        mean_offset = math.fsum(offsets) / count
        if count >= 3 and max(hosts) - min(hosts) >= self._min_span_s:
            xs = [(h - ref) * _US for h in hosts]
            sxx = math.fsum(x * x for x in xs)
            sxy = math.fsum(x * (o - mean_offset) for x, o in zip(xs, offsets, strict=True))
            slope_ppm = sxy / sxx * 1e6
            self._drift_ppm = max(-self._max_drift, min(self._max_drift, slope_ppm))
        return ClockEstimate(ref, mean_offset, self._drift_ppm, count, best[0].delay_us)
