"""The in-package fake inference device: the Engine interface, a known answer, a slow or failing
device on demand, and the whole pipeline run on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_model_dir

from edge_bus import ConfigError, EngineError, StreamConfig, run_stream
from edge_bus.engines import EngineConfig
from edge_bus.engines.fake import FakeBehaviour, FakeEngine, fake_engine_factory
from edge_bus.zoo import load_manifest


@pytest.fixture
def manifest(tmp_path: Path):  # type: ignore[no-untyped-def]
    return load_manifest(tiny_model_dir(tmp_path / "tiny"))


def test_it_answers_the_known_prediction_sync_and_async(manifest) -> None:  # type: ignore[no-untyped-def]
    tensor = np.zeros((1, 1, 32, 32), np.float32)
    with FakeEngine(manifest, EngineConfig(requests=2), FakeBehaviour(malignancy=0.8)) as engine:
        out = engine.infer(tensor)
        assert out.mask_logits.shape == (16, 16) and out.class_logits.shape == (2,)
        lesion = out.mask_logits > 0
        assert lesion[8, 8] and not lesion[0, 0] and lesion.sum() == pytest.approx(np.pi * 4**2, rel=0.35)
        assert 1 / (1 + np.exp(-out.class_logits[0])) == pytest.approx(0.9999)
        assert 1 / (1 + np.exp(-out.class_logits[1])) == pytest.approx(0.8)
        got: list[int] = []
        engine.set_callback(lambda user, outputs: got.append(int(user)))  # type: ignore[call-overload]
        for i in range(5):
            engine.infer_async(tensor, i)
        engine.wait()
        assert sorted(got) == [0, 1, 2, 3, 4] and engine.inferences == 6
    none = FakeEngine(manifest, EngineConfig(), FakeBehaviour(lesion=False)).infer(tensor)
    assert (none.mask_logits < 0).all() and 1 / (1 + np.exp(-none.class_logits[0])) == pytest.approx(0.01)


def test_it_fails_where_told_and_checks_its_settings(manifest) -> None:  # type: ignore[no-untyped-def]
    tensor = np.zeros((1, 1, 32, 32), np.float32)
    engine = FakeEngine(manifest, EngineConfig(), FakeBehaviour(fail_at=1))
    engine.infer(tensor)
    with pytest.raises(EngineError, match="fake engine: inference 1 failed"):
        engine.infer(tensor)
    with pytest.raises(EngineError, match="a float32 tensor of shape"):
        engine.infer(np.zeros((1, 1, 8, 8), np.float32))  # the same input check as a real engine
    for bad in ({"malignancy": 1.0}, {"delay_ms": -1}, {"fail_at": -2}, {"fail_at": 1.5}, {"lesion": "yes"}):
        with pytest.raises(ConfigError, match="FakeBehaviour"):
            FakeBehaviour(**bad)  # type: ignore[arg-type]


def test_a_device_failing_mid_stream_keeps_every_frame_before_it(tmp_path: Path) -> None:
    """The pipeline on the fake: the frames before the failure are logged in order and reported,
    the error is one EngineError naming the outputs (inference 0 is the warm-up)."""
    out = tmp_path / "run"
    with pytest.raises(EngineError, match="inference 26 failed"):
        run_stream(StreamConfig(source="demo", out=out, video=False), handle_signals=False,
                   engine_factory=fake_engine_factory(FakeBehaviour(malignancy=0.9, fail_at=26)))
    frames = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    assert 0 < len(frames) <= 25 and [f["frame"] for f in frames] == list(range(len(frames)))
    assert {f["label"] for f in frames} == {"malignant"}  # P(lesion) 0.9999 and 0.9 clear every shipped threshold
    latency = json.loads((out / "latency.json").read_text())
    assert latency["ended"] == "error" and "inference 26 failed" in latency["error"]
    assert (latency["model"]["file"], latency["model"]["backend"], latency["model"]["precision"]) == (
        "fake-engine", "fake", "fake")
    assert "<html" in (out / "report.html").read_text()


def test_a_slow_device_in_a_live_run_drops_frames_and_says_so(tmp_path: Path) -> None:
    """--realtime at 30 fps on a device that takes 60 ms: about every other frame is dropped."""
    result = run_stream(StreamConfig(source="demo", out=tmp_path / "run", video=False, realtime=True,
                                     max_frames=45), handle_signals=False,
                        engine_factory=fake_engine_factory(FakeBehaviour(delay_ms=60)))
    latency = json.loads((tmp_path / "run" / "latency.json").read_text())
    assert result.frames + latency["dropped"] >= 40 and latency["dropped"] >= 10
    assert latency["stages"]["infer"]["p50_ms"] >= 55


def test_still_images_are_never_smoothed(tmp_path: Path) -> None:
    """--smoothing blends a frame with the one before: right for video, wrong for a folder of
    unrelated images, where it is always off (composed here on the fake device)."""
    import cv2

    from edge_bus.pipeline import compose

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((64, 64), 60 + 40 * i, np.uint8))
    for source, expected in ((str(folder), 0.0), ("demo", 0.5)):
        p = compose(StreamConfig(source=source, smoothing=0.5, video=False, out=tmp_path / f"out{expected}"),
                    engine_factory=fake_engine_factory())
        try:
            assert p.outputs.post.config.smoothing == expected, source
        finally:
            p.close()
