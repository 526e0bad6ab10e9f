"""``edge-bus bench``: engine, stage, pipeline and live-latency benchmarks, benchmark_app style."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from edge_bus.bench import BenchOptions, BenchResult, run_bench
from edge_bus.bench_engines import INFER_TIMING
from edge_bus.bench_gates import FRAME_BUDGET_MS
from edge_bus.bench_measure import Timing
from edge_bus.cli.common import console, err_console, run_or_exit, terminated_as_error

__all__ = ["bench_cmd"]


def bench_cmd(
    model: Annotated[
        str | None,
        typer.Option(help="Model name, folder or manifest.json. \\[default: emt_net]", show_default=False),
    ] = None,
    source: Annotated[
        str, typer.Option("--source", "-s", help="Frames to measure on: 'demo' (bundled clip), or a video file, "
                          "DICOM cine or TIFF stack (not still images: they have no rate to pace the live runs at).")
    ] = "demo",
    seconds: Annotated[
        float,
        typer.Option(
            help="Measuring time per engine, up to 600 (stages get half; the pipeline runs 100×S frames, the "
            "realtime run 45×S frames, each at least 30 and at most 600)."
        ),
    ] = 2.0,
    device: Annotated[str, typer.Option(help="OpenVINO device: CPU, GPU, NPU or AUTO.")] = "CPU",
    bridge: Annotated[
        str,
        typer.Option(
            help="Controller board for the glass-to-glass run (frames genlocked to its FRAME_META): 'sim://' "
            "(the in-process simulator at 30 fps), a serial port such as /dev/ttyACM0, or 'none' to skip it."
        ),
    ] = "sim://",
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the results as JSON here (its folder is created).",
                                  show_default=False)
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Write a self-contained HTML report with plots here (its folder is created).",
                     show_default=False),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress messages.")] = False,
) -> None:
    """Measure this machine's inference speed and check the performance gates (PASS/FAIL/MISS).

    Measures every engine (OpenVINO INT8/FP32/default, ONNX Runtime FP32/INT8), each pipeline stage, file
    throughput vs the engine alone, live latency at 30 fps and glass to glass with a controller board, and
    profiles INT8 inference layer by layer (which operations take the time, in which precision they ran);
    checks the performance gates and reports the latency targets (PASS/MISS).

    Exits 0 whether or not a gate fails (the gates are printed); non-zero only on errors.
    """
    options = BenchOptions(
        model=model, source=source, seconds=seconds, device=device, json_path=json_path, html_path=html,
        bridge=None if bridge.strip().lower() in ("", "none") else bridge,
    )
    say = None if quiet else (lambda msg: err_console.print(f"[dim]{msg}[/]"))
    with terminated_as_error():  # SIGTERM unwinds like Ctrl-C: one line, exit 143, temp files removed
        run = run_or_exit(run_bench, options, say, on_results=print_bench)
    for path in run.written:
        console.print(f"wrote {escape(str(path))}")


def _ms(v: float) -> str:
    if not math.isfinite(v):
        return "-"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def _timing_table(title: str, timings: Mapping[str, Timing], first: str, shares: Mapping[str, float] | None) -> Table:
    """benchmark_app-style: one row per engine or stage, milliseconds and FPS."""
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, caption_justify="left")
    notes: list[str] = []
    t.add_column(first, no_wrap=True)
    if shares is None:
        t.add_column("ran", no_wrap=True)
    for col in ("median", "mean", "min", "max", "p99", "FPS"):
        t.add_column(col, justify="right", no_wrap=True)
    if shares is not None:
        t.add_column("share", justify="right", no_wrap=True)
        t.add_column("used", justify="right", no_wrap=True)
    for name, x in timings.items():
        row = [name] if shares is not None else [name, x.precision or "-"]
        row += [_ms(x.median_ms), _ms(x.mean_ms), _ms(x.min_ms), _ms(x.max_ms), _ms(x.p99_ms), f"{x.fps:.0f}"]
        if shares is not None:
            share = shares.get(name, math.nan)
            used = x.median_ms / FRAME_BUDGET_MS
            row.append(f"{100 * share:g}%" if math.isfinite(share) else "-")
            row.append(f"{100 * used:.0f}%" if math.isfinite(used) else "-")
        if x.error:  # one short cell: a long message in a no-wrap column squeezed every number out
            row = [name, "[dim]not measured[/]"] + ["-"] * (len(row) - 2)
            notes.append(f"{name}: {x.error}")
        t.add_row(*row)
    if notes:
        t.caption = escape("not measured — " + "; ".join(notes))
    return t


def print_bench(r: BenchResult) -> None:
    hw = r.hardware
    isa = hw.get("isa") if isinstance(hw.get("isa"), Mapping) else {}
    assert isinstance(isa, Mapping)

    def flag(*keys: str) -> str:
        return "yes" if any(isa.get(k) for k in keys) else "no"

    console.print(
        f"[bold]{hw.get('cpu_model')}[/], {hw.get('cores_physical')} physical / {hw.get('cores_logical')} logical "
        f"cores ({hw.get('cores_available')} available); AVX2 {flag('avx2')}, AVX-512 {flag('avx512f')}, "
        f"VNNI {flag('avx512_vnni', 'avx_vnni')}, AMX {flag('amx_int8', 'amx_tile')}; OpenVINO {hw.get('openvino')}, "
        f"ONNX Runtime {hw.get('onnxruntime')}; model {r.model.get('name')} {r.model.get('version')}"
    )
    console.print(_timing_table("Engines (ms): batch 1, one request, LATENCY hint", r.engines, "engine", None))
    title = f"Stages (ms) on {r.source}: share of a {FRAME_BUDGET_MS:.1f} ms frame (30 fps); infer = {INFER_TIMING}"
    console.print(_timing_table(title, r.stage_timings, "stage", r.stage_shares()))
    p, rt = r.pipeline, r.realtime
    console.print(
        f"[bold]Pipeline[/] ({p.frames} frames of {p.source}, THROUGHPUT hint, batch {p.batch}): {p.fps:.1f} FPS "
        f"vs engine alone {p.engine_fps:.1f} FPS = {p.ratio:.2f}×; benchmark_app {p.app_fps:.1f} FPS = "
        f"{p.app_ratio:.2f}×; with no overlay video {p.fps_no_video:.1f} FPS = {p.app_ratio_no_video:.2f}× of "
        f"benchmark_app" + (f"; benchmark_app at batch {p.batch} {p.app_fps_batched:.1f} FPS = "
                            f"{p.app_ratio_batched:.2f}×" if p.batch > 1 else "")
    )
    console.print(
        f"[bold]Realtime[/] ({rt.frames} frames at the source's fps): e2e p50 {rt.p50_ms:.1f} ms, "
        f"p99 {rt.p99_ms:.1f} ms, max {rt.max_ms:.1f} ms; {rt.dropped} dropped; {rt.precision}; "
        f"bare INT8 inference at the same pace p50 {rt.infer_p50_ms:.1f} ms, p99 {rt.infer_p99_ms:.1f} ms"
    )
    if r.bridge is not None:
        b = r.bridge
        console.print(
            f"[bold]Glass to glass[/] ({b.frames} frames genlocked to {b.bridge}): "
            f"p50 {b.g2g_p50_ms:.1f} ms, p99 {b.g2g_p99_ms:.1f} ms over {b.g2g_count} frames with hardware "
            f"timestamps; e2e p99 {b.p99_ms:.1f} ms"
        )
    if r.layers is not None and r.layers.ops:
        console.print(f"[bold]INT8 layer profile[/] ({r.layers.runs} runs, per-layer counters): {r.layers.headline()}")
    for g in r.gates:
        mark = {"PASS": "[green]PASS[/]", "FAIL": "[red]FAIL[/]", "MISS": "[yellow]MISS[/] (target)",
                "N/A": "[dim]N/A[/]"}[g.verdict]
        console.print(f"{mark} {escape(g.message)}")
