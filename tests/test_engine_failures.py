"""An inference that fails mid-run ends the run with a one-line error and finalised outputs, on
either backend: never a frame silently missing, never a run without latency.json / report.html."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from edge_bus.config import build_config
from edge_bus.engines.onnxruntime import OnnxRuntimeEngine
from edge_bus.engines.openvino import OpenVINOEngine
from edge_bus.errors import EngineError, ModelError
from edge_bus.pipeline import run_stream


def check_finalised(out: Path) -> list[dict]:
    """latency.json says the run ended in an error, report.html exists, every log line is whole and
    logged frames are in order with none missing."""
    lat = json.loads((out / "latency.json").read_text())
    assert lat["ended"] == "error" and lat["error"]
    assert (out / "report.html").stat().st_size > 0
    recs = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in recs] == list(range(len(recs)))
    assert lat["frames"] == len(recs)
    return recs


@pytest.mark.parametrize("still_running", [False, True], ids=["done-before-next-frame", "still-running"])
def test_onnxruntime_failure_mid_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, still_running: bool) -> None:
    """It was dropped with its future (frame missing, run 'ended normally', later frames stuck in the
    reorder queue until the end), or, still running at the end, raised past the finalisation."""
    real, calls = OnnxRuntimeEngine._run_session, [0]

    def flaky(self: OnnxRuntimeEngine, tensor: object) -> object:
        calls[0] += 1
        if calls[0] == 12:  # the warm-up, frames 0-9, then frame 10 fails
            time.sleep(0.3 if still_running else 0.0)
            raise EngineError("ONNX Runtime inference failed: simulated")
        return real(self, tensor)  # type: ignore[arg-type]

    monkeypatch.setattr(OnnxRuntimeEngine, "_run_session", flaky)
    before = signal.getsignal(signal.SIGINT)
    out = tmp_path / "o"
    with pytest.raises(EngineError, match=r"simulated — outputs in .* cover the \d+ frames processed before it"):
        run_stream(build_config(source="demo", backend="onnxruntime", precision="fp32", max_frames=40, out=out,
                                video=False, requests=1))
    recs = check_finalised(out)
    assert len(recs) == 10  # frames 0-9; with one request nothing after the failed frame ran
    assert signal.getsignal(signal.SIGINT) is before


def test_openvino_failure_on_the_last_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The error of the last request comes out of engine.wait() in run_stream's clean-up, which skipped
    latency.json, report.html and closing the video."""
    real, calls = OpenVINOEngine._outputs, [0]

    def bad(self: OpenVINOEngine, mask: object, logits: object) -> object:
        calls[0] += 1
        if calls[0] == 21:  # the warm-up and 20 frames: the last one fails
            raise ModelError("simulated bad output")
        return real(self, mask, logits)  # type: ignore[arg-type]

    monkeypatch.setattr(OpenVINOEngine, "_outputs", bad)
    out = tmp_path / "o"
    with pytest.raises(ModelError, match="simulated bad output — outputs in"):
        run_stream(build_config(source="demo", max_frames=20, out=out, video=True))
    recs = check_finalised(out)
    assert len(recs) <= 19
    assert (out / "overlay.mp4").stat().st_size > 0


def test_fps_counts_from_the_first_frame(tmp_path: Path) -> None:
    """The meter started when the pipeline was set up, so start-up time (here a slow on_start)
    counted as streaming time: 19 FPS reported where 50+ ran."""
    t0: list[float] = []

    def slow_start(_: object) -> None:
        time.sleep(1.0)
        t0.append(time.perf_counter())

    res = run_stream(build_config(source="demo", max_frames=40, out=tmp_path / "o", video=False), on_start=slow_start)
    wall = time.perf_counter() - t0[0]  # also holds the finalisation: an upper bound on the frames' time
    assert res.fps >= res.frames / wall
