"""How a run holds back, stops and closes: a slow writer holds the source back (a live source drops,
counted; a file waits), a second Ctrl-C while the outputs are finalised leaves them valid, a signal
after the source ended is still a signal, every drop is counted, and every part closes."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import wait_until

from edge_bus import EngineError, Interrupted, StreamConfig, Terminated, run_stream
from edge_bus.engines.fake import FakeBehaviour, FakeEngine, fake_engine_factory
from edge_bus.outputs import OutputStage
from edge_bus.pipeline import FILE_BACKLOG, LIVE_BACKLOG, Pipeline
from edge_bus.render import HudInfo, OverlayRenderer
from edge_bus.sources import FrameSource, SourceInfo
from edge_bus.sources._common import make_frame
from edge_bus.types import Frame, ModelOutputs, Prediction
from firmware_bridge import HostBridge, SimConfig, SimulatedDevice


class SlowRenderer(OverlayRenderer):
    """Draws as usual after ``delay_s``, and notes how many frames waited to be written meanwhile."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.stage: OutputStage | None = None
        self.most_pending = 0
        self.requests = 0  # the engine's, set at the start

    def render(self, frame: Frame, prediction: Prediction, hud: HudInfo | None = None) -> np.ndarray:
        if self.stage is not None:
            self.most_pending = max(self.most_pending, self.stage.pending)
        time.sleep(self.delay_s)
        return super().render(frame, prediction, hud)


class LiveGrabber(FrameSource):
    """A live 30 fps device that counts the frames it delivered."""

    def __init__(self, fail_on_close: bool = False) -> None:
        self.delivered = 0
        self.fail_on_close = fail_on_close

    @property
    def info(self) -> SourceInfo:
        return SourceInfo(kind="sdk", name="grabber", width=64, height=64, fps=30.0, frame_count=None, live=True)

    def __next__(self) -> Frame:
        time.sleep(1 / 30)
        self.delivered += 1
        return make_frame(self.delivered - 1, np.full((64, 64, 3), 90, np.uint8), self.delivered / 30)

    def close(self) -> None:
        if self.fail_on_close:
            raise RuntimeError("SDK release failed")


def _engine(delay_ms: float = 0.0):  # type: ignore[no-untyped-def]
    return fake_engine_factory(FakeBehaviour(delay_ms=delay_ms))


def _attach(renderer: SlowRenderer):  # type: ignore[no-untyped-def]
    def on_start(p: Pipeline) -> None:
        renderer.stage = p.outputs
        renderer.requests = p.engine.requests
    return on_start


def test_a_slow_writer_makes_a_live_source_drop_instead_of_queueing(tmp_path: Path) -> None:
    """A renderer at 60 ms a frame behind a 30 fps source: the reader drops, every frame is
    accounted for, and no more than LIVE_BACKLOG frames ever wait to be written (the queue used to
    grow to 43 frames and e2e to 2.6 s)."""
    renderer = SlowRenderer(0.06)
    stop = threading.Event()
    source = LiveGrabber()
    timer = threading.Timer(2.0, stop.set)
    timer.start()
    result = run_stream(StreamConfig(source="grabber", out=tmp_path / "run", video=False), on_start=_attach(renderer),
                        source=source, renderer=renderer, stop=stop, handle_signals=False, engine_factory=_engine())
    timer.cancel()
    assert renderer.most_pending <= LIVE_BACKLOG
    assert result.dropped > 0 and result.frames + result.dropped == source.delivered
    assert result.stages["end_to_end"].max_ms is not None and result.stages["end_to_end"].max_ms < 1000


def test_a_slow_writer_makes_a_file_wait_and_lose_nothing(tmp_path: Path) -> None:
    renderer = SlowRenderer(0.01)
    result = run_stream(StreamConfig(source="demo", out=tmp_path / "run", video=False, max_frames=60),
                        on_start=_attach(renderer), renderer=renderer, handle_signals=False, engine_factory=_engine())
    assert renderer.most_pending <= FILE_BACKLOG + renderer.requests  # answers already in flight may land too
    assert result.frames == 60 and result.dropped == 0


def test_every_drop_of_a_stopped_live_run_is_counted(tmp_path: Path) -> None:
    """Stopped mid-run with a slow device: the frames the reader dropped after the last one it handed
    over, and the newest one nobody took, count too (they used to go missing)."""
    for attempt in range(2):
        source = LiveGrabber()
        stop = threading.Event()
        timer = threading.Timer(1.0 + 0.04 * attempt, stop.set)
        timer.start()
        result = run_stream(StreamConfig(source="grabber", out=tmp_path / f"run{attempt}", video=False),
                            source=source, stop=stop, handle_signals=False, engine_factory=_engine(120))
        timer.cancel()
        assert result.stopped and result.frames + result.dropped == source.delivered
        latency = json.loads((tmp_path / f"run{attempt}" / "latency.json").read_text())
        assert latency["dropped"] == result.dropped


def _signal_in_finish(monkeypatch: pytest.MonkeyPatch, signum: int) -> list[bool]:
    """Send ``signum`` to this process as the outputs start to be finalised; the list notes each time."""
    original = OutputStage.finish
    sent: list[bool] = []

    def finish(self: OutputStage, timeout: float | None = None) -> None:
        sent.append(True)
        os.kill(os.getpid(), signum)
        original(self, timeout)

    monkeypatch.setattr(OutputStage, "finish", finish)
    return sent


def test_a_second_ctrl_c_while_finalising_still_writes_every_report(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The first Ctrl-C ends the loop; the second, while the last frames are written, used to raise
    KeyboardInterrupt out of run_stream with no latency.json or report and the handlers left in."""
    sent = _signal_in_finish(monkeypatch, signal.SIGINT)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    threads_before = set(threading.enumerate())
    renderer = SlowRenderer(0.01)
    first: list[int] = []

    def progress(done: int, total: int | None) -> None:
        if done >= 5 and not first:
            first.append(done)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted, match="interrupted"):
        run_stream(StreamConfig(source="demo", out=tmp_path / "run", max_frames=200), progress,
                   renderer=renderer, engine_factory=_engine())
    assert first and sent
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    latency = json.loads((tmp_path / "run" / "latency.json").read_text())
    lines = (tmp_path / "run" / "frames.jsonl").read_text().splitlines()
    assert latency["ended"] == "interrupted" and latency["frames"] == len(lines) >= 5
    assert (tmp_path / "run" / "report.html").stat().st_size > 0
    assert not [t.name for t in set(threading.enumerate()) - threads_before if t.is_alive()]


def test_a_signal_after_the_source_ended_is_still_a_signal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM while the last frames are written: Terminated (exit 143), not a normal end reported as
    "stopped by the application before the source ended"."""
    sent = _signal_in_finish(monkeypatch, signal.SIGTERM)
    with pytest.raises(Terminated, match="SIGTERM"):
        run_stream(StreamConfig(source="demo", out=tmp_path / "run", video=False, max_frames=30),
                   engine_factory=_engine())
    assert sent
    latency = json.loads((tmp_path / "run" / "latency.json").read_text())
    assert latency["ended"] == "interrupted" and latency["frames"] == 30


def test_a_part_that_fails_to_close_leaves_none_of_the_others_open(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """The source's close raises: the bridge and the board's threads still end, the run's result
    stands, and the failure is logged."""
    stop = threading.Event()
    timer = threading.Timer(1.0, stop.set)
    timer.start()
    with caplog.at_level(logging.WARNING, logger="edge_bus"):
        result = run_stream(StreamConfig(source="grabber", out=tmp_path / "run", video=False, bridge="sim://?seed=1"),
                            source=LiveGrabber(fail_on_close=True), stop=stop, handle_signals=False,
                            engine_factory=_engine())
    timer.cancel()
    assert result.frames > 0 and "SDK release failed" in caplog.text
    assert wait_until(lambda: not [t.name for t in threading.enumerate() if t.name.startswith(("bridge", "sim"))])


def test_a_board_that_cannot_be_heard_is_not_frozen() -> None:
    """Frozen, then the cable pulled: the stream must not pause inference for the rest of the run."""
    with SimulatedDevice(SimConfig(fps=30, seed=3)) as device, HostBridge.open(device.url) as bridge:
        device.board.set_frozen(True)
        assert wait_until(lambda: bridge.frozen)
        device.board.unplug(60.0)
        assert wait_until(lambda: not bridge.connected)
        assert not bridge.frozen


class SlowToFail(FakeEngine):
    """Inference 5 fails after 0.5 s; every other one answers at once."""

    def _run_session(self, tensor: np.ndarray) -> ModelOutputs:
        if self.inferences == 5:
            self.inferences += 1
            time.sleep(0.5)
            raise EngineError("inference 5 failed")
        return super()._run_session(tensor)


def test_a_slow_failed_inference_ends_the_run_though_later_answers_filled_the_backlog(tmp_path: Path) -> None:
    """The answers after a failed inference wait for it in the outputs' heap and fill the backlog; the
    source then waited for room that never came (a hang) instead of submitting and hearing the error."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_stream(StreamConfig(source="demo", out=tmp_path / "run", video=False, max_frames=120,
                                    requests=4), handle_signals=False,
                       engine_factory=lambda manifest, config: SlowToFail(manifest, config))
        except BaseException as exc:  # noqa: BLE001 - checked below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the run hung after a failed inference"
    assert errors and isinstance(errors[0], EngineError) and "inference 5 failed" in str(errors[0])
    assert len((tmp_path / "run" / "frames.jsonl").read_text().splitlines()) == 4  # inference 0 is the warm-up


def test_a_signal_while_the_reports_are_written_is_still_a_signal(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM while latency.json and report.html are written used to end the run with exit 0."""
    import edge_bus.pipeline as pipeline

    original = pipeline.finalize_run

    def finalize(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "finalize_run", finalize)
    with pytest.raises(Terminated, match="SIGTERM"):
        run_stream(StreamConfig(source="demo", out=tmp_path / "run", video=False, max_frames=10),
                   engine_factory=_engine())
    assert (tmp_path / "run" / "report.html").exists()


class _InterruptedGrabber(FrameSource):
    """Raises KeyboardInterrupt at its fourth frame, as a capture SDK may when its own Ctrl-C handler runs."""

    def __init__(self, live: bool) -> None:
        self.count, self.live = 0, live

    @property
    def info(self) -> SourceInfo:
        return SourceInfo(kind="sdk", name="grabber", width=64, height=64, fps=30.0, frame_count=None, live=self.live)

    def __next__(self) -> Frame:
        if self.count == 3:
            raise KeyboardInterrupt
        self.count += 1
        return make_frame(self.count - 1, np.full((64, 64, 3), 100, np.uint8), self.count / 30)


@pytest.mark.parametrize("live", [False, True], ids=["file", "live"])
def test_a_source_interrupted_inside_its_read_ends_the_run_interrupted(tmp_path: Path, live: bool) -> None:
    """Live sources are read on their own thread, which kept only Exceptions: the KeyboardInterrupt
    ended that thread and the run returned as a success ("end of source"); a file run said interrupted."""
    with pytest.raises(Interrupted):
        run_stream(StreamConfig(source="grabber", out=tmp_path / "run", video=False),
                   source=_InterruptedGrabber(live), engine_factory=fake_engine_factory(), handle_signals=False)
    latency = json.loads((tmp_path / "run" / "latency.json").read_text())
    assert latency["ended"] == "interrupted" and 1 <= latency["frames"] <= 3
