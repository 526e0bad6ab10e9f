"""Clock model: NTP arithmetic, minimum-RTT filter, drift tracking, and end-to-end accuracy with jitter."""

from __future__ import annotations

import random
import time

import pytest

from firmware_bridge import HostBridge, LinkConfig, SimConfig, SimulatedDevice
from firmware_bridge.clock import ClockEstimator, SyncSample
from firmware_bridge.sim_config import DeviceClock


def exchange(clock: DeviceClock, t1: float, out_s: float, back_s: float, hold_s: float = 20e-6) -> SyncSample:
    """A TIME_SYNC exchange with the given one-way delays against a known device clock."""
    t2 = clock.now_us(t1 + out_s)
    t3 = clock.now_us(t1 + out_s + hold_s)
    return SyncSample(t1, t2, t3, t1 + out_s + hold_s + back_s)


def test_ntp_offset_and_delay_of_a_symmetric_exchange() -> None:
    sample = SyncSample(t1_host_s=10.0, t2_device_us=5_000_100, t3_device_us=5_000_150, t4_host_s=10.0003)
    # by hand: ((5000100 − 10000000) + (5000150 − 10000300)) / 2 and (300 − 50)
    assert sample.offset_us == pytest.approx(-5_000_025.0)
    assert sample.delay_us == pytest.approx(250.0)
    assert sample.host_mid_s == pytest.approx(10.00015)


def test_min_rtt_filter_ignores_asymmetric_slow_samples() -> None:
    clock = DeviceClock(host_origin_s=100.0, boot_us=7e9, drift_ppm=0.0)
    rng = random.Random(1)
    estimator = ClockEstimator()
    for i in range(40):
        back = 100e-6 + rng.uniform(0, 5e-3)  # the way back is slow and jittery, the way out is not
        estimator.add(exchange(clock, 200.0 + i * 0.01, 100e-6, back))
    estimate = estimator.estimate
    assert estimate is not None
    error_us = (estimate.device_to_host(clock.now_us(201.0)) - clock.to_host(clock.now_us(201.0))) * 1e6
    assert abs(error_us) < 150  # a plain mean over all samples would be ~1250 µs off
    assert estimate.min_delay_us < 500


def test_drift_is_tracked_over_a_long_window() -> None:
    clock = DeviceClock(host_origin_s=0.0, boot_us=1e9, drift_ppm=80.0)
    rng = random.Random(2)
    estimator = ClockEstimator(window=64)
    for i in range(64):
        estimator.add(exchange(clock, 10.0 + i, 50e-6 + rng.uniform(0, 1e-3), 50e-6 + rng.uniform(0, 1e-3)))
    estimate = estimator.estimate
    assert estimate is not None
    assert estimate.drift_ppm == pytest.approx(80.0, abs=10.0)
    t = 80.0  # 6 s past the last sample: a drift-free model would be off by 80 ppm × 40 s = 3.2 ms
    error_ms = (estimate.device_to_host(clock.now_us(t)) - t) * 1e3
    assert abs(error_ms) < 0.5
    assert estimate.host_to_device_us(t) == pytest.approx(clock.now_us(t), abs=500)


@pytest.mark.parametrize("seed", range(5))
def test_drift_is_tracked_when_the_connect_burst_was_faster_than_everything_after(seed: int) -> None:
    """An idle link at connect (16 quick exchanges), then one exchange a second through a busy host
    (0.2–3 ms each way): the burst must not hold every place in the fit, or the drift is never fitted."""
    clock = DeviceClock(host_origin_s=0.0, boot_us=3e9, drift_ppm=300.0)
    rng = random.Random(seed)
    estimator = ClockEstimator()
    for i in range(16):
        estimator.add(exchange(clock, 5.0 + i * 0.002, 60e-6, 60e-6))
    for i in range(1, 11):
        estimator.add(exchange(clock, 5.0 + i, 200e-6 + rng.uniform(0, 3e-3), 200e-6 + rng.uniform(0, 3e-3)))
    estimate = estimator.estimate
    assert estimate is not None
    t = 15.5  # 10.5 s after the burst: its offset alone would be 300 ppm × 10.5 s = 3.2 ms off
    error_ms = (estimate.device_to_host(clock.now_us(t)) - t) * 1e3
    assert abs(error_ms) < 0.5, f"clock error {error_ms:.3f} ms, drift {estimate.drift_ppm:.0f} ppm"


def test_reset_keeps_the_last_estimate_until_new_samples() -> None:
    clock = DeviceClock(0.0, 5e8, 0.0)
    estimator = ClockEstimator()
    first = estimator.add(exchange(clock, 1.0, 1e-4, 1e-4))
    estimator.reset()
    assert estimator.estimate == first and estimator.sample_count == 0
    with pytest.raises(ValueError, match="t4 before t1"):
        estimator.add(SyncSample(2.0, 0, 0, 1.0))


def test_offset_error_below_half_a_millisecond_with_1ms_jitter(fast_link: LinkConfig) -> None:
    """The simulator's own drifting clock is the truth; 1 ms of jitter on everything the board sends."""
    config = SimConfig(fps=30, drift_ppm=50, jitter_ms=1.0, seed=11)
    with SimulatedDevice(config) as device, HostBridge.open(device.url, link_config=fast_link) as bridge:
        errors_ms = []
        deadline = time.perf_counter() + 1.5  # spans background TIME_SYNCs (one per second)
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            errors_ms.append((bridge.device_to_host(device.board.clock.now_us(t)) - t) * 1e3)
            meta = bridge.next_meta(0.1)
            assert meta is not None
            errors_ms.append((meta.t_acquired_host - device.board.clock.to_host(meta.t_device_us)) * 1e3)
        estimate = bridge.clock
    assert estimate is not None and estimate.samples_used >= 3
    assert max(abs(e) for e in errors_ms) < 0.5, f"worst clock error {max(map(abs, errors_ms)):.3f} ms"


def test_no_acquisition_is_placed_after_its_frame_meta_arrived(fast_link: LinkConfig) -> None:
    """Between TIME_SYNCs the estimate's error grows (a 1000 ppm clock before its drift is fitted:
    up to a millisecond) past a FRAME_META's time on the wire (0.4-0.8 ms here). Unclamped, 61 of 90
    acquisitions landed after their own FRAME_META arrived; a CI run's glass to glass read 5.104 ms
    against an end to end of 5.155 ms for the same frame."""
    config = SimConfig(fps=60, drift_ppm=1000, seed=11)
    with SimulatedDevice(config) as device, HostBridge.open(device.url, link_config=fast_link) as bridge:
        metas = [m for m in (bridge.next_meta(0.1) for _ in range(90)) if m is not None]
    assert len(metas) >= 80
    assert all(m.t_acquired_host <= m.t_received_host for m in metas)
    assert sum(m.t_acquired_host < m.t_received_host for m in metas) > 0  # a bound, not a replacement


def _exchange(t1_s: float, true_offset_us: float, out_us: float, back_us: float = 0.0) -> SyncSample:
    """One TIME_SYNC exchange that spends ``out_us`` to the device and ``back_us`` back, answered at
    once: its offset reads true_offset + (out - back) / 2 and its delay out + back."""
    t2 = round(t1_s * 1e6 + out_us + true_offset_us)
    return SyncSample(t1_s, t2, t2, t1_s + (out_us + back_us) / 1e6)


def test_quick_exchanges_outweigh_slow_ones_by_the_documented_weight() -> None:
    """Weights 1 / (δ + 100 µs)²: delays 0, 400, 800 µs (offsets read 1000, 1200, 1400) give
    (1000/100² + 1200/500² + 1400/900²) / (1/100² + 1/500² + 1/900²) = 1012.3 µs, where equal
    weights would give 1200 and the minimum delay is 0 µs."""
    est = ClockEstimator()
    for i, delay in enumerate((800.0, 0.0, 400.0)):
        est.add(_exchange(10.0 + 0.1 * i, 1000.0, delay))
    e = est.estimate
    assert e is not None and e.samples_used == 3
    assert e.offset_us == pytest.approx(1012.29, abs=0.05)
    assert e.min_delay_us == pytest.approx(0.0, abs=1.0)
    assert e.drift_ppm == 0.0  # 0.2 s span: too short to fit a drift


def test_the_minimum_rtt_filter_keeps_the_quickest_share() -> None:
    """keep 0.15 of the window (at least 3): 20 samples in one stretch → the 3 quickest, 40 → 6."""
    for n, kept in ((20, 3), (40, 6)):
        est = ClockEstimator()
        for i in range(n):
            e = est.add(_exchange(5.0 + 0.01 * i, 250.0, 50.0 + 10.0 * ((i * 7) % n)))
        assert e.samples_used == kept
        assert e.min_delay_us == pytest.approx(50.0, abs=1.0)
