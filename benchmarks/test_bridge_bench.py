"""firmware_bridge benchmarks: link round trip over a pseudo-terminal, clock accuracy under jitter.

    pytest benchmarks/test_bridge_bench.py --benchmark-enable    # timed, many rounds
    pytest benchmarks/test_bridge_bench.py --benchmark-disable   # one round each, still checks the numbers

p50/p99 are recorded in ``benchmark.extra_info`` (saved with ``--benchmark-json``).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_bus.bench_gates import Gate
from firmware_bridge import HostBridge, LinkConfig, SimConfig, SimulatedDevice
from firmware_bridge.tools import percentile

REPO = Path(__file__).resolve().parents[1]
LINK = LinkConfig(heartbeat_s=0.5, link_timeout_s=2.0)
RTT_TARGET_P99_MS = 1.0
CLOCK_TARGET_MS = 0.5


@pytest.fixture(scope="module")
def pty_simulator() -> Iterator[str]:
    """``edge-bus device simulate --pty`` as its own process (like a board on a USB port)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    code = "from edge_bus.cli.device import app; app()"
    args = [sys.executable, "-c", code, "simulate", "--pty", "--fps", "30", "--seconds", "120"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=REPO)
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/pts/"), f"simulator printed {path!r}"
        yield path
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


_ECHO = """
import os, sys, tty
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
tty.setraw(fd)
sys.stdout.write("ready\\n"); sys.stdout.flush()
while True:
    data = os.read(fd, 256)
    if not data:
        break
    os.write(fd, data)
"""


def raw_pty_echo_rtts(count: int, size: int = 24) -> list[float]:
    """Seconds per round trip of ``size`` bytes through a pty to a bare echo process (no framing, no
    threads, no Python objects on either side): the floor under the bridge's round trip on this machine."""
    import pty
    import tty

    master, slave = pty.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    proc = subprocess.Popen([sys.executable, "-c", _ECHO, os.ttyname(slave)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        payload, rtts = b"\x55" * size, []
        for _ in range(count):
            t0 = time.perf_counter()
            os.write(master, payload)
            got = 0
            while got < size:
                got += len(os.read(master, 256))
            rtts.append(time.perf_counter() - t0)
            time.sleep(0.001)  # like the ping loop: one exchange at a time, not a flood
        return rtts
    finally:
        proc.kill()
        proc.communicate(timeout=10)  # reaps it and closes its stdout pipe
        os.close(master)
        os.close(slave)


def test_pty_round_trip(benchmark: Any, pty_simulator: str, record: Callable[..., None], gate_log: list[Gate]) -> None:
    """TIME_SYNC round trip host → pty → simulator process → pty → host (``HostBridge.ping``).

    The p99 target (1 ms) is logged as a gate but not asserted: on a loaded machine the tail is
    set by the OS scheduler, not by this code. The median is asserted. A bare pty echo between two
    processes, measured before and after in the same run, is recorded beside it as the machine's floor.
    """
    floor = raw_pty_echo_rtts(250)
    with HostBridge.open(pty_simulator, link_config=LINK) as bridge:
        wire: list[float] = []
        call: list[float] = []

        def ping() -> None:
            start = time.perf_counter()
            wire.append(bridge.ping())
            call.append(time.perf_counter() - start)

        benchmark.pedantic(ping, rounds=2000, warmup_rounds=50, iterations=1)
        while len(call) < 500:  # --benchmark-disable ran one round: measure enough for a p99 anyway
            ping()
        counters = bridge.counters()
    floor += raw_pty_echo_rtts(250)
    p50 = statistics.median(wire) * 1e3
    p99 = percentile(wire, 99) * 1e3
    floor_p50, floor_p99 = statistics.median(floor) * 1e3, percentile(floor, 99) * 1e3
    info: dict[str, object] = {
        "wire_rtt_p50_ms": p50,
        "wire_rtt_p99_ms": p99,
        "call_p50_ms": statistics.median(call) * 1e3,
        "call_p99_ms": percentile(call, 99) * 1e3,
        "samples": len(call),
        "raw_pty_echo_p50_ms": floor_p50,
        "raw_pty_echo_p99_ms": floor_p99,
        "target_p99_ms": RTT_TARGET_P99_MS,
        "timed": "one HostBridge.ping() call (wire_* = reader time stamp - send time stamp)",
    }
    record(benchmark, **info)
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()))
    gate_log.append(
        Gate(
            "bridge_pty_rtt_p99",
            p99,
            RTT_TARGET_P99_MS,
            p99 < RTT_TARGET_P99_MS,
            f"pty round trip p99 {p99:.3f} ms vs target {RTT_TARGET_P99_MS:g} ms (p50 {p50:.3f} ms); "
            f"a bare pty echo between two processes in the same run: p50 {floor_p50:.3f} ms, p99 {floor_p99:.3f} ms",
            "the controller link must not add a visible delay to a 30 fps frame; logged, not asserted",
            unit="ms",
            required=False,
        )
    )
    assert counters.crc_errors == 0 and counters.reconnects == 0
    assert len(floor) == 500 and floor_p99 >= floor_p50 > 0
    assert p50 < RTT_TARGET_P99_MS  # p99 depends on how busy the machine is: recorded above


def test_clock_offset_after_sync_with_1ms_jitter(
    benchmark: Any, record: Callable[..., None], gate_log: list[Gate]
) -> None:
    """Open (HELLO + 16 TIME_SYNC) against a board with 1 ms jitter and 50 ppm drift; error vs its true clock."""
    config = SimConfig(fps=30, drift_ppm=50, jitter_ms=1.0, seed=4)
    errors_ms: list[float] = []
    with SimulatedDevice(config) as device:

        def sync_and_measure() -> None:
            with HostBridge.open(device.url, link_config=LINK) as bridge:
                for _ in range(20):
                    t = time.perf_counter()
                    errors_ms.append(abs(bridge.device_to_host(device.board.clock.now_us(t)) - t) * 1e3)

        benchmark.pedantic(sync_and_measure, rounds=10, warmup_rounds=1, iterations=1)
        while len(errors_ms) < 100:
            sync_and_measure()
    worst = max(errors_ms)
    info: dict[str, object] = {
        "offset_error_p50_ms": statistics.median(errors_ms),
        "offset_error_max_ms": worst,
        "jitter_ms": config.jitter_ms,
        "drift_ppm": config.drift_ppm,
        "target_ms": CLOCK_TARGET_MS,
        "timed": "HostBridge.open(): HELLO + 16 TIME_SYNC, then 20 error measurements",
    }
    record(benchmark, **info)
    print(" ".join(f"{k}={v:.3f}" for k, v in info.items() if isinstance(v, float)))
    gate = Gate(
        "bridge_clock_offset_max",
        worst,
        CLOCK_TARGET_MS,
        worst < CLOCK_TARGET_MS,
        f"clock offset error after sync, worst of {len(errors_ms)}: {worst:.3f} ms vs {CLOCK_TARGET_MS:g} ms",
        "FRAME_META must map to host time well inside one 33 ms frame; 1 ms jitter, 50 ppm drift injected",
    )
    gate_log.append(gate)
    assert gate.passed, gate.message
