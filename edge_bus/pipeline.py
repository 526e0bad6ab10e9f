"""The stream pipeline, wired in exactly one place (:func:`compose`) and run by :func:`run_stream`.

    source ─Frame─▶ preprocess ─tensor─▶ engine (async) ─outputs─▶ [outputs thread]
                                                                   postprocess → render → video, frames.jsonl

* File sources lose no frame: the main thread decodes and preprocesses while OpenVINO runs
  several requests (THROUGHPUT hint) and the outputs thread renders and writes in frame order.
* Live sources (capture, ``--realtime`` files) keep only the newest frame, count every drop, and
  run one synchronous request at a time (LATENCY hint) so latency stays minimal.
* With ``--bridge``, frames carry the controller board's FRAME_META (hardware timestamps), a
  RESULT goes back for every frame, and while the device is frozen inference pauses.

Whatever happens (end of file, a corrupt frame, a full disk, Ctrl-C), :func:`run_stream` flushes
the frame log, closes the video, and writes ``latency.json`` and ``report.html`` for the frames
processed before it re-raises the error.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_bus.config import StreamConfig, capture_size
from edge_bus.engines import Engine, EngineConfig, create_engine
from edge_bus.errors import (
    ConfigError,
    EdgeBusError,
    Interrupted,
    OutputError,
    SourceError,
    error_for_signal,
    interrupted_saying,
    stop_signals,
)
from edge_bus.live import LatestFrameReader, StopFlag, hw_from_meta
from edge_bus.outputs import InFlight, OutputStage
from edge_bus.postprocess import PostprocessConfig, Postprocessor
from edge_bus.preprocess import Preprocessor, check_roi_fits
from edge_bus.render import OverlayRenderer
from edge_bus.run_outputs import FinalReport, RunFiles, finalize_run, open_run_files, write_started_latency
from edge_bus.run_report import episode_fps
from edge_bus.sinks.bridge import BridgeResultSink
from edge_bus.sinks.display import DisplayWindow, check_display
from edge_bus.sources import FrameSource, open_source, wrap_source
from edge_bus.sources._common import plausible_fps
from edge_bus.summary import Verdict, VerdictTally
from edge_bus.telemetry.stats import END_TO_END, PIPELINE_STAGES, LatencySummary, StageMetrics
from edge_bus.types import Frame
from edge_bus.zoo import Manifest, resolve_model

if TYPE_CHECKING:
    from firmware_bridge import HostBridge

ProgressFn = Callable[[int, int | None], None]
log = logging.getLogger("edge_bus")

LIVE_BACKLOG = 2
"""A live run reads its next frame once fewer than this many answered frames wait to be written: one
being written and one queued, so writing overlaps the next inference but never falls behind."""
FILE_BACKLOG = 16
"""A file run decodes ahead while fewer than this many answered frames wait to be written."""


@dataclass(frozen=True)
class RunResult:
    out_dir: Path
    frames: int
    dropped: int
    fps: float
    verdict: Verdict
    latency: dict[str, Any]  # the latency.json document, as written
    stages: dict[str, LatencySummary]  # each stage, end_to_end and (with a bridge) glass_to_glass
    precision: str
    stopped: bool = False  # ended by the caller's ``stop`` event before the source ended
    bridge_note: str | None = None  # with --bridge, when the link was not up throughout: what happened

    def one_line(self) -> str:
        """The summary printed at the end of ``edge-bus stream``."""
        p99 = self.stages[END_TO_END].p99_ms
        v = self.verdict
        link = f"; {self.bridge_note}" if self.bridge_note else ""
        e2e = f"e2e p99 {p99} ms" if p99 is not None else "no e2e (no frame was inferred)"
        if p99 is not None and self.latency.get("mode") == "file":  # a file run's frames wait in the queue
            e2e += " (read ahead: queue included)"
        return (f"{self.frames} frames, {self.dropped} dropped, {self.fps:.1f} FPS, {e2e}, "
                f"{self.precision}; clip verdict: {v.label} ({v.evidence()}){link} → {self.out_dir}")


@dataclass
class Pipeline:
    """Everything :func:`compose` chose; :func:`run_stream` only runs it."""

    config: StreamConfig
    source: FrameSource
    manifest: Manifest
    engine: Engine
    pre: Preprocessor
    outputs: OutputStage
    files: RunFiles
    metrics: StageMetrics
    bridge: HostBridge | None
    live: bool
    display: DisplayWindow | None = None
    # genlocked runs: FRAME_META passed over to pair a frame with the newest (after a link gap)
    skipped_metas: int = 0
    # a live source still inside a read when the run ended: releasing it then could crash OpenCV
    source_busy: bool = False
    # a live run that stopped: frames the reader dropped after the last one it handed over, and the
    # newest one it never handed over
    dropped_at_end: int = 0

    def close(self) -> None:
        """Close every part, each on its own: one that fails to close (logged) leaves none of the
        others open, and does not undo a run whose outputs are already written. Also for a pipeline
        that was composed and never run: its outputs thread ends, and the run's files are closed (the
        space reserve given back) and their folder released (it once kept two threads, two open files and
        the 8 MB reserve)."""
        if self.source_busy:
            log.warning("the source is still inside a read: left open (released when the process exits)")
            parts: list[Any] = []
        else:
            parts = [self.source]
        close_all([*parts, self.engine])  # no more frames, and no more answers for the outputs thread
        if self.outputs.running:  # composed and never run (a run has finished it)
            self.outputs.abandon()  # what was pending is dropped
            self.outputs.finish(timeout=10.0)
        for error in self.files.close():  # after a run: already closed, nothing to do
            log.warning("closing the run's files: %s", error)
        close_all([self.bridge, self.display])
        self.files.release()


def close_all(parts: list[Any]) -> None:
    """``part.close()`` for each part that is not None, in order; a failure is logged, not raised."""
    for part in parts:
        if part is None:
            continue
        try:
            part.close()
        except Exception as exc:  # noqa: BLE001 - the others must still close
            log.warning("closing %s failed: %s", type(part).__name__, exc)


EngineFactory = Callable[[Manifest, EngineConfig], Engine]


def compose(config: StreamConfig, source: FrameSource | None = None,
            renderer: OverlayRenderer | None = None, engine_factory: EngineFactory | None = None) -> Pipeline:
    """Choose the source, model, engine, sinks and bridge. The only place they are chosen.

    ``source``: a :class:`FrameSource` of your own (a frame grabber SDK, a simulation) instead of
    opening ``config.source`` (then only a label; ``max_frames`` still applies, ``loop`` is refused:
    loop inside your source). The pipeline owns it from the call on: it is closed at the end, and
    also when composing fails. ``renderer``: an :class:`OverlayRenderer` with your own
    :class:`~edge_bus.render.OverlayStyle`. ``engine_factory(manifest, engine_config)``: makes the
    engine instead of :func:`~edge_bus.engines.create_engine` (``config.backend``), e.g.
    :func:`edge_bus.engines.fake.fake_engine_factory` to rehearse a slow or failing device."""
    try:
        if not isinstance(config, StreamConfig):
            raise ConfigError(f"config must be a StreamConfig (edge_bus.StreamConfig or build_config), got "
                              f"{type(config).__name__}")
        config = config.validate()  # also the device name in OpenVINO's spelling
        if renderer is not None and not isinstance(renderer, OverlayRenderer):
            raise ConfigError(f"renderer must be an OverlayRenderer (e.g. OverlayRenderer(OverlayStyle(...))), got "
                              f"{type(renderer).__name__}")
        manifest = resolve_model(config.model)
        manifest.operating_point(config.operating_point)  # unknown names fail before anything opens
        if config.display:
            check_display()  # no screen: a clear error before anything opens
        if source is not None:
            source = wrap_source(source, loop=config.loop, max_frames=config.max_frames or None)
    except BaseException:
        if source is not None and hasattr(source, "close"):
            source.close()
        raise
    if source is None:
        size = capture_size(config.capture_width, config.capture_height)
        source = open_source(config.source, loop=config.loop, max_frames=config.max_frames or None,
                             capture_size=size, capture_fps=config.capture_fps or None,
                             capture_format=config.capture_format or None)
    parts: list[Any] = [source]
    files: RunFiles | None = None
    outputs: OutputStage | None = None
    try:
        display = DisplayWindow(probe=False) if config.display else None
        if display is not None:
            parts.append(display)
        info = source.info
        if info.kind != "capture" and (config.capture_width or config.capture_fps or config.capture_format):
            log.warning("--capture-size, --capture-fps and --capture-format set a capture device (or replay:); "
                        "%s source %s plays as it is", info.kind, info.name)
        if config.roi is not None and info.width and info.height:  # refused before any output is opened
            check_roi_fits(config.roi, info.width, info.height)
        if config.video and not (info.width > 0 and info.height > 0):  # an application's source may not know
            raise SourceError(f"source {info.name!r} gives no frame size ({info.width}x{info.height}), which the "
                              "overlay video needs up front — give it (--capture-size WxH for a capture device, "
                              "SourceInfo for your own source) or turn the video off (--no-video, video=False)")
        live = info.live or config.realtime or config.bridge is not None
        engine = (engine_factory or create_engine)(manifest, EngineConfig(
            backend=config.backend, device=config.device, precision=config.precision,
            hint="LATENCY" if live else "THROUGHPUT", requests=1 if live else config.requests,
            batch=config.batch if not live and config.backend == "openvino" else 1))
        if not isinstance(engine, Engine):
            raise ConfigError(f"engine_factory must return an Engine (edge_bus.engines.base.Engine), got "
                              f"{type(engine).__name__}")
        parts.append(engine)
        _warm_up(engine, manifest)  # also checks the output shapes, before any output file is opened
        bridge = None
        if config.bridge:
            from firmware_bridge import HostBridge

            bridge = HostBridge.open(config.bridge)
            parts.append(bridge)
            url = config.bridge
            bridge.on_status(lambda text: log.warning("bridge %s: %s", url, text))
        smoothing = 0.0 if info.still else config.smoothing
        post = Postprocessor(manifest, PostprocessConfig(operating_point=config.operating_point, smoothing=smoothing,
                                                         lesion_threshold=config.lesion_threshold))
        metrics = StageMetrics(PIPELINE_STAGES)
        op = post.op.name
        outputs = OutputStage(post, renderer or OverlayRenderer(), None, None, metrics, op,
                              ordered=not live, result_sinks=[BridgeResultSink(bridge)] if bridge else (),
                              display=display, warm_up_size=(info.width, info.height),
                              verdict=VerdictTally(post.op.threshold, fps=episode_fps(info)))
        engine.set_callback(outputs.done)
        # independent stills (a folder, a single-frame DICOM) each get their own scan area; video keeps
        # the last one and re-detects every 30 frames
        pre = Preprocessor(manifest.input, roi=config.roi, redetect_every=1 if info.still else 30)
        pre.warm_up((info.width, info.height))  # on this thread, which preprocesses every frame
        # the run's files last: opening them replaces a previous run's in the same --out, and a Ctrl-C in
        # the warm-ups above then left an empty frames.jsonl where that run's four files had been
        # the video plays at the source's rate when believable (a source of one's own may say 0.001)
        files = open_run_files(config.out, video=config.video, fps=plausible_fps(info.fps) or 30.0,
                               size=(info.width, info.height))
        outputs.attach(files.framelog, files.video)
        return Pipeline(config, source, manifest, engine, pre, outputs, files, metrics, bridge, live, display)
    except BaseException:
        if outputs is not None:  # its thread waits for frames that will not come
            outputs.finish(timeout=1.0)
        close_all(list(reversed(parts)))
        if files is not None:  # what failed came after the run folder was opened
            files.close()
            files.release()
        raise


def _warm_up(engine: Engine, manifest: Manifest) -> None:
    """One inference before the first frame: the runtime's first inferences cost up to 44 ms (measured
    on the first frames of a --realtime run), which the first live frame would otherwise pay. (The
    renderer warms up on the outputs thread: OpenCV's first draw costs ~30 ms once per thread.)"""
    spec = manifest.input
    engine.infer(np.zeros((1, spec.channels, spec.height, spec.width), np.float32))


def _submit(p: Pipeline, seq: int, frame: Frame, decode_ms: float) -> None:
    if frame.cut:  # before a frozen frame returns: the next file's scan area is detected afresh all the same
        p.pre.new_scene()
    if p.bridge is not None:
        if p.source.info.live:  # frames are matched by time here; the FRAME_META queue, read only by a
            # genlocked file's reader, filled to its 256 and counted every later meta as rx_dropped
            while p.bridge.next_meta(0.0) is not None:
                pass
        if frame.hw is None:
            meta = p.bridge.match(frame.t_capture)
            if meta is not None:
                frame = replace(frame, hw=hw_from_meta(meta))
        if p.bridge.frozen or (frame.hw is not None and frame.hw.frozen):
            p.outputs.put(InFlight(seq, frame, None, {"decode": decode_ms}, frozen=True))
            return
    t = time.perf_counter()
    try:
        tensor, meta_pre = p.pre.preprocess(frame.pixels)
    except SourceError as exc:  # a frame the model can't take: say which (a folder's stills differ in size)
        raise type(exc)(f"{exc} ({f'file {frame.file}, ' if frame.file else ''}frame {frame.index})") from None
    t2 = time.perf_counter()
    item = InFlight(seq, frame, meta_pre, {"decode": decode_ms, "preprocess": (t2 - t) * 1e3}, t_submit=t2)
    if p.live:
        outputs = p.engine.infer(tensor)
        p.outputs.done(item, outputs)
    else:
        p.engine.infer_async(tensor, item)


def expected_frames(p: Pipeline) -> int | None:
    """The frames the run will take: the source's count, else ``--max-frames`` (a ``--loop``, a capture
    device), else None (unknown)."""
    count = p.source.info.frame_count
    return count if count is not None else p.config.max_frames or None


def _loop(p: Pipeline, progress: ProgressFn | None, stop: StopFlag) -> None:
    total = expected_frames(p)
    reader = LatestFrameReader(p.source, pace=p.config.realtime, clock=p.bridge if (
        p.bridge is not None and not p.source.info.live) else None) if p.live else None
    seq = 0
    try:
        while p.outputs.error is None and not stop.is_set():
            if p.display is not None and p.display.quit_requested.is_set():
                break  # q / Esc in the window, or the window closed: a normal end
            # a slow renderer, display or disk holds the source back here: a live source then drops
            # (counted), a file waits; without it the outputs' queue grew without bound
            # (it also stops waiting when an inference failed: the answers after it wait for it in the
            # outputs' heap, and the failure surfaces at the next submit)
            p.outputs.wait_below(LIVE_BACKLOG if p.live else FILE_BACKLOG,
                                 lambda: stop.is_set() or p.engine.failed)
            t = time.perf_counter()
            if reader is not None:
                frame = reader.get(stop=stop)
                if frame is None:
                    if reader.error is not None:
                        raise reader.error
                    break
                decode_ms = frame.decode_ms  # read on the reader thread: the source's own measure
            else:
                frame = next(p.source, None)
                if frame is None:
                    break
                # a source that times its own decoding says so (a folder read its first image when opened)
                decode_ms = frame.decode_ms or (time.perf_counter() - t) * 1e3
            _submit(p, seq, frame, decode_ms)
            seq += 1
            if progress is not None:
                progress(p.outputs.processed, total)
    finally:
        if reader is not None:
            p.source_busy = not reader.close()
            p.skipped_metas = reader.skipped_metas
            p.dropped_at_end = reader.unreported_drops()


class _StopRequest:
    """Set by Ctrl-C (SIGINT), SIGTERM (``timeout``, ``systemctl stop``, ``docker stop``) or SIGHUP (the
    terminal closed; not under ``nohup``, which ignores it): the loop ends between frames and every
    output is finalised. An exception raised asynchronously at an arbitrary point could be lost in a
    runtime call; a second signal interrupts at once."""

    def __init__(self, user: threading.Event | None = None) -> None:
        self.event = threading.Event()  # set by a signal; the caller's own event is only ever read
        self.user = user
        self.signum: int | None = None
        # while the pipeline is composed (model, engine warm-up, the board's handshake), a signal also
        # raises KeyboardInterrupt at once: nothing is written yet, and compose closes what it opened (a
        # board that never answered held a Ctrl-C for its whole handshake, then exited 6, not 130)
        self.setting_up = False
        # once the run's outputs are being finalised, a repeated signal calls this instead of raising
        self.on_repeat: Callable[[], None] | None = None
        self._previous: dict[int, Any] = {}

    def is_set(self) -> bool:
        """A signal came, or the caller set its stop event."""
        return self.event.is_set() or (self.user is not None and self.user.is_set())

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for signum in stop_signals():
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.event.is_set():
            if self.on_repeat is not None:  # while the outputs are finalised: hurry, don't break them
                on_repeat, self.on_repeat = self.on_repeat, None
                on_repeat()
                return
            raise KeyboardInterrupt
        self.signum = signum
        self.event.set()
        if self.setting_up:
            raise KeyboardInterrupt

    def error(self) -> Interrupted:
        kind = error_for_signal(self.signum)
        return kind(kind.stopped_by)


def run_stream(config: StreamConfig, progress: ProgressFn | None = None,
               on_start: Callable[[Pipeline], None] | None = None, *, source: FrameSource | None = None,
               renderer: OverlayRenderer | None = None, stop: threading.Event | None = None,
               handle_signals: bool = True, engine_factory: EngineFactory | None = None) -> RunResult:
    """Run a stream to its end; outputs are always finalised, then any error is re-raised.

    ``progress(frames_done, frames_total_or_None)`` is called after each frame; ``on_start`` once
    with the composed :class:`Pipeline`. ``source`` / ``renderer`` / ``engine_factory``: see :func:`compose`.
    ``stop``: set this event (from any thread) to end the run after the current frame, normally:
    the result has ``stopped=True``. ``handle_signals``: while the run lasts, Ctrl-C (SIGINT) and
    SIGTERM end it cleanly with :class:`Interrupted` / :class:`Terminated` (the process's own
    handlers are restored after; only possible on the main thread). Pass False to keep yours.
    Errors: :class:`EdgeBusError` subclasses, their message extended with where the outputs are. An
    exception raised by your own ``progress``, ``on_start``, ``engine_factory`` or renderer is raised
    as it is, after the outputs are finalised (your source's comes back as a :class:`SourceError`)."""
    request = _StopRequest(stop)
    if handle_signals:
        request.install()  # before compose: a signal during the model's warm-up still ends the run cleanly
    request.setting_up = True
    p: Pipeline | None = None
    try:
        p = compose(config, source=source, renderer=renderer, engine_factory=engine_factory)
        request.setting_up = False
    except BaseException as exc:
        request.setting_up = False
        if p is None:  # else the signal came just after compose returned: the loop ends the run at once
            request.restore()
            if request.signum is None:
                raise
            # the signal's own KeyboardInterrupt, or what it cut short (a handshake that gave up meanwhile)
            raise interrupted_saying(request.error(), "before the first frame; no frame was processed") from (
                None if isinstance(exc, KeyboardInterrupt) else exc)
    error: BaseException | None = None
    try:
        write_started_latency(p)  # what a killed run leaves for edge-bus report: the machine, model and source
        if on_start is not None:
            on_start(p)
        _loop(p, progress, request)
        if request.signum is not None:
            error = request.error()
    except KeyboardInterrupt:
        error = request.error()
    except BaseException as exc:  # edge-bus errors, and anything else (recorded in latency.json, raised as is:
        error = exc  # a SystemExit too, which ended the run "at the end of the source", frame 0)
    finally:
        try:
            p.engine.wait()
        except KeyboardInterrupt:
            error = error or request.error()
        except Exception as exc:  # an inference that failed after the last frame was submitted
            error = error or exc
        # from here a repeated Ctrl-C leaves the frames still waiting unwritten instead of interrupting,
        # so what was written is still finalised (a third one interrupts at once)
        request.on_repeat = p.outputs.abandon
        try:
            p.outputs.finish()
            p.outputs.dropped += p.dropped_at_end
            if p.outputs.abandoned:
                log.warning("%d answered frames were left unwritten (Ctrl-C again while they were written)",
                            p.outputs.abandoned)
            if error is None and p.outputs.error is not None:
                error = p.outputs.error
            if error is None and request.signum is not None:  # it came while the last frames were written
                error = request.error()
            final: FinalReport | None = None
            try:
                final = finalize_run(p, error, stopped=error is None and request.is_set())
            except OutputError as exc:
                error = error or exc
        finally:
            try:
                p.close()
            finally:
                request.restore()
    if error is None and request.signum is not None:  # it came while the reports were written or parts closed
        error = request.error()
    if error is not None and not isinstance(error, EdgeBusError):
        raise error
    processed = p.outputs.processed
    if error is not None:
        # the same exception object, its message extended: a copy (type(error)(msg)) failed for
        # classes whose __init__ takes more than the message, and lost their attributes
        error.args = (f"{error} — {_what_was_kept(p, processed)}",)
        raise error
    assert final is not None  # without an error, finalize_run returned
    return RunResult(out_dir=p.files.out_dir, frames=processed, dropped=p.outputs.dropped,
                     fps=final.latency.get("fps", 0.0), verdict=final.verdict, latency=final.latency,
                     stages=final.stages, precision=p.engine.precision, stopped=request.is_set(),
                     bridge_note=final.bridge_note)


def _what_was_kept(p: Pipeline, processed: int) -> str:
    """Where the outputs of a run that ended in an error are, and which of them could not be written."""
    out_dir = p.files.out_dir
    # (a video with no frame in it leaves no file, by design)
    expected = ["frames.jsonl", *(["overlay.mp4"] if p.config.video and processed else []), "latency.json",
                "report.html"]
    if not out_dir.is_dir():
        return f"the output folder {out_dir} is gone"
    video = p.files.video
    missing = [name for name in expected if not (out_dir / name).is_file()]
    # written but unplayable (FFmpeg stopped at a failed write, so the index is missing)
    broken = ["overlay.mp4"] if "overlay.mp4" not in missing and video is not None and not video.playable else []
    kept = [name for name in expected if name not in missing and name not in broken]
    if not missing and not broken:
        return f"outputs in {out_dir} cover the {processed} frames processed before it"
    parts = [f"{', '.join(kept)} in {out_dir} cover{'s' if len(kept) == 1 else ''} the {processed} frames processed "
             "before it"] if kept else [f"nothing usable is left in {out_dir}"]
    if missing:
        parts.append(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing")
    if broken:
        parts.append("overlay.mp4 was cut off and does not play")
    return "; ".join(parts)
