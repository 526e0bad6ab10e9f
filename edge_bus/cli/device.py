"""``edge-bus device``: talk to the scanner's controller board over firmware-bridge, or simulate one."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape

from edge_bus.cli.common import console, err_console, fail, run_or_exit, terminated_as_error
from firmware_bridge.errors import SimulatorError
from firmware_bridge.tools import device_report, monitor_device, ping_device, run_simulator

T = TypeVar("T")

__all__ = ["app"]

app = typer.Typer(
    help="Talk to the scanner's controller board (firmware-bridge protocol over serial, socket:// or sim://), "
    "or run a simulated board on a pseudo-terminal.",
    no_args_is_help=True,
)

Port = Annotated[
    str,
    typer.Argument(
        help="Serial port or URL: /dev/ttyACM0, COM3, socket://host:port, /dev/pts/N from `device simulate --pty`, "
        "or sim://?fps=30&drift_ppm=50 (in-process simulator)."
    ),
]
def _finite_timeout(value: float) -> float:
    if not math.isfinite(value):  # inf passed min=0.01, then failed in the bridge as a link error (exit 6)
        raise typer.BadParameter(f"{value} is not a number of seconds")
    return value


Timeout = Annotated[float, typer.Option("--timeout", min=0.01, callback=_finite_timeout,
                                        help="Seconds to wait for each answer from the board.")]


@app.command("ping")
def ping_cmd(
    port: Port,
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="Number of round trips.")] = 10,
    timeout: Timeout = 2.0,
) -> None:
    """Time TIME_SYNC round trips to the board (p50 / p99 / max)."""
    report = run_or_exit(ping_device, port, count=count, timeout=timeout)
    lost = f", {report.lost} lost" if report.lost else ""
    console.print(
        f"{report.url}: {len(report.rtts_s)} round trips{lost}, p50 {report.p50_ms:.3f} ms, "
        f"p99 {report.p99_ms:.3f} ms, max {report.max_ms:.3f} ms"
    )


@app.command("info")
def info_cmd(port: Port, timeout: Timeout = 2.0) -> None:
    """Handshake with the board and show its id, firmware, protocol version and clock offset."""
    report = run_or_exit(device_report, port, timeout=timeout)
    device = report.device
    major, minor = device.protocol_version
    console.print(f"port       {escape(report.url)}")
    console.print(f"device id  0x{device.device_id:08x}")
    console.print(f"firmware   {device.firmware_version}")
    console.print(f"protocol   {major}.{minor}")
    console.print(f"clock      {device.clock_hz} Hz")
    if report.clock is not None:
        console.print(
            f"offset     {report.clock.offset_us / 1e6:+.6f} s (device - host), "
            f"best round trip {report.clock.min_delay_us:.0f} µs over {report.clock.samples_used} samples"
        )


@app.command("monitor")
def monitor_cmd(
    port: Port,
    count: Annotated[int | None, typer.Option("--count", "-n", min=1, help="Stop after N messages.")] = None,
    seconds: Annotated[float | None, typer.Option("--seconds", "-s", min=0.0, help="Stop after S seconds.")] = None,
    timeout: Timeout = 2.0,
) -> None:
    """Print every message from the board as it arrives (Ctrl-C, --count or --seconds stops it).

    After the handshake one '#' line sums the board up; frames the link drops (bad CRC, unknown type,
    short payload) are counted in the closing line."""
    summary = run_or_exit(monitor_device, port, lambda line: console.print(escape(line)), count=count,
                          seconds=seconds, timeout=timeout)
    c = summary.counters
    err_console.print(
        f"{summary.messages} messages in {summary.seconds:.1f} s; CRC errors {c.crc_errors}, "
        f"other bad frames {c.malformed + c.oversize}, unknown types {c.unknown_types}, "
        f"short payloads {c.bad_messages}, sequence gaps {c.seq_gaps} ({c.frames_lost} frames lost), "
        f"reconnects {c.reconnects}"
    )


@app.command("simulate")
def simulate_cmd(
    pty: Annotated[bool, typer.Option("--pty", help="Serve the simulated board on a new pseudo-terminal (the only "
                                      "mode, on by default; in-process, use the URL sim://?fps=30). \\[default: on]",
                                      show_default=False)] = True,
    link: Annotated[
        str | None,
        typer.Option("--link", help="Also make this path a symbolic link to the pseudo-terminal (removed at the "
                     "end). Every start gets a new /dev/pts/N: give `stream --bridge` the link, and it follows "
                     "a restarted simulator when it reconnects."),
    ] = None,
    fps: Annotated[float, typer.Option("--fps", min=0.0, help="FRAME_META per second (device clock).")] = 30.0,
    drift_ppm: Annotated[float, typer.Option("--drift-ppm", help="Device clock error in ppm (+ = fast).")] = 0.0,
    jitter_ms: Annotated[float, typer.Option("--jitter-ms", min=0.0, help="Random send delay, 0..J ms.")] = 0.0,
    corrupt: Annotated[
        float, typer.Option("--corrupt", min=0.0, max=1.0, help="Probability of corrupting an outgoing frame.")
    ] = 0.0,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (jitter, corruption).")] = None,
    freeze_every: Annotated[
        float, typer.Option("--freeze-every", min=0.0, help="Freeze the image for 1 s every S seconds (0 = never).")
    ] = 0.0,
    disconnect_every: Annotated[
        float, typer.Option("--disconnect-every", min=0.0, help="Go silent for 0.5 s every S seconds (0 = never).")
    ] = 0.0,
    seconds: Annotated[
        float | None,
        typer.Option("--seconds", "-s", help="Stop after S seconds, > 0 \\[default: run until Ctrl-C]."),
    ] = None,
) -> None:
    """Run a simulated controller board; prints the /dev/pts/N path to give to `device ping` or `stream`
    (a new one at every start: --link gives a path that stays)."""
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):  # a usage error: exit 2, not 6
        raise fail(f"--seconds must be > 0, got {seconds:g} (leave it out to run until Ctrl-C)", 2)
    def ready(path: str) -> None:
        typer.echo(path)
        sys.stdout.flush()
        also = f" (and {escape(link)})" if link else ""
        err_console.print(f"simulated controller on {escape(path)}{also} at {fps:g} fps; Ctrl-C to stop")

    with terminated_as_error():  # SIGTERM unwinds too, so --link is removed (else it names a reused /dev/pts/N)
        summary = run_or_exit(
            _options_checked(run_simulator),
            fps=fps,
            drift_ppm=drift_ppm,
            jitter_ms=jitter_ms,
            corrupt=corrupt,
            seed=seed,
            freeze_every_s=freeze_every,
            disconnect_every_s=disconnect_every,
            seconds=seconds,
            on_ready=ready,
            link=link,
        )
    stats = summary.stats
    err_console.print(
        f"stopped after {summary.seconds:.1f} s: {stats.frames_sent} frames, {stats.syncs_answered} time syncs, "
        f"{stats.results_received} results, {stats.alerts_sent} alerts"
    )


def _options_checked(run: Callable[..., T]) -> Callable[..., T]:
    """``run``, with an invalid simulator option (a value out of range) a usage error: exit 2, not 6."""
    def checked(**kwargs: Any) -> T:
        try:
            return run(**kwargs)
        except SimulatorError as exc:
            raise fail(str(exc), 2) from None

    return checked
