"""Stage and stream measurements: each pipeline stage alone, file throughput, live latency.

* :func:`measure_stages` times decode, preprocess, postprocess, render and video write on their
  own (interleaved), on frames of the given source — the same classes the pipeline uses.
* :func:`measure_pipeline` runs :func:`~edge_bus.pipeline.run_stream` over a file (no display),
  alternating with engine-only throughput runs on the same frames (load drift hits both alike).
* :func:`measure_realtime` runs the stream with ``--realtime`` pacing at the file's fps, or genlocked
  to a controller board (``sim://`` or a real port) for glass-to-glass latency, and reports the
  end-to-end (and glass-to-glass) percentiles and the frames dropped.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from edge_bus.bench_engines import (
    benchmark_app_throughput,
    engine_throughput,
    paced_latency,
    preprocess_all,
    sample_frames,
)
from edge_bus.bench_gates import Gate, benchmark_app_batched_gate, benchmark_app_gate, benchmark_app_no_video_gate
from edge_bus.bench_measure import Timing, cycle, sample_interleaved, summarize
from edge_bus.config import DEFAULT_BATCH, StreamConfig, build_config
from edge_bus.engines import Engine, EngineConfig, create_engine
from edge_bus.errors import ConfigError
from edge_bus.pipeline import RunResult, run_stream
from edge_bus.postprocess import PostprocessConfig, Postprocessor
from edge_bus.preprocess import Preprocessor
from edge_bus.render import HudInfo, OverlayRenderer
from edge_bus.sinks.video import VideoSink
from edge_bus.sources import open_source
from edge_bus.telemetry.series import FrameSeries
from edge_bus.telemetry.stats import END_TO_END, GLASS_TO_GLASS, PIPELINE_STAGES, LatencySummary
from edge_bus.zoo import Manifest

__all__ = [
    "STAGES",
    "PipelineBench",
    "RealtimeBench",
    "as_video",
    "bare_infer_floor",
    "benchmark_app_gates",
    "bracketed_by_floor",
    "measure_pipeline",
    "measure_realtime",
    "measure_stages",
]

#: The stages timed on their own (inference is measured engine-only, see bench_engines).
STAGES = tuple(s for s in PIPELINE_STAGES if s != "infer")  # the CPU stages around the model

T = TypeVar("T")


def as_video(source: str, out_dir: Path) -> str:
    """``source`` itself, or for the demo clip a video file of it (``out_dir/demo.mp4``). Raises ConfigError
    for still images (a folder, a picture): they have no rate to pace the realtime runs at.

    The demo clip synthesises every frame (warp, speckle noise, blur: ~2.5 ms on one core), about
    8× what decoding a real video frame costs; on a 2-core machine that alone would make the
    pipeline look 20-30% slower than with a scanner's video. Benchmarks decode a file instead.
    """
    with open_source(source) as src:
        info = src.info
        if info.still:  # no rate to pace at: the realtime run went at 1 frame/s (10 minutes), its floor at 30
            raise ConfigError(f"{source} holds still images, not a stream: edge-bus bench times a video "
                              "('demo', or a video file, DICOM cine or TIFF stack)")
        if info.kind != "demo":
            return source
        path = out_dir / "demo.mp4"
        with VideoSink(path, info.fps or 30.0, (info.width, info.height)) as sink:
            for frame in src:
                sink.write(frame.pixels)
    return str(sink.path)


def measure_stages(
    manifest: Manifest, source: str, engine: Engine, seconds_each: float, out_dir: Path, sample: int = 30
) -> dict[str, Timing]:
    """Median/mean/... ms of each stage in :data:`STAGES` on ``sample`` frames of ``source``.

    ``engine`` (any) supplies real model outputs for postprocess; ``write`` encodes the rendered
    overlays synchronously into ``out_dir/stages.mp4`` (the pipeline does it on a worker thread).
    """
    frames = sample_frames(source, sample)
    pre = Preprocessor(manifest.input)
    prepared = [pre.preprocess(f.pixels) for f in frames]
    outputs = [engine.infer(tensor) for tensor, _ in prepared]
    post_cfg = PostprocessConfig(smoothing=StreamConfig().smoothing)
    post = Postprocessor(manifest, post_cfg)
    preds = [post.postprocess(o, meta) for o, (_, meta) in zip(outputs, prepared, strict=True)]
    renderer = OverlayRenderer()
    hud = HudInfo(fps=30.0, latency_ms=0.0, operating_point=post.op.name, threshold=post.op.threshold)
    overlays = [renderer.render(f, p, hud) for f, p in zip(frames, preds, strict=True)]
    h, w = frames[0].pixels.shape[:2]
    timed_pre = Preprocessor(manifest.input)
    timed_post = Postprocessor(manifest, post_cfg)
    decode_src = open_source(source, loop=True)
    try:
        sink = VideoSink(out_dir / "stages.mp4", decode_src.info.fps or 30.0, (w, h), background=False)
        try:
            calls = {
                "decode": lambda: next(decode_src),
                "preprocess": cycle(frames, lambda f: timed_pre.preprocess(f.pixels)),
                "postprocess": cycle(
                    list(zip(outputs, prepared, strict=True)), lambda op: timed_post.postprocess(op[0], op[1][1])
                ),
                "render": cycle(list(zip(frames, preds, strict=True)), lambda fp: renderer.render(fp[0], fp[1], hud)),
                "write": cycle(overlays, sink.write),
            }
            samples = sample_interleaved(calls, seconds_each, burst=20, settle=3)
        finally:
            sink.close()
    finally:
        decode_src.close()
    return {name: summarize(name, samples[name]) for name in STAGES}


@dataclass(frozen=True)
class PipelineBench:
    """File throughput: the pipeline's FPS and the INT8 engine's alone, on the same frames."""

    source: str
    frames: int
    fps: float
    engine_fps: float
    precision: str
    stages: dict[str, Any] = field(default_factory=dict)
    app_fps: float = math.nan  # OpenVINO's benchmark_app on the same IR as shipped, batch 1 (NaN: not run)
    fps_no_video: float = math.nan  # the same pipeline with no overlay video written (NaN: not run)
    batch: int = 1  # frames per inference in the pipeline and its engine-only runs
    app_fps_batched: float = math.nan  # benchmark_app at the pipeline's batch (NaN: not run, or batch 1)

    @property
    def ratio(self) -> float:
        return self.fps / self.engine_fps if self.engine_fps > 0 and math.isfinite(self.engine_fps) else math.nan

    @property
    def app_ratio(self) -> float:
        return self.fps / self.app_fps if self.app_fps > 0 and math.isfinite(self.app_fps) else math.nan

    @property
    def app_ratio_no_video(self) -> float:
        return self.fps_no_video / self.app_fps if self.app_fps > 0 and math.isfinite(self.app_fps) else math.nan

    @property
    def app_ratio_batched(self) -> float:
        ok = self.app_fps_batched > 0 and math.isfinite(self.app_fps_batched)
        return self.fps / self.app_fps_batched if ok else math.nan

    def to_json(self) -> dict[str, object]:
        ratio, app_ratio, batched = self.ratio, self.app_ratio, self.app_ratio_batched
        return {
            "batch": self.batch,
            "fps": round(self.fps, 2),
            "engine_fps": round(self.engine_fps, 2),
            "ratio": round(ratio, 3) if math.isfinite(ratio) else None,
            "benchmark_app_fps": round(self.app_fps, 2) if math.isfinite(self.app_fps) else None,
            "benchmark_app_ratio": round(app_ratio, 3) if math.isfinite(app_ratio) else None,
            "fps_no_video": round(self.fps_no_video, 2) if math.isfinite(self.fps_no_video) else None,
            "benchmark_app_ratio_no_video": (round(self.app_ratio_no_video, 3)
                                             if math.isfinite(self.app_ratio_no_video) else None),
            "benchmark_app_batched_fps": (round(self.app_fps_batched, 2) if math.isfinite(self.app_fps_batched)
                                          else None),
            "benchmark_app_batched_ratio": round(batched, 3) if math.isfinite(batched) else None,
            "frames": self.frames,
            "source": self.source,
            "precision": self.precision,
            "stages": self.stages,
        }


def benchmark_app_gates(p: PipelineBench) -> list[Gate]:
    """Issue #3's 0.8× of benchmark_app for one pipeline measurement, all reported: against the IR as
    shipped, the same without the overlay video, and (a batched pipeline) against benchmark_app at
    the pipeline's batch."""
    gates = [benchmark_app_gate(p.fps, p.app_fps), benchmark_app_no_video_gate(p.fps_no_video, p.app_fps)]
    if p.batch > 1:
        gates.append(benchmark_app_batched_gate(p.fps, p.app_fps_batched, p.batch))
    return gates


def _config(manifest: Manifest, source: str, frames: int, device: str, out: Path, **extra: Any) -> StreamConfig:
    return build_config(
        model=str(manifest.folder),
        source=source,
        loop=True,
        max_frames=frames,
        device=device,
        out=out,
        display=False,
        **extra,
    )


def measure_pipeline(
    manifest: Manifest, source: str, frames: int, out_dir: Path, device: str = "CPU", repeats: int = 1,
    app_seconds: float = 0.0, no_video: bool = False, batch: int = DEFAULT_BATCH,
) -> PipelineBench:
    """``run_stream`` over ``frames`` frames of ``source`` (video written, no display, ``batch``
    frames per inference), alternating with engine-only runs (OpenVINO INT8, THROUGHPUT hint, async,
    the same batch) over the same frames: E P E (``repeats`` = 1), E P E P E (2), ...; the medians
    of each are reported, so a load that comes and goes during the measurement moves both alike.
    With ``app_seconds`` > 0, OpenVINO's ``benchmark_app`` runs on the same IR after each
    engine-only run (E A P E A ...): as shipped (batch 1, the issue's reference) and, with
    ``batch`` > 1, reshaped to the pipeline's batch too. With ``no_video``, each pipeline run is
    followed by one that writes no overlay video (E A P N E A P N ...): what encoding the overlay
    costs the throughput."""
    tensors = preprocess_all(manifest, sample_frames(source, frames))
    engine = create_engine(manifest, EngineConfig(backend="openvino", device=device, precision="int8",
                                                  hint="THROUGHPUT", requests=0, batch=batch))
    batch = engine.batch  # 1 for a model that can't be batched
    engine_fps: list[float] = []
    app_fps: list[float] = []
    app_fps_batched: list[float] = []
    runs: list[RunResult] = []
    no_video_fps: list[float] = []
    xml, weights = str(manifest.path("openvino_int8_xml")), str(manifest.path("openvino_int8_bin"))
    spec = manifest.input
    batched_shape = (batch, spec.channels, spec.height, spec.width)

    def reference() -> None:
        engine_fps.append(engine_throughput(engine, tensors))
        if app_seconds > 0:
            app_fps.append(benchmark_app_throughput(xml, app_seconds, device, weights=weights))
            if batch > 1:
                app_fps_batched.append(benchmark_app_throughput(xml, app_seconds, device, shape=batched_shape,
                                                                weights=weights))

    def config(name: str, **extra: Any) -> StreamConfig:
        return _config(manifest, source, frames, device, out_dir / name, batch=batch, **extra)

    try:
        reference()
        for i in range(max(1, repeats)):
            runs.append(run_stream(config(f"pipeline{i}")))
            if no_video:
                no_video_fps.append(run_stream(config(f"no-video{i}", video=False)).fps)
            reference()
    finally:
        engine.close()
    mid = sorted(runs, key=lambda r: r.fps)[len(runs) // 2]
    return PipelineBench(
        source=source,
        frames=mid.frames,
        fps=float(statistics.median(r.fps for r in runs)),
        engine_fps=float(statistics.median(engine_fps)),
        precision=mid.precision,
        stages=dict(mid.latency.get("stages", {})),
        app_fps=_median_finite(app_fps),
        fps_no_video=_median_finite(no_video_fps),
        batch=batch,
        app_fps_batched=_median_finite(app_fps_batched),
    )


def _median_finite(values: Sequence[float]) -> float:
    """Median of the finite values (a benchmark_app run that failed reads NaN); NaN if none."""
    finite = [v for v in values if math.isfinite(v)]
    return float(statistics.median(finite)) if finite else math.nan


@dataclass(frozen=True)
class RealtimeBench:
    """Live latency with ``--realtime`` pacing: end-to-end percentiles and drops."""

    source: str
    frames: int
    dropped: int
    fps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    precision: str
    e2e_ms: tuple[float, ...] = field(default=(), repr=False)
    bridge: str | None = None  # the controller board the frames were genlocked to (glass_to_glass below)
    g2g_p50_ms: float = math.nan
    g2g_p99_ms: float = math.nan
    g2g_count: int = 0
    # bare OpenVINO INT8 inference (LATENCY hint, one request) paced at the same fps over the same
    # number of frames, measured before and after the run: the floor under e2e_ms (NaN: not measured)
    infer_p50_ms: float = math.nan
    infer_p99_ms: float = math.nan

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "source": self.source,
            "frames": self.frames,
            "dropped": self.dropped,
            "fps": round(self.fps, 2),
            "p50_ms": _round(self.p50_ms),
            "p99_ms": _round(self.p99_ms),
            "max_ms": _round(self.max_ms),
            "precision": self.precision,
            "bare_infer_p50_ms": _round(self.infer_p50_ms),
            "bare_infer_p99_ms": _round(self.infer_p99_ms),
        }
        if self.bridge is not None:
            out.update(bridge=self.bridge, glass_to_glass_p50_ms=_round(self.g2g_p50_ms),
                       glass_to_glass_p99_ms=_round(self.g2g_p99_ms), glass_to_glass_frames=self.g2g_count)
        return out


def _round(v: float) -> float | None:
    return round(v, 3) if math.isfinite(v) else None


def _ms(v: float | None) -> float:
    return math.nan if v is None else v


def measure_realtime(manifest: Manifest, source: str, frames: int, out_dir: Path, device: str = "CPU",
                     bridge: str | None = None, floor: bool = True) -> RealtimeBench:
    """``run_stream --realtime`` over ``frames`` frames of ``source`` (paced at its fps, LATENCY hint).

    With ``bridge`` (e.g. ``sim://``, the simulated controller board at the source's fps), frames
    are genlocked to its FRAME_META and the glass-to-glass percentiles are filled in. With ``floor``,
    bare INT8 inference paced the same way runs before and after the stream (:func:`bare_infer_floor`),
    so the pipeline's share of the latency is a difference measured in one run."""
    name = "bridge" if bridge else "realtime"

    def stream() -> RunResult:
        return run_stream(_config(manifest, source, frames, device, out_dir / name, realtime=True, bridge=bridge))

    if floor:
        result, bare = bracketed_by_floor(manifest, source, frames, stream, device)
    else:
        result, bare = stream(), summarize("bare_infer", [])  # no samples: NaN (not measured)
    e2e = result.stages[END_TO_END]
    g2g = result.stages.get(GLASS_TO_GLASS, LatencySummary(0, None, None, None, None, None))
    series = FrameSeries.from_jsonl(result.out_dir / "frames.jsonl")
    return RealtimeBench(
        source=source,
        frames=result.frames,
        dropped=result.dropped,
        fps=float(result.fps),
        p50_ms=_ms(e2e.p50_ms),
        p99_ms=_ms(e2e.p99_ms),
        max_ms=_ms(e2e.max_ms),
        precision=result.precision,
        e2e_ms=tuple(float(v) for v in series.e2e_ms),
        bridge=bridge,
        g2g_p50_ms=_ms(g2g.p50_ms),
        g2g_p99_ms=_ms(g2g.p99_ms),
        g2g_count=g2g.count,
        infer_p50_ms=bare.median_ms,
        infer_p99_ms=bare.p99_ms,
    )


def bracketed_by_floor(manifest: Manifest, source: str, frames: int, run: Callable[[], T],
                       device: str = "CPU") -> tuple[T, Timing]:
    """``run()`` between two halves of :func:`bare_infer_floor` over ``frames`` frames in all, so
    load that comes and goes hits the run and its floor alike; returns run's result and the floor."""
    before = bare_infer_floor(manifest, source, frames // 2, device)
    result = run()
    after = bare_infer_floor(manifest, source, frames - frames // 2, device)
    return result, summarize("bare_infer", before + after)


def bare_infer_floor(manifest: Manifest, source: str, frames: int, device: str = "CPU") -> list[float]:
    """ms per frame of OpenVINO INT8 alone, set up as a live stream's engine (LATENCY hint, one
    request) and paced at ``source``'s fps for ``frames`` frames (up to 60 distinct ones, cycled)."""
    if frames <= 0:
        return []
    with open_source(source) as src:
        fps = src.info.fps or 30.0
    unique = preprocess_all(manifest, sample_frames(source, min(frames, 60)))
    tensors = [unique[i % len(unique)] for i in range(frames)]
    engine = create_engine(
        manifest, EngineConfig(backend="openvino", device=device, precision="int8", hint="LATENCY", requests=1)
    )
    try:
        return paced_latency(engine, tensors, fps)
    finally:
        engine.close()
