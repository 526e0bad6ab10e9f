"""``edge-bus doctor``: one command that says whether this machine is ready — PASS or FAIL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from edge_bus.cli.common import console, err_console, fail, parse_capture_size, run_or_exit
from edge_bus.doctor import DEFAULT_BUDGET_MS, DoctorOptions, DoctorReport, run_doctor

__all__ = ["doctor_cmd"]


def doctor_cmd(
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the report as JSON here.", show_default=False)
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write a one-page HTML report here.", show_default=False)
    ] = None,
    report: Annotated[
        bool,
        typer.Option(
            "--report/--no-report",
            help="Without --json/--html, write both to runs/doctor-<host>-<time>.json/.html (to attach to a "
            "ticket). \\[default: on]",
            show_default=False,
        ),
    ] = True,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            "-s",
            help="Also check this source delivers frames, then measure the end-to-end latency on it against the "
            "budget (a capture device as it delivers, a file paced at its fps): at its real frame size, which "
            "the 320x320 demo clip does not show. A capture device (0, /dev/video2) or a file.",
            show_default=False,
        ),
    ] = None,
    bridge: Annotated[
        str | None,
        typer.Option(
            help="Also ping the controller board: /dev/ttyACM0, COM3, socket://host:port or sim://, and "
            "time the link round trip.",
            show_default=False,
        ),
    ] = None,
    budget_ms: Annotated[
        float,
        typer.Option(
            help="End-to-end p99 latency budget in ms. \\[default: 33.3, one frame at 30 fps]", show_default=False
        ),
    ] = DEFAULT_BUDGET_MS,
    model: Annotated[
        str | None,
        typer.Option(help="Model name, folder or manifest.json. \\[default: emt_net]", show_default=False),
    ] = None,
    device: Annotated[str, typer.Option(help="OpenVINO device: CPU, GPU, NPU or AUTO.")] = "CPU",
    max_frames: Annotated[
        int, typer.Option(help="Only the first N frames of the validation clip (0: all 270) — a quicker check.")
    ] = 0,
    capture_size: Annotated[str | None, typer.Option(help="With a capture device --source: its size WxH, as you "
                                                        "will stream it, e.g. 1920x1080.", show_default=False)] = None,
    capture_fps: Annotated[float | None, typer.Option(help="With a capture device --source: its fps. "
                                                      "\\[default: the device's]",
                                                      show_default=False)] = None,
    capture_format: Annotated[str | None, typer.Option(
        help="With a capture device --source: its pixel format, e.g. MJPG (a USB 2 grabber's 1080p at full rate).",
        show_default=False)] = None,
) -> None:
    """Check that this machine is ready, in one command: PASS or FAIL, and a report to attach to a ticket.

    Checks versions, devices, CPU, disk, capture devices and serial ports, the model files'
    sha256, then runs the bundled validation clip and compares it with the model's golden reference (class
    agreement >= 99%, mask IoU >= 0.95, against the reference made with this CPU's INT8 kernel class;
    90% and 0.80 against another class's where the model ships none for it), the end-to-end
    latency with the budget (--budget-ms), and the frames dropped (more than 5%, and more than 2, fails:
    the machine falls behind the source).

    Prints PASS or FAIL; exits 0 only when every check passes, and says what to do for each failure.
    """
    width, height = parse_capture_size(capture_size)
    options = DoctorOptions(
        model=model,
        source=source,
        bridge=bridge,
        capture_width=width or 0,
        capture_height=height or 0,
        capture_fps=capture_fps or 0.0,
        capture_format=capture_format or "",
        budget_ms=budget_ms,
        device=device,
        max_frames=max_frames,
        json_path=json_path,
        html_path=html,
        report=report,
    )
    err_console.print("[dim]checking… (the validation clip takes about 20 s)[/]")
    result = run_or_exit(run_doctor, options)
    print_doctor(result)
    for path in result.files:
        console.print(f"report: {escape(str(path))}")
    if result.file_error and result.file_error_code:  # a path the user gave: after the checks, as an error
        raise fail(result.file_error, result.file_error_code)
    if result.file_error:
        err_console.print(f"[yellow]report not written:[/] {escape(str(result.file_error))}")
    if not result.passed:
        raise typer.Exit(1)


def print_doctor(report: DoctorReport) -> None:
    t = Table(show_header=True, header_style="bold")
    for col in ("#", "check", "value", "threshold", "verdict"):
        t.add_column(col, justify="right" if col == "#" else "left", overflow="fold")
    for i, c in enumerate(report.checks, 1):
        verdict = ("[green]PASS[/]" if c.passed else "[red]FAIL[/]") if c.required else "[dim]info[/]"
        t.add_row(str(i), c.name, c.shown(c.value), c.shown_threshold(), verdict)
    console.print(t)
    for c in report.checks:  # what to do about each failure, and what to know about a passing check
        if c.advice and c not in report.failures:
            console.print(f"[yellow]• {escape(c.name)}:[/] {escape(c.advice)}")
    for c in report.failures:
        console.print(f"[red]✗ {escape(c.name)}:[/] {escape(c.advice)}")
    n, info = report.tally()  # the "info" rows are shown, not judged
    shown = f" ({info} more for information)" if info else ""
    quick = f" ({report.quick_check})" if report.quick_check else ""
    if report.passed:
        console.print(f"[bold green]PASS[/] — {n} checks passed{shown} in {report.duration_s:.0f} s{quick}")
    else:
        console.print(f"[bold red]FAIL[/] — {len(report.failures)} of {n} checks failed{shown}{quick}")
