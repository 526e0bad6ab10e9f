"""What ``edge-bus device ...`` runs: one function per command, each returning a typed report."""

from __future__ import annotations

import queue
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from firmware_bridge.clock import ClockEstimate
from firmware_bridge.errors import LinkDown, LinkTimeout
from firmware_bridge.host import HostBridge
from firmware_bridge.host_types import HelloInfo
from firmware_bridge.link_types import LinkCounters, Received
from firmware_bridge.messages import (
    Ack,
    Alert,
    ErrorMsg,
    FrameMeta,
    Heartbeat,
    HelloAck,
    Message,
    Nack,
    ProbeState,
    TimeSyncResponse,
    one_line,
)
from firmware_bridge.sim_config import SimConfig
from firmware_bridge.sim_runtime import SimRunSummary, simulate_pty

__all__ = [
    "DeviceReport",
    "MonitorSummary",
    "PingReport",
    "describe",
    "device_report",
    "monitor_device",
    "percentile",
    "ping_device",
    "run_simulator",
]


def percentile(values: list[float] | tuple[float, ...], q: float) -> float:
    """The ``q``-th percentile (0..100), interpolated linearly between the two nearest ranks: the
    definition of ``numpy.percentile`` and of every ``p99_ms`` in latency.json and ``edge-bus bench``,
    so a ``device ping`` p99 and a stream's p99 are the same statistic."""
    if not values:
        raise ValueError("percentile of no values")
    return float(np.percentile(values, q))


@dataclass(frozen=True, slots=True)
class PingReport:
    url: str
    device: HelloInfo
    rtts_s: tuple[float, ...]
    lost: int = 0

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.rtts_s) * 1e3

    @property
    def p99_ms(self) -> float:
        return percentile(self.rtts_s, 99) * 1e3

    @property
    def max_ms(self) -> float:
        return max(self.rtts_s) * 1e3


@dataclass(frozen=True, slots=True)
class DeviceReport:
    url: str
    device: HelloInfo
    clock: ClockEstimate | None
    counters: LinkCounters


@dataclass(frozen=True, slots=True)
class MonitorSummary:
    messages: int
    seconds: float
    counters: LinkCounters


def ping_device(url: str, *, count: int = 10, timeout: float = 2.0, interval_s: float = 0.0) -> PingReport:
    """Open ``url`` and time ``count`` TIME_SYNC round trips; lost ones are counted, all lost is an error.
    (The handshake's own burst of TIME_SYNCs is the default one: with a burst of 1, a single lost answer
    failed the whole command on a noisy link, blaming the firmware.) A link that goes down and is not
    back within ``timeout`` is a :class:`LinkDown`: unplugged mid-run, every ping failed at once and the
    command reported 26,324 "lost" and exit 0. Pings not sent while it was down are not counted."""
    with HostBridge.open(url, timeout=timeout) as bridge:
        rtts: list[float] = []
        lost = 0
        down_since: float | None = None  # the link has been down (pings not even sent) since then
        while len(rtts) + lost < count:
            try:
                rtts.append(bridge.ping())
                down_since = None
            except LinkDown:  # not sent, so not a lost ping: wait for the link to come back
                now = time.perf_counter()
                down_since = down_since or now
                if now - down_since >= timeout:
                    raise LinkDown(f"the link to {url} went down after {len(rtts)} round trips and was not back "
                                   f"within {timeout:g} s: check the cable and the board") from None
                time.sleep(0.01)
                continue
            except LinkTimeout:  # sent, not answered: the link was up, so an outage after it is a new one
                lost += 1
                down_since = None
            if interval_s:
                time.sleep(interval_s)
        if not rtts:
            raise LinkTimeout(f"all {count} pings to {url} were lost: check the cable and the board")
        return PingReport(url, bridge.device_info, tuple(rtts), lost)


def device_report(url: str, *, timeout: float = 2.0) -> DeviceReport:
    """Open ``url``, handshake, synchronise clocks, and report who answered."""
    with HostBridge.open(url, timeout=timeout) as bridge:
        return DeviceReport(url, bridge.device_info, bridge.clock, bridge.counters())


def monitor_device(
    url: str,
    on_line: Callable[[str], None],
    *,
    count: int | None = None,
    seconds: float | None = None,
    timeout: float = 2.0,
) -> MonitorSummary:
    """Print (via ``on_line``) every valid message from the device after the handshake, until
    ``count`` messages or ``seconds`` (after the handshake) pass. The handshake itself (HELLO_ACK, the
    TIME_SYNC burst) is summarised in one ``#`` line; frames the link drops (bad CRC or COBS, unknown type, short
    payload) are not messages: they are counted in the summary's counters."""
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    shown = 0
    with HostBridge.open(url, timeout=timeout) as bridge:
        # ``seconds`` and the times shown count from here: a handshake that took 3 s on a noisy link
        # left a --seconds 3 monitor nothing, and it said "0 messages in 3.0 s"
        start = time.perf_counter()
        info = bridge.device_info
        major, minor = info.protocol_version
        on_line(f"# connected: device 0x{info.device_id:08x}, firmware {info.firmware_version}, protocol "
                f"{major}.{minor}, clock {info.clock_hz} Hz (handshake and clock sync done)")
        bridge.on_message(lambda received: lines.put(describe(received, start)))
        bridge.on_status(lambda text: lines.put(f"# {text}"))
        try:
            while count is None or shown < count:
                wait = 0.2
                if seconds is not None:
                    wait = min(wait, seconds - (time.perf_counter() - start))
                    if wait <= 0:
                        break
                try:
                    line = lines.get(timeout=wait)
                except queue.Empty:
                    continue
                on_line(line)
                if not line.startswith("#"):
                    shown += 1
        except KeyboardInterrupt:  # Ctrl-C is how a monitor is usually stopped: still give the summary
            pass
        return MonitorSummary(shown, time.perf_counter() - start, bridge.counters())


def run_simulator(
    *,
    fps: float = 30.0,
    drift_ppm: float = 0.0,
    jitter_ms: float = 0.0,
    corrupt: float = 0.0,
    seed: int | None = None,
    freeze_every_s: float = 0.0,
    disconnect_every_s: float = 0.0,
    seconds: float | None = None,
    on_ready: Callable[[str], None] | None = None,
    link: str | None = None,
) -> SimRunSummary:
    """Run a simulated controller on a new pseudo-terminal; ``on_ready`` gets its /dev/pts/N path
    (default: print it and flush, so a parent process can read it from a pipe). ``link``: a stable
    path (a symbolic link to the pseudo-terminal) that a restarted simulator takes over."""
    config = SimConfig(
        fps=fps,
        drift_ppm=drift_ppm,
        jitter_ms=jitter_ms,
        corrupt=corrupt,
        seed=seed,
        freeze_every_s=freeze_every_s,
        disconnect_every_s=disconnect_every_s,
    )
    return simulate_pty(config, seconds, on_ready or _print_flush, link=link)


def _print_flush(text: str) -> None:
    print(text, flush=True)


def describe(received: Received, t0: float = 0.0) -> str:
    """One line for one received message (``monitor``)."""
    header = received.header
    prefix = f"{received.t_rx - t0:9.3f}s #{header.seq:<5d} {type(received.message).__name__:<16}"
    return f"{prefix} {_fields(received.message)}"


def _fields(m: Message) -> str:
    if isinstance(m, FrameMeta):
        frozen = " FROZEN" if m.frozen else ""
        where = f"probe={m.probe_id} depth={m.depth_mm:g}mm gain={m.gain_db:g}dB"
        return f"frame={m.frame_counter} t={m.t_acq_us}us {where}{frozen}"
    if isinstance(m, ProbeState):
        return f"probe={m.probe_id} depth={m.depth_mm:g}mm gain={m.gain_db:g}dB frozen={m.frozen}"
    if isinstance(m, Alert):
        return f"code={m.code} frame={m.frame_counter} run={m.run_length} malignancy={m.malignancy:.2f}"
    if isinstance(m, Heartbeat):
        return f"t={m.sender_time_us}us status=0x{m.status:x}"
    if isinstance(m, TimeSyncResponse):
        return f"id={m.sync_id} t2={m.t2_us}us t3={m.t3_us}us"
    if isinstance(m, HelloAck):
        firmware = f"{m.fw_major}.{m.fw_minor}.{m.fw_patch}"
        return f"device=0x{m.device_id:08x} fw={firmware} proto={m.proto_major}.{m.proto_minor} clock={m.clock_hz}Hz"
    if isinstance(m, Ack | Nack):
        return f"seq={m.seq} type=0x{m.msg_type:02x}" + (f" reason={m.reason}" if isinstance(m, Nack) else "")
    if isinstance(m, ErrorMsg):
        return f"code={m.code} {one_line(m.text)}"
    return repr(m)
