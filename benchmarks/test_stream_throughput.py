"""End-to-end: file throughput on the cine clips, live latency with --realtime pacing, glass to
glass with the simulated controller board, and the pipeline-vs-engine throughput gate. The issue
targets (250 FPS, live p99 ≤ 8 ms, glass-to-glass p99 ≤ 12 ms) are logged as reported gates."""

from __future__ import annotations

from pathlib import Path

from edge_bus.bench_gates import (
    Gate,
    file_fps_gate,
    glass_to_glass_gate,
    pipeline_gate,
    pipeline_target_gate,
    realtime_gate,
)
from edge_bus.bench_stream import benchmark_app_gates, bracketed_by_floor, measure_pipeline, measure_realtime
from edge_bus.config import build_config
from edge_bus.pipeline import RunResult, run_stream
from edge_bus.zoo import Manifest


def test_file_throughput(
    benchmark, cine_clips: list[Path], manifest: Manifest, profile, record, tmp_path: Path, clip_index: int
) -> None:
    """``edge-bus stream`` on one clip (overlay video written, no display), frames per second."""
    clip = cine_clips[clip_index % len(cine_clips)]
    runs = iter(range(1_000))

    def stream() -> RunResult:
        cfg = build_config(
            model=str(manifest.folder),
            source=str(clip),
            max_frames=profile.clip_frames,
            out=tmp_path / f"run{next(runs)}",
        )
        return run_stream(cfg)

    result = benchmark.pedantic(stream, rounds=1, iterations=1)
    assert result.frames > 0
    e2e = result.latency["stages"]["end_to_end"]
    record(
        benchmark,
        clip=clip.name,
        frames=result.frames,
        fps=result.fps,
        e2e_p99_ms=e2e["p99_ms"],
        precision=result.precision,
        profile=profile.name,
    )


def test_realtime_latency(
    benchmark, cine_clips: list[Path], manifest: Manifest, profile, record, tmp_path: Path, gate_log: list[Gate]
) -> None:
    """``--realtime`` at the clip's 30 fps: end-to-end p99 and frames dropped (recorded, not gated:
    absolute latency on a shared runner is the baseline comparison's job)."""
    clip = cine_clips[0]
    rt, bare = bracketed_by_floor(manifest, str(clip), profile.realtime_frames, lambda: benchmark.pedantic(
        measure_realtime, args=(manifest, str(clip), profile.realtime_frames, tmp_path), kwargs={"floor": False},
        rounds=1, iterations=1,
    ))  # the floor is measured untimed, before and after
    assert rt.frames > 0 and rt.frames + rt.dropped >= profile.realtime_frames * 0.9
    assert bare.count == profile.realtime_frames and bare.median_ms > 0
    record(
        benchmark,
        clip=clip.name,
        frames=rt.frames,
        dropped=rt.dropped,
        fps=rt.fps,
        e2e_p50_ms=rt.p50_ms,
        e2e_p99_ms=rt.p99_ms,
        e2e_max_ms=rt.max_ms,
        bare_infer_p50_ms=bare.median_ms,
        bare_infer_p99_ms=bare.p99_ms,
        precision=rt.precision,
        profile=profile.name,
    )
    gate_log.append(realtime_gate(rt.p99_ms, rt.dropped, floor_p99_ms=bare.p99_ms))


def test_glass_to_glass_latency(
    benchmark, cine_clips: list[Path], manifest: Manifest, profile, record, tmp_path: Path, gate_log: list[Gate]
) -> None:
    """Genlocked to the in-process simulated controller board (``sim://``, 30 fps): device
    acquisition → overlay ready, p50/p99 (the 12 ms p99 target is logged, not asserted)."""
    clip = cine_clips[0]
    n = profile.realtime_frames
    b, bare = bracketed_by_floor(manifest, str(clip), n, lambda: benchmark.pedantic(
        measure_realtime, args=(manifest, str(clip), n, tmp_path),
        kwargs={"bridge": "sim://", "floor": False}, rounds=1, iterations=1,
    ))  # the floor is measured untimed, before and after
    assert b.g2g_count > 0 and b.g2g_p99_ms >= b.g2g_p50_ms > 0
    record(
        benchmark,
        clip=clip.name,
        frames=b.frames,
        dropped=b.dropped,
        glass_to_glass_frames=b.g2g_count,
        glass_to_glass_p50_ms=b.g2g_p50_ms,
        glass_to_glass_p99_ms=b.g2g_p99_ms,
        e2e_p99_ms=b.p99_ms,
        bare_infer_p50_ms=bare.median_ms,
        bare_infer_p99_ms=bare.p99_ms,
        profile=profile.name,
    )
    gate_log.append(glass_to_glass_gate(b.g2g_p99_ms, b.dropped, floor_p99_ms=bare.p99_ms))


def test_gate_pipeline_ratio(
    cine_clips: list[Path], manifest: Manifest, profile, gate_log: list[Gate], tmp_path: Path, hardware
) -> None:
    """Pipeline FPS vs OpenVINO INT8 alone (THROUGHPUT hint, async, same frames, runs alternated), and
    vs OpenVINO's own benchmark_app on the same IR (recorded with the gates)."""
    bench = measure_pipeline(
        manifest, str(cine_clips[0]), profile.pipeline_frames, tmp_path, repeats=profile.pipeline_repeats,
        app_seconds=profile.app_seconds, no_video=True,
    )
    gate = pipeline_gate(bench.fps, bench.engine_fps, hardware["isa"])
    gate_log.append(gate)
    target = pipeline_target_gate(bench.fps, bench.engine_fps, hardware["isa"])
    if target is not None:
        gate_log.append(target)
    gate_log.extend(benchmark_app_gates(bench))
    gate_log.append(file_fps_gate(bench.fps, Path(bench.source).name))
    assert gate.passed, gate.message
