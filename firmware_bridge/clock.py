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

The minimum-RTT choice is made per stretch of time, not over the whole window at once: the window
is cut into ``segments`` equal stretches and the lowest-delay share of each is kept. Chosen over the
whole window, the connect-time burst (16 exchanges on an idle link, milliseconds apart) could hold
every place in the fit while later exchanges, slowed by a busy host, were all passed over: the fit
then never spanned the time a drift needs and the mapping went stale, 300 ppm of drift growing
into milliseconds of error.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

__all__ = ["ClockEstimate", "ClockEstimator", "SyncSample"]

_US = 1e6
_DELAY_FLOOR_US = 100.0  # keeps a near-zero round trip from taking all the weight


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


MAX_DRIFT_PPM = 1000.0
"""The largest oscillator error the clock fit follows (a board's crystal is off by 10-100 ppm); a
larger fitted drift is clamped, so the simulator refuses to run beyond it."""

class ClockEstimator:
    """Minimum-RTT filtered offset and linear drift over a sliding window of :class:`SyncSample`.

    ``keep`` is the fraction of the samples (lowest delay first, at least ``min_keep`` samples) used
    for the fit, taken from each of ``segments`` equal stretches of the window's time in turn; drift
    is fitted only when the kept samples span ``min_span_s`` seconds, otherwise the last fitted drift
    (initially 0) is kept. Drift is clamped to ±``max_drift_ppm``.
    """

    def __init__(
        self,
        window: int = 64,
        keep: float = 0.15,
        min_keep: int = 3,
        min_span_s: float = 2.0,
        max_drift_ppm: float = MAX_DRIFT_PPM,
        segments: int = 4,
    ) -> None:
        if window < 1 or not 0.0 < keep <= 1.0:
            raise ValueError("window must be >= 1 and keep in (0, 1]")
        self._samples: deque[SyncSample] = deque(maxlen=window)
        self._keep = keep
        self._min_keep = min_keep
        self._min_span_s = min_span_s
        self._max_drift = max_drift_ppm
        self._segments = max(1, segments)
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

    def forget(self) -> None:
        """Forget the samples and the estimate: the device's clock restarted, so the old mapping is wrong
        (by the device's former uptime) and no mapping is better until the next sample."""
        with self._lock:
            self._samples.clear()
            self._estimate = None

    def add(self, sample: SyncSample) -> ClockEstimate:
        """Add one exchange and return the updated estimate."""
        if sample.t4_host_s < sample.t1_host_s:
            raise ValueError("sync sample has t4 before t1")
        with self._lock:
            self._samples.append(sample)
            self._estimate = self._fit()
            return self._estimate

    def _select(self) -> list[SyncSample]:
        """The lowest-delay ``keep`` share of each time segment, at least ``min_keep`` of each (all of a
        segment holding fewer)."""
        samples = list(self._samples)
        t0, t1 = samples[0].host_mid_s, samples[-1].host_mid_s
        if t1 - t0 < self._min_span_s:  # too short for a drift: one segment, plain minimum-RTT filter
            segments = [samples]
        else:
            width = (t1 - t0) / self._segments
            segments = [[] for _ in range(self._segments)]
            for s in samples:
                segments[min(self._segments - 1, int((s.host_mid_s - t0) / width))].append(s)
        best = []
        for seg in segments:
            if seg:
                ranked = sorted(seg, key=lambda s: s.delay_us)
                best += ranked[: max(self._min_keep, math.ceil(len(seg) * self._keep))]
        return sorted(best, key=lambda s: s.delay_us)

    def _fit(self) -> ClockEstimate:
        """Weighted least squares, weight 1 / (δ + 100 µs)²: a sample's offset can be off by up to δ / 2,
        so the quick exchanges pin the line and the slow ones, spread over time, still set its slope."""
        best = self._select()
        count = len(best)
        hosts = [s.host_mid_s for s in best]
        offsets = [s.offset_us for s in best]
        weights = [1.0 / (s.delay_us + _DELAY_FLOOR_US) ** 2 for s in best]
        total = math.fsum(weights)
        ref = math.fsum(w * h for w, h in zip(weights, hosts, strict=True)) / total
        mean_offset = math.fsum(w * o for w, o in zip(weights, offsets, strict=True)) / total
        if count >= 3 and max(hosts) - min(hosts) >= self._min_span_s:
            xs = [(h - ref) * _US for h in hosts]
            sxx = math.fsum(w * x * x for w, x in zip(weights, xs, strict=True))
            sxy = math.fsum(w * x * (o - mean_offset) for w, x, o in zip(weights, xs, offsets, strict=True))
            slope_ppm = sxy / sxx * 1e6
            self._drift_ppm = max(-self._max_drift, min(self._max_drift, slope_ppm))
        return ClockEstimate(ref, mean_offset, self._drift_ppm, count, best[0].delay_us)
