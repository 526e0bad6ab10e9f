"""``edge-bus bench``: engine, stage, pipeline and live-latency measurements with their gates.

:func:`run_bench` measures everything on ``--source`` (default: the demo clip).
The bundled demo clip is first written to a temporary video (see :func:`~edge_bus.bench_stream.as_video`)
so decode costs what a real video's does. Then, in order:

1. the five engine variants at batch 1 (interleaved; ``seconds`` each) — benchmark_app-style
   median, mean, min, max, p99 and FPS, plus the precision that actually ran;
2. each pipeline stage on its own (``seconds / 2`` each);
3. file throughput: the pipeline vs OpenVINO INT8 alone (THROUGHPUT hint, async), same frames,
   and vs OpenVINO's own ``benchmark_app`` on the same IR;
4. live latency with ``--realtime`` pacing (end-to-end p99, drops);
5. glass-to-glass latency genlocked to a controller board (``bridge``: the simulator ``sim://`` at
   30 fps by default, or a real board's serial port);
6. the INT8 layer profile (:mod:`edge_bus.bench_profile`): which operations take the inference time,
   and in which precision their kernels ran;

then evaluates the gates of :mod:`edge_bus.bench_gates` and writes ``--json`` / ``--html``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edge_bus import __version__
from edge_bus.bench_engines import (
    INFER_TIMING,
    close_engines,
    measure_engines,
    open_engines,
    preprocess_all,
    sample_frames,
)
from edge_bus.bench_gates import (
    FRAME_BUDGET_MS,
    INFER_SHARE,
    STAGE_SHARES,
    Gate,
    file_fps_gate,
    glass_to_glass_gate,
    int8_speedup_gate,
    int8_speedup_target_gate,
    pipeline_gate,
    pipeline_target_gate,
    realtime_gate,
    stage_gates,
)
from edge_bus.bench_measure import Timing
from edge_bus.bench_profile import LayerProfile, measure_layer_profile
from edge_bus.bench_stream import (
    PipelineBench,
    RealtimeBench,
    as_video,
    benchmark_app_gates,
    measure_pipeline,
    measure_realtime,
    measure_stages,
)
from edge_bus.config import check_device
from edge_bus.engines import Engine
from edge_bus.errors import ConfigError, Interrupted, OutputError, interrupted_saying
from edge_bus.sinks.files import atomic_write_text, check_report_paths
from edge_bus.telemetry.hardware import hardware_facts
from edge_bus.zoo import resolve_model

__all__ = ["BenchOptions", "BenchResult", "BenchRun", "bench_frames", "run_bench", "write_bench_json"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchOptions:
    """``seconds``: measuring time per engine (stages get half); the pipeline runs ``100 × seconds``
    frames (three times from 2 s on) and the realtime and glass-to-glass runs ``45 × seconds`` frames each
    (at least 30 each, at most 600)."""

    model: str | None = None
    source: str = "demo"
    seconds: float = 2.0
    device: str = "CPU"
    json_path: Path | None = None
    html_path: Path | None = None
    bridge: str | None = "sim://"  # the glass-to-glass run's controller board; None skips it

    def validate(self) -> BenchOptions:
        if not (math.isfinite(self.seconds) and 0 < self.seconds <= MAX_SECONDS):
            raise ConfigError(f"--seconds must be > 0 and at most {MAX_SECONDS:g} (per engine), got {self.seconds}")
        return replace(self, device=check_device(self.device))


REPORT_HINT = "choose another --json / --html path"
MAX_SECONDS = 600.0
"""The longest --seconds accepted (the measuring time per engine)."""
MIN_FRAMES, MAX_FRAMES = 30, 600
"""The pipeline and live runs' frames, whatever --seconds gives."""


def bench_frames(seconds: float, per_second: float) -> int:
    return int(min(MAX_FRAMES, max(MIN_FRAMES, round(per_second * seconds))))


@dataclass(frozen=True)
class BenchResult:
    """Everything ``edge-bus bench`` measured; :meth:`to_json` is the ``--json`` document."""

    model: Mapping[str, object]
    hardware: Mapping[str, object]
    engines: Mapping[str, Timing]
    stages: Mapping[str, Timing]
    pipeline: PipelineBench
    realtime: RealtimeBench
    gates: tuple[Gate, ...]
    seconds: float
    source: str
    bridge: RealtimeBench | None = None
    layers: LayerProfile | None = None
    generated_at: str = field(default_factory=lambda: _dt.datetime.now().astimezone().isoformat(timespec="seconds"))

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates if g.required)

    @property
    def stage_timings(self) -> dict[str, Timing]:
        """The CPU stages, then ``infer`` (the OpenVINO INT8 engine's timing, when it was measured):
        the rows of the stage table in the terminal, the HTML report and beside the budget shares."""
        stages = dict(self.stages)
        if INFER_TIMING in self.engines:
            stages["infer"] = self.engines[INFER_TIMING]
        return stages

    @staticmethod
    def stage_shares() -> dict[str, float]:
        """Each stage's share of the 30 fps frame budget, ``infer`` included (reported, not gated)."""
        return {**STAGE_SHARES, "infer": INFER_SHARE}

    def to_json(self) -> dict[str, Any]:
        return {
            "edge_bus": __version__,
            "generated_at": self.generated_at,
            "model": dict(self.model),
            "source": self.source,
            "seconds": self.seconds,
            "engines": {name: t.to_json() for name, t in self.engines.items()},
            "stages": {name: t.to_json() for name, t in self.stages.items()},
            "budget": {"frame_ms": round(FRAME_BUDGET_MS, 3), "shares": self.stage_shares()},
            "pipeline": self.pipeline.to_json(),
            "realtime": self.realtime.to_json(),
            "bridge": self.bridge.to_json() if self.bridge is not None else None,
            "layer_profile": self.layers.to_json() if self.layers is not None else None,
            "gates": [g.to_json() for g in self.gates],
            "passed": self.passed,
            "hardware": dict(self.hardware),
        }


def evaluate_gates(
    engines: Mapping[str, Timing], stages: Mapping[str, Timing], pipeline: PipelineBench, isa: Mapping[str, object],
    realtime: RealtimeBench | None = None, bridge: RealtimeBench | None = None,
) -> tuple[Gate, ...]:
    """Every gate for one run's numbers (missing numbers make a gate fail, never crash). The issue
    targets (absolute FPS, live p99, glass to glass) are reported, not required."""
    nan = math.nan
    int8, fp32 = engines.get(INFER_TIMING), engines.get("onnxruntime-fp32")
    int8_ms, fp32_ms = (int8.median_ms if int8 else nan), (fp32.median_ms if fp32 else nan)
    targets = [file_fps_gate(pipeline.fps, pipeline.source)]
    if realtime is not None:
        targets.append(realtime_gate(realtime.p99_ms, realtime.dropped, floor_p99_ms=realtime.infer_p99_ms))
    if bridge is not None:
        targets.append(glass_to_glass_gate(bridge.g2g_p99_ms, bridge.dropped, bridge.bridge or "?",
                                           floor_p99_ms=bridge.infer_p99_ms))
    return (
        int8_speedup_gate(int8_ms, fp32_ms, isa),
        pipeline_gate(pipeline.fps, pipeline.engine_fps, isa),
        *(g for g in (int8_speedup_target_gate(int8_ms, fp32_ms),
                      pipeline_target_gate(pipeline.fps, pipeline.engine_fps, isa)) if g is not None),
        *benchmark_app_gates(pipeline),
        *stage_gates({name: t.median_ms for name, t in stages.items()}),
        *targets,
    )


@dataclass(frozen=True)
class BenchRun:
    """What :func:`run_bench` measured, and the report files it wrote."""

    result: BenchResult
    written: list[Path]


def run_bench(options: BenchOptions, progress: Progress | None = None,
              on_results: Callable[[BenchResult], None] | None = None) -> BenchRun:
    """Measure everything (see the module doc), give the results to ``on_results`` (``edge-bus bench``
    prints them there, so a report file that fails to write still leaves them on screen), then write
    the requested files. Ctrl-C while measuring is :class:`Interrupted`: nothing is written."""
    unfinished = "the measurements were not finished, nothing was written"
    try:
        result = _measure(options, progress)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted (Ctrl-C): {unfinished}") from None
    except Interrupted as exc:  # inside a stream run (live latency): its folder was temporary
        raise interrupted_saying(exc, unfinished) from None
    if on_results is not None:
        on_results(result)
    return BenchRun(result, write_bench_outputs(options, result))


def _measure(options: BenchOptions, progress: Progress | None) -> BenchResult:
    opts = options.validate()
    say = progress or (lambda _msg: None)
    check_report_paths(opts.json_path, opts.html_path, REPORT_HINT)  # not after minutes
    manifest = resolve_model(opts.model)
    if opts.bridge:  # an unplugged or wrong board fails now, not after minutes of measuring
        from firmware_bridge import HostBridge

        HostBridge.open(opts.bridge).close()
    engines: dict[str, Engine] = {}
    with tempfile.TemporaryDirectory(prefix="edge-bus-bench-") as tmp:
        source = as_video(opts.source, Path(tmp))
        tensors = preprocess_all(manifest, sample_frames(source, 30))
        say(f"engines: compiling {manifest.name} for 5 backend/precision variants")
        engines, errors = open_engines(manifest, opts.device)
        try:
            if INFER_TIMING in errors:
                raise errors[INFER_TIMING]  # the shipped default must load; the others may be missing
            say(f"engines: measuring {opts.seconds:g} s each, interleaved")
            engine_times = measure_engines(engines, tensors, opts.seconds, errors)
            say("stages: decode, preprocess, postprocess, render, write")
            stage_times = measure_stages(manifest, source, engines[INFER_TIMING], opts.seconds / 2, Path(tmp))
        finally:
            close_engines(engines)
        say("layer profile: OpenVINO INT8 per-layer counters")
        layers = measure_layer_profile(manifest, tensors, runs=bench_frames(opts.seconds, 50), device=opts.device)
        # 100 frames per second of --seconds (300 at 3 s): a run of 150 frames is ~1 s, where filling and
        # draining the pipeline weigh ~5% and the ratio to the engine read 0.73-0.76 against 0.80-0.81 at
        # 300 frames x 3 runs (same clip, same minute)
        n = bench_frames(opts.seconds, 100)
        say(f"pipeline: {n} frames of {opts.source} vs the INT8 engine alone, with and without the overlay video")
        pipeline = measure_pipeline(manifest, source, n, Path(tmp), opts.device, repeats=3 if opts.seconds >= 2 else 1,
                                    app_seconds=max(2.0, 2 * opts.seconds), no_video=True)
        n = bench_frames(opts.seconds, 45)
        say(f"realtime: {n} frames paced at the source's fps")
        realtime = measure_realtime(manifest, source, n, Path(tmp), opts.device)
        bridge = None
        if opts.bridge:
            say(f"glass to glass: {n} frames genlocked to the controller board at {opts.bridge}")
            bridge = replace(measure_realtime(manifest, source, n, Path(tmp), opts.device, bridge=opts.bridge),
                             source=opts.source)
    pipeline = replace(pipeline, source=opts.source)
    realtime = replace(realtime, source=opts.source)
    precision = engine_times[INFER_TIMING].precision
    hardware = hardware_facts(device=opts.device, precision=precision)
    isa = hardware.get("isa")
    gates = evaluate_gates(engine_times, stage_times, pipeline, isa if isinstance(isa, Mapping) else {},
                           realtime, bridge)
    result = BenchResult(
        model={"name": manifest.name, "version": manifest.version, "folder": str(manifest.folder)},
        hardware=hardware,
        engines=engine_times,
        stages=stage_times,
        pipeline=pipeline,
        realtime=realtime,
        bridge=bridge,
        layers=layers,
        gates=gates,
        seconds=opts.seconds,
        source=opts.source,
    )
    return result


def write_bench_outputs(options: BenchOptions, result: BenchResult) -> list[Path]:
    """Write the JSON and HTML reports ``options`` asks for; returns the paths written. One that can't be
    written (its disk filled during the run) does not stop the other: the error names what was kept."""
    from edge_bus.bench_html import write_bench_html

    written: list[Path] = []
    failed: OutputError | None = None
    for path, write in ((options.json_path, write_bench_json), (options.html_path, write_bench_html)):
        if path is None:
            continue
        try:
            written.append(write(path, result))
        except OutputError as exc:
            failed = failed or exc
    if failed is not None:
        kept = f" ({', '.join(map(str, written))} was written)" if written else ""
        raise OutputError(f"{failed}{kept}") from None
    return written


def write_bench_json(path: Path, result: BenchResult) -> Path:
    return atomic_write_text(path, json.dumps(result.to_json(), indent=2) + "\n", hint=REPORT_HINT)
