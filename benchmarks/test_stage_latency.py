"""Each pipeline stage on its own, on a real cine clip, and the per-stage frame-budget gates.

decode (a cine clip frame), preprocess, postprocess, render, video write (mp4v encode).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edge_bus.bench_gates import FRAME_BUDGET_MS, STAGE_SHARES, Gate, stage_gates
from edge_bus.bench_measure import Timing, cycle
from edge_bus.bench_stream import measure_stages
from edge_bus.config import StreamConfig
from edge_bus.engines import Engine
from edge_bus.postprocess import PostprocessConfig, Postprocessor
from edge_bus.preprocess import Preprocessor
from edge_bus.render import HudInfo, OverlayRenderer
from edge_bus.sinks.video import VideoSink
from edge_bus.sources import open_source
from edge_bus.types import Frame, ModelOutputs, Prediction, PreprocessMeta
from edge_bus.zoo import Manifest


@dataclass(frozen=True)
class StageInputs:
    clip: Path
    frames: list[Frame]
    metas: list[PreprocessMeta]
    outputs: list[ModelOutputs]
    preds: list[Prediction]
    overlays: list[np.ndarray]
    hud: HudInfo


@pytest.fixture(scope="module")
def stage_inputs(cine_clips: list[Path], manifest: Manifest, engines: dict[str, Engine]) -> StageInputs:
    clip = cine_clips[0]
    with open_source(str(clip), max_frames=30) as src:
        frames = list(src)
    pre = Preprocessor(manifest.input)
    prepared = [pre.preprocess(f.pixels) for f in frames]
    outputs = [engines["openvino-int8"].infer(t) for t, _ in prepared]
    post = Postprocessor(manifest, PostprocessConfig(smoothing=StreamConfig().smoothing))
    preds = [post.postprocess(o, m) for o, (_, m) in zip(outputs, prepared, strict=True)]
    hud = HudInfo(fps=30.0, latency_ms=0.0, operating_point=post.op.name)
    renderer = OverlayRenderer()
    overlays = [renderer.render(f, p, hud) for f, p in zip(frames, preds, strict=True)]
    return StageInputs(clip, frames, [m for _, m in prepared], outputs, preds, overlays, hud)


def _bench(benchmark, profile, record, stage: str, fn: Callable[[], object]) -> object:
    """Time ``fn``; the last call's result, for the test to check that the stage did its work."""
    last = benchmark.pedantic(fn, rounds=profile.stage_rounds, warmup_rounds=5, iterations=1)
    record(
        benchmark,
        stage=stage,
        budget_share=STAGE_SHARES[stage],
        frame_budget_ms=round(FRAME_BUDGET_MS, 3),
        profile=profile.name,
    )
    return last


def test_stage_decode(benchmark, stage_inputs: StageInputs, profile, record) -> None:
    with open_source(str(stage_inputs.clip), loop=True) as src:
        frame = _bench(benchmark, profile, record, "decode", lambda: next(src))
    assert isinstance(frame, Frame) and frame.pixels.shape == stage_inputs.frames[0].pixels.shape


def test_stage_preprocess(benchmark, stage_inputs: StageInputs, manifest: Manifest, profile, record) -> None:
    pre = Preprocessor(manifest.input)
    out = _bench(benchmark, profile, record, "preprocess",
                 cycle(stage_inputs.frames, lambda f: pre.preprocess(f.pixels)))
    assert isinstance(out, tuple) and out[0].shape == (1, manifest.input.channels, manifest.input.height,
                                                          manifest.input.width)


def test_stage_postprocess(benchmark, stage_inputs: StageInputs, manifest: Manifest, profile, record) -> None:
    post = Postprocessor(manifest, PostprocessConfig(smoothing=StreamConfig().smoothing))
    pairs = list(zip(stage_inputs.outputs, stage_inputs.metas, strict=True))
    pred = _bench(benchmark, profile, record, "postprocess", cycle(pairs, lambda om: post.postprocess(om[0], om[1])))
    assert isinstance(pred, Prediction) and pred.mask.shape == stage_inputs.frames[0].pixels.shape[:2]


def test_stage_render(benchmark, stage_inputs: StageInputs, profile, record) -> None:
    renderer = OverlayRenderer()
    pairs = list(zip(stage_inputs.frames, stage_inputs.preds, strict=True))
    overlay = _bench(benchmark, profile, record, "render",
                     cycle(pairs, lambda fp: renderer.render(fp[0], fp[1], stage_inputs.hud)))
    assert isinstance(overlay, np.ndarray) and overlay.shape[:2] == stage_inputs.frames[0].pixels.shape[:2]


def test_stage_write(benchmark, stage_inputs: StageInputs, profile, record, tmp_path: Path) -> None:
    h, w = stage_inputs.overlays[0].shape[:2]
    with VideoSink(tmp_path / "write.mp4", 30.0, (w, h)) as sink:
        _bench(benchmark, profile, record, "write", cycle(stage_inputs.overlays, sink.write))
    assert sink.frames > 0


@pytest.fixture(scope="module")
def stage_timings(
    cine_clips: list[Path], manifest: Manifest, engines: dict[str, Engine], profile, tmp_path_factory
) -> Iterator[dict[str, Timing]]:
    """All five stages measured interleaved (same load for all) for the budget gates."""
    yield measure_stages(
        manifest, str(cine_clips[0]), engines["openvino-int8"], profile.stage_seconds, tmp_path_factory.mktemp("stages")
    )


@pytest.mark.parametrize("stage", list(STAGE_SHARES))
def test_gate_stage_budget(stage_timings: dict[str, Timing], gate_log: list[Gate], stage: str) -> None:
    (gate,) = stage_gates({stage: stage_timings[stage].median_ms})
    gate_log.append(gate)
    assert gate.passed, gate.message
