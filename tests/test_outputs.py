"""The output stage: what the HUD is told for each frame."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from edge_bus.outputs import HUD_FPS_AFTER, InFlight, OutputStage
from edge_bus.render import HudInfo, OverlayRenderer
from edge_bus.telemetry.stats import StageMetrics
from edge_bus.types import ROI, Frame, HardwareMeta, ModelOutputs, Prediction, PreprocessMeta


class _Recorder(OverlayRenderer):
    def __init__(self) -> None:
        super().__init__()
        self.huds: list[HudInfo] = []

    def render(self, frame: Frame, prediction: Prediction, hud: HudInfo) -> np.ndarray:
        self.huds.append(hud)
        return super().render(frame, prediction, hud)


def test_hud_shows_this_frames_glass_to_glass_and_no_fps_before_it_means_something() -> None:
    """The HUD showed the previous frame's glass to glass (below this frame's e2e on a third of the
    frames, none on the first) and an FPS of 0 to 900 while the pipeline filled."""
    pred = Prediction(mask=np.zeros((32, 32), bool), probs={"normal": 1.0, "benign": 0.0, "malignant": 0.0},
                      malignancy=0.0, lesion=False, label="normal", bbox=None, mask_area=0.0)
    post = SimpleNamespace(postprocess=lambda *a: pred, op=SimpleNamespace(threshold=0.5))
    renderer = _Recorder()
    stage = OutputStage(post, renderer, None, None, StageMetrics(), "balanced", ordered=True)  # type: ignore[arg-type]
    for i in range(HUD_FPS_AFTER + 3):
        now = time.perf_counter()
        acquired = now - (0.005 if i % 2 else 0.040)  # glass to glass alternates 5 + e2e and 40 + e2e ms
        frame = Frame(i, np.zeros((32, 32), np.uint8), i / 30, now, time.time(),
                      hw=HardwareMeta(device_frame=i, t_acquired_host=acquired))
        stage.done(InFlight(i, frame, PreprocessMeta(32, 32, ROI(0, 0, 32, 32)), {}, t_submit=now),
                   ModelOutputs(np.zeros((16, 16), np.float32), np.zeros(2, np.float32)))
        time.sleep(0.002)
    stage.finish()
    assert stage.error is None and len(renderer.huds) == HUD_FPS_AFTER + 3
    for i, hud in enumerate(renderer.huds):
        assert hud.glass_to_glass_ms is not None
        gap = hud.glass_to_glass_ms - hud.latency_ms
        assert abs(gap - (5.0 if i % 2 else 40.0)) < 1.0, (i, hud)
    assert [h.fps is None for h in renderer.huds] == [i < HUD_FPS_AFTER for i in range(HUD_FPS_AFTER + 3)]


def test_frozen_frames_show_the_last_answer_and_drops_add_up() -> None:
    """After a malignant answer, a frozen frame (no inference) shows that answer, marked frozen; a
    frozen first frame shows 'normal'. Frames dropped before each frame (2, then 3) add up to 5."""
    from dataclasses import replace

    malignant = Prediction(mask=np.zeros((32, 32), bool), probs={"normal": 0.0, "benign": 0.2, "malignant": 0.8},
                           malignancy=0.8, lesion=True, label="malignant", bbox=None, mask_area=0.0)
    post = SimpleNamespace(postprocess=lambda *a: malignant, op=SimpleNamespace(threshold=0.5))
    shown: list[Prediction] = []

    class Shown(OverlayRenderer):
        def render(self, frame: Frame, prediction: Prediction, hud: HudInfo) -> np.ndarray:
            shown.append(prediction)
            return super().render(frame, prediction, hud)

    stage = OutputStage(post, Shown(), None, None, StageMetrics(), "balanced", ordered=True)  # type: ignore[arg-type]
    now = time.perf_counter()

    def frame(i: int, dropped: int = 0) -> Frame:
        return replace(Frame(i, np.zeros((32, 32), np.uint8), i / 30, now, time.time()), dropped_before=dropped)

    meta = PreprocessMeta(32, 32, ROI(0, 0, 32, 32))
    outputs = ModelOutputs(np.zeros((16, 16), np.float32), np.zeros(2, np.float32))
    stage.put(InFlight(0, frame(0), None, {}, frozen=True))
    stage.done(InFlight(1, frame(1, dropped=2), meta, {}, t_submit=now), outputs)
    stage.put(InFlight(2, frame(2, dropped=3), None, {}, frozen=True))
    stage.finish()
    assert stage.error is None
    assert [(p.label, p.frozen) for p in shown] == [("normal", True), ("malignant", False), ("malignant", True)]
    assert stage.dropped == 5 and stage.processed == 3


def test_results_completed_out_of_order_are_handled_in_frame_order() -> None:
    """Async inference requests finish in any order (here 2, 1, 0): the outputs thread handles them by
    frame number, so the log, the video and the board see frames in order."""
    pred = Prediction(mask=np.zeros((32, 32), bool), probs={"normal": 1.0, "benign": 0.0, "malignant": 0.0},
                      malignancy=0.0, lesion=False, label="normal", bbox=None, mask_area=0.0)
    post = SimpleNamespace(postprocess=lambda *a: pred, op=SimpleNamespace(threshold=0.5))
    renderer = _Recorder()
    stage = OutputStage(post, renderer, None, None, StageMetrics(), "balanced", ordered=True)  # type: ignore[arg-type]
    seen: list[int] = []
    stage.add_result_sink(lambda frame, prediction: seen.append(frame.index))
    now = time.perf_counter()
    meta = PreprocessMeta(32, 32, ROI(0, 0, 32, 32))
    for i in (2, 1, 0):
        frame = Frame(i, np.zeros((32, 32), np.uint8), i / 30, now, time.time())
        stage.done(InFlight(i, frame, meta, {}, t_submit=now), ModelOutputs(np.zeros((16, 16), np.float32),
                                                                           np.zeros(2, np.float32)))
    stage.finish()
    assert stage.error is None and seen == [0, 1, 2] and stage.processed == 3
