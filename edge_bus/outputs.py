"""The output side of the pipeline, on its own thread: postprocess → render → sinks, in frame order.

Inference results arrive from engine callbacks (possibly out of order with several async
requests); this stage puts them back in frame order, postprocesses (temporal smoothing needs
order), renders the overlay, writes the video and the frame log, and records telemetry.
End-to-end latency is capture → overlay ready.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from edge_bus.errors import EdgeBusError, OutputError
from edge_bus.postprocess import Postprocessor
from edge_bus.render import HudInfo, OverlayRenderer
from edge_bus.sinks.framelog import FrameLog
from edge_bus.sinks.video import VideoSink
from edge_bus.summary import VerdictTally
from edge_bus.telemetry.chart_series import ChartSeriesBuilder
from edge_bus.telemetry.stats import END_TO_END, FpsMeter, StageMetrics
from edge_bus.types import ROI, Frame, FrameRecord, ModelOutputs, Prediction, PreprocessMeta, StageTimes

log = logging.getLogger(__name__)


@dataclass
class InFlight:
    """A frame on its way through the pipeline, with the stage times measured so far (ms)."""

    seq: int
    frame: Frame
    meta: PreprocessMeta | None
    stages_ms: dict[str, float] = field(default_factory=dict)
    t_submit: float = 0.0
    outputs: ModelOutputs | None = None
    frozen: bool = False


HUD_FPS_AFTER = 10
"""The HUD shows an FPS once this many frames are out (before, it reads "-- FPS")."""

ResultSink = Callable[[Frame, Prediction], None]
"""Called with every frame the model answered and its prediction, on the outputs thread (a RESULT to the
board); not with frames shown while the device is frozen, which repeat the last answer."""


class OutputStage:
    """Consumes :class:`InFlight` items on a worker thread. Errors are kept in ``error``."""

    def __init__(self, post: Postprocessor, renderer: OverlayRenderer, framelog: FrameLog | None,
                 video: VideoSink | None, metrics: StageMetrics, operating_point: str, ordered: bool,
                 result_sinks: Sequence[ResultSink] = (),
                 display: Callable[[object], None] | None = None,
                 warm_up_size: tuple[int, int] | None = None, verdict: VerdictTally | None = None) -> None:
        self.post, self.renderer, self.framelog, self.video = post, renderer, framelog, video
        self.metrics, self.operating_point, self.ordered = metrics, operating_point, ordered
        self.result_sinks, self.display = list(result_sinks), display
        self.fps = FpsMeter()
        self.series = ChartSeriesBuilder(e2e=metrics[END_TO_END])  # what the report draws over time (bounded)
        # the clip verdict, added up as frames come (at the operating point; no lesion episodes without one)
        self.verdict = verdict or VerdictTally(post.op.threshold)
        self.frames_without_hw = 0  # frames logged without the board's hardware timestamps
        self.dropped = 0
        self.processed = 0
        self.last_e2e_ms = float("nan")  # the newest frame's, for a status line
        self._answered = False  # some frame has had its inference (until then frozen frames show no answer)
        self.last_label = ""
        self.error: BaseException | None = None
        self._queue: queue.Queue[InFlight | None] = queue.Queue()
        # answered frames not yet written (queued, or waiting for an earlier one): the main thread waits
        # on it (wait_below) so a slow renderer or disk holds the source back instead of letting a queue
        # grow: a live source then drops (counted) and a file source waits
        self._pending = 0
        self._pending_cond = threading.Condition()
        self._abandon = False
        self.abandoned = 0  # frames left unwritten by abandon()
        self._heap: list[tuple[int, InFlight]] = []
        self._next = 0
        self._last: Prediction | None = None
        self._scan_area: ROI | None = None  # the newest frame's, for the overlay's panels
        self._warm_up_size = warm_up_size
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outputs", daemon=True)
        self._thread.start()
        self._ready.wait(10.0)  # warmed up before the first frame arrives (a live frame must not wait)

    def attach(self, framelog: FrameLog | None, video: VideoSink | None) -> None:
        """Write to these from now on (before the first frame is put: the run's files are opened after
        the warm-ups)."""
        self.framelog, self.video = framelog, video

    # called from the engine's callback threads or the main thread
    def put(self, item: InFlight) -> None:
        with self._pending_cond:
            self._pending += 1
        self._queue.put(item)

    def done(self, user_data: object, outputs: ModelOutputs) -> None:
        """Engine completion callback."""
        assert isinstance(user_data, InFlight)
        user_data.stages_ms["infer"] = (time.perf_counter() - user_data.t_submit) * 1e3
        user_data.outputs = outputs
        self.put(user_data)

    @property
    def pending(self) -> int:
        """Frames handed to this stage (answered, or frozen) and not yet written."""
        return self._pending

    def wait_below(self, limit: int, stop: Callable[[], bool] | None = None, timeout: float = 0.1) -> None:
        """Block until fewer than ``limit`` frames are pending, this stage has failed or ended, or
        ``stop()`` is true (checked every ``timeout`` seconds)."""
        with self._pending_cond:
            while (self._pending >= limit and self.error is None and self._thread.is_alive()
                   and not (stop is not None and stop())):
                self._pending_cond.wait(timeout)

    @property
    def running(self) -> bool:
        """Its thread is still alive: :meth:`finish` has not ended it yet."""
        return self._thread.is_alive()

    def abandon(self) -> None:
        """Write no more frames: what is pending is dropped (not logged, not counted as processed), so
        :meth:`finish` returns at once. A second Ctrl-C while the backlog drains calls this."""
        self._abandon = True

    def finish(self, timeout: float | None = None) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            if self._warm_up_size is not None:  # on this thread: OpenCV's first draw costs ~30 ms per thread
                self.post.warm_up(self._warm_up_size)
                self.renderer.warm_up(self._warm_up_size)
        except Exception:  # best effort: a failed warm-up only leaves the first frame slower
            log.debug("postprocess or renderer warm-up failed", exc_info=True)
        finally:
            self._ready.set()
        while True:
            item = self._queue.get()
            if item is None:
                # flush what is left, in order, up to the first frame that never came back (an inference
                # failed: the run ends in its error, and the log stops at the last good frame, gapless)
                for _, pending in sorted(self._heap, key=lambda e: e[0]):
                    if pending.seq != self._next:
                        break
                    self._next = pending.seq + 1
                    self._safe_handle(pending)
                return
            if not self.ordered:
                self._safe_handle(item)
                continue
            heapq.heappush(self._heap, (item.seq, item))
            while self._heap and self._heap[0][0] <= self._next:
                _, ready = heapq.heappop(self._heap)
                self._next = ready.seq + 1
                self._safe_handle(ready)

    def _safe_handle(self, item: InFlight) -> None:
        try:
            if self._abandon:
                self.abandoned += 1
            elif self.error is None:
                self._handle(item)
        except EdgeBusError as exc:
            self.error = exc
        except OSError as exc:
            self.error = OutputError(f"cannot write outputs: {exc.strerror or exc}")
        except Exception as exc:  # a bug: keep it for the main thread to re-raise
            self.error = exc
        finally:
            with self._pending_cond:
                self._pending -= 1
                self._pending_cond.notify_all()

    def _handle(self, item: InFlight) -> None:
        frame = item.frame
        stages = item.stages_ms
        if not self.fps.started and self.ordered:
            # a file run's time starts with its first frame's capture, not with the set-up: frames over
            # the run's time, as benchmark_app counts its throughput; a live run's FPS is its rate of
            # answers, frame intervals over the time between the first and the last (a 30 fps probe read
            # 30.29 FPS over 90 frames counted the other way)
            self.fps.start(frame.t_capture)
        t = time.perf_counter()
        if frame.cut:  # a new scene (a --loop restart): the frames before say nothing of this one
            self.post.reset()
        if item.outputs is not None and item.meta is not None:
            pred = self.post.postprocess(item.outputs, item.meta, frame.pixel_spacing_mm)
            self._answered = True
        elif self._last is not None:  # frozen: keep the last answer on screen
            pred = replace(self._last, frozen=True)
        else:
            pred = _empty_prediction(frame, frozen=True)
        pred = replace(pred, frozen=item.frozen) if pred.frozen != item.frozen else pred
        self._last = pred
        t2 = time.perf_counter()
        stages["postprocess"] = (t2 - t) * 1e3
        # the HUD's latencies are this frame's up to now (drawing can't include its own time); its FPS
        # waits for a few frames (the first ones, with the pipeline filling, read 0 to 900 FPS)
        if item.meta is not None:
            self._scan_area = item.meta.roi  # a frozen frame keeps the last one
        # a frozen frame had no inference: its "latency" (0.1 ms) is no answer's, so none is shown
        answered = not item.frozen
        hud = HudInfo(fps=self.fps.recent_fps if self.fps.frames >= HUD_FPS_AFTER else None,
                      latency_ms=(t2 - frame.t_capture) * 1e3 if answered else None,
                      operating_point=self.operating_point, threshold=self.post.op.threshold,
                      frozen=pred.frozen, lesion_mm=pred.lesion_mm,
                      glass_to_glass_ms=(t2 - frame.hw.t_acquired_host) * 1e3 if frame.hw is not None and answered
                      else None,
                      scan_area=self._scan_area, latency_queued=self.ordered,  # ordered: a file run
                      waiting=not self._answered)
        overlay = self.renderer.render(frame, pred, hud)
        t3 = time.perf_counter()
        stages["render"] = (t3 - t2) * 1e3
        e2e = (t3 - frame.t_capture) * 1e3
        g2g = (t3 - frame.hw.t_acquired_host) * 1e3 if frame.hw is not None else None
        if self.video is not None:
            self.video.write(overlay)
        if self.display is not None:
            self.display(overlay)
        stages["write"] = (time.perf_counter() - t3) * 1e3
        times = StageTimes(stages_ms=dict(stages), e2e_ms=e2e, glass_to_glass_ms=g2g)
        if self.framelog is not None:
            self.framelog.write(FrameRecord(frame=frame, prediction=pred, times=times))
        # a frozen frame repeats the last answer without inference: it is logged and shown, but it is not
        # a new verdict (no RESULT to the board, not in the clip verdict) nor an end-to-end latency
        self.metrics.add_times(times, end_to_end=answered)
        self.dropped += frame.dropped_before
        self.last_e2e_ms = e2e if answered else float("nan")  # a frozen frame's is no answer's latency
        self.last_label = "frozen" if pred.frozen else pred.label
        self.processed += 1
        self.fps.tick()
        self.series.add(frame.index, e2e, stages, pred.label, pred.malignancy, pred.lesion, g2g,
                        frozen=item.frozen, dropped_before=frame.dropped_before)
        self.verdict.add(frame.index, pred.lesion, pred.malignancy, answered=answered)
        self.frames_without_hw += frame.hw is None
        if answered:
            for sink in self.result_sinks:
                sink(frame, pred)

    def add_result_sink(self, sink: ResultSink) -> None:
        """Also give every answered frame's result to ``sink`` (on the outputs thread, in frame order;
        frozen frames are not answered)."""
        self.result_sinks.append(sink)


def _empty_prediction(frame: Frame, frozen: bool) -> Prediction:
    import numpy as np

    h, w = frame.pixels.shape[:2]
    return Prediction(mask=np.zeros((h, w), dtype=bool), probs={"normal": 1.0, "benign": 0.0, "malignant": 0.0},
                      malignancy=0.0, lesion=False, label="normal", bbox=None, mask_area=0.0, frozen=frozen)
