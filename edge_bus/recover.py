"""Rebuild a run's report from its frames.jsonl (``edge-bus report RUN_DIR``).

frames.jsonl is written and flushed frame by frame, so it survives what no handler sees: SIGKILL,
the kernel's OOM killer, a power cut. latency.json's numbers and report.html are written at the end of
a run, so such a run leaves no report, and only the latency.json a run writes as it starts (its machine,
model and source, ``ended`` :data:`~edge_bus.run_outputs.RUNNING`). :func:`rebuild_report` reads the
complete lines of frames.jsonl (a line torn by the kill is skipped) and writes report.html for them,
and latency.json's numbers too when the run did not finish it (``ended`` :data:`KILLED`, the facts the
run wrote kept). A run that left no latency.json at all (an edge-bus before 0.x session 26) gets one whose
``ended`` is :data:`REBUILT`: the hardware and source it ran on are not known then, and the model and
thresholds are the ones given. A run that did finish keeps its latency.json; its report.html is drawn
again by this version of edge-bus.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_bus import __version__
from edge_bus.checks import number_or_none
from edge_bus.errors import ConfigError, DataError, EdgeBusError, OutputError
from edge_bus.run_outputs import RUNNING, OutFolderLock
from edge_bus.run_report import FILE_LATENCY_NOTE, e2e_stages, episode_fps, report_notes, summary_rows, verdict_badge
from edge_bus.sinks.files import SpaceReserve, discard_temp
from edge_bus.sinks.report import ReportData, write_report
from edge_bus.sinks.video import playable
from edge_bus.sources.base import SourceInfo
from edge_bus.summary import Verdict, VerdictTally, write_latency_json
from edge_bus.telemetry.chart_series import ChartSeries, ChartSeriesBuilder
from edge_bus.telemetry.series import frame_lines, logged_values
from edge_bus.telemetry.stats import END_TO_END, StageMetrics
from edge_bus.types import StageTimes
from edge_bus.zoo import LesionThresholdEvidence

__all__ = ["RebuiltRun", "rebuild_report"]

_HINT = "make the run folder writable, or copy it somewhere writable and run edge-bus report on the copy"
REBUILT = "unknown: rebuilt from frames.jsonl (the run ended without writing latency.json)"
"""latency.json's ``ended`` when this module wrote it for a run that left none."""
KILLED = ("killed: rebuilt from frames.jsonl by edge-bus report (the run was stopped before it could finish "
          "latency.json: SIGKILL, out of memory, a power cut)")
"""latency.json's ``ended`` when this module finished the one a killed run started."""


@dataclass(frozen=True)
class RebuiltRun:
    """What :func:`rebuild_report` read and wrote."""

    out_dir: Path
    frames: int  # complete lines read from frames.jsonl
    skipped: int  # lines that were not a complete frame (the one a kill tore, typically)
    wrote_latency: bool  # latency.json was missing and was written
    verdict: Verdict
    broken_video: bool = False  # an overlay.mp4 is there and does not play (never closed)

    def one_line(self) -> str:
        wrote = "latency.json and report.html" if self.wrote_latency else "report.html (latency.json kept)"
        plural = "s" if self.skipped != 1 else ""
        torn = f" ({self.skipped} incomplete or invalid line{plural} skipped)" if self.skipped else ""
        video = "; overlay.mp4 does not play (never closed)" if self.broken_video else ""
        return (f"{self.frames} frames read from frames.jsonl{torn}; wrote {wrote}{video}; clip verdict: "
                f"{self.verdict.label} ({self.verdict.evidence()}) → {self.out_dir}")


@dataclass(frozen=True)
class _Log:
    """frames.jsonl read back in one pass, in memory that does not grow with it: the plotted numbers,
    the latency percentiles, and the times the report's rates come from."""

    series: ChartSeries
    metrics: StageMetrics  # each stage over the frames that ran it; end to end over the answered ones
    frames: int  # complete lines
    frame_span: tuple[int, int]  # the first and last frame's index in the source
    dropped: int
    skipped: int
    t_capture: tuple[float, float]  # first frame's capture, last frame's overlay ready (wall clock, s)
    t_source: tuple[float, float]  # first and last frame's position in the source (s)
    stills: bool = False  # the frames are independent images (a folder's lines name their file)
    first_done: float = 0.0  # the first frame's overlay ready (wall clock, s)


def rebuild_report(run_dir: str | Path, model: str | None = None, operating_point: str | None = None,
                   lesion_threshold: float | None = None) -> RebuiltRun:
    """Write ``run_dir``/report.html (and latency.json where missing) from ``run_dir``/frames.jsonl.

    The clip verdict needs the malignancy threshold the run used: latency.json's, when the run wrote
    one; else ``model``'s (a name, folder or manifest; default the shipped one) at ``operating_point``.
    ``lesion_threshold``: the one the run was given (``--lesion-threshold``), for a run that left no
    latency.json (default: the model's); the frames' ``lesion`` flags were set with it, and the report
    states it. Raises :class:`DataError` when there is no frames.jsonl or no complete frame in it,
    :class:`~edge_bus.errors.ConfigError` when ``model``, ``operating_point`` or ``lesion_threshold`` is
    given for a run whose own latency.json names them (one that edge-bus report wrote is written again with
    the ones given), :class:`~edge_bus.errors.OutputError` when the
    files can't be written."""
    out_dir = Path(run_dir)
    log_path = out_dir / "frames.jsonl"
    try:
        if not out_dir.is_dir():
            what = "is a file" if out_dir.exists() else "does not exist"
            raise DataError(f"{out_dir} {what}: give the folder a stream wrote (its --out)")
        found = log_path.is_file()
    except OSError as exc:  # a name too long for the file system, a loop of links
        raise DataError(f"can't read {out_dir}: {exc.strerror or exc} — give the folder a stream wrote "
                        "(its --out)") from None
    if not found:
        raise DataError(f"{out_dir} holds no frames.jsonl — give the folder a stream wrote (its --out)")
    try:
        lock = OutFolderLock(out_dir)  # a run still writing there writes its own reports when it ends
    except OutputError:
        raise OutputError(f"a stream is still writing to {out_dir}: it writes latency.json and report.html when "
                          "it ends — run edge-bus report after that") from None
    try:
        discard_temp(out_dir / SpaceReserve.NAME)  # held by a run that was killed: its space is not needed now
        return _rebuild(out_dir, log_path, model, operating_point, lesion_threshold)
    finally:
        lock.release()


def _rebuild(out_dir: Path, log_path: Path, model: str | None, operating_point: str | None,
             lesion_threshold: float | None) -> RebuiltRun:
    latency = _read_latency(out_dir / "latency.json")
    given = model is not None or operating_point is not None or lesion_threshold is not None
    # a latency.json that edge-bus report wrote holds what it was given (or the defaults), not what the
    # run used: it can be written again with other ones, and its report keeps saying they were given
    ended = (latency or {}).get("ended")
    guessed = ended == REBUILT
    if guessed and given:
        latency = None
    started = ended == RUNNING  # a killed run's: the facts it started with, no numbers
    if latency is not None and given:  # before reading what may be a long log
        raise ConfigError(f"{out_dir}/latency.json names the model and thresholds the run used: --model, "
                          "--operating-point and --lesion-threshold are for a run that left no latency.json")
    # the verdict is added up as the log is read when latency.json gives its threshold and the source's rate
    # (the episodes' gaps); else frames.jsonl is read again once the log has given the rate
    source = (latency or {}).get("source")
    known_fps = episode_fps(SourceInfo.from_json(source)) if isinstance(source, dict) else None
    tally = (VerdictTally(float(latency["model"]["threshold"]), fps=known_fps)
             if latency is not None and known_fps is not None else None)
    log = _read_log(log_path, tally)
    if log.frames == 0:
        raise DataError(f"{log_path} holds no complete frame: there is nothing to report")
    run_model = (latency or {}).get("model") or _model_facts(model, operating_point, lesion_threshold)
    threshold = float(run_model["threshold"])
    source_fps = known_fps if known_fps is not None else _log_fps(log)
    verdict = tally.verdict() if tally is not None else _verdict(log_path, threshold, source_fps)
    stages = log.metrics
    fps = _run_fps(log, live=(latency or {}).get("mode") == "live")
    wrote_latency = latency is None or started
    if latency is None or started:
        facts = latency or {"mode": None, "hardware": None, "model": run_model, "source": None}
        latency = {"stages": stages.summary(), "fps": fps, "frames": log.frames, "dropped": log.dropped,
                   **{key: facts.get(key) for key in ("mode", "hardware", "model", "source")},
                   "verdict": verdict.to_json(), "ended": KILLED if started else REBUILT, "error": None}
        write_latency_json(out_dir / "latency.json", latency, hint=_HINT)
    video = out_dir / "overlay.mp4"
    broken_video = video.is_file() and not playable(video)  # an MP4 is indexed when it is closed
    info = SourceInfo.from_json(latency["source"]) if isinstance(latency.get("source"), dict) else None
    notes = _notes(log.skipped, "killed" if latency.get("ended") == KILLED else "guessed"
                   if latency.get("ended") == REBUILT else "", broken_video) + report_notes(latency)
    write_report(out_dir / "report.html", ReportData(
        title=f"edge-bus stream — {info.name if info is not None else out_dir.resolve().name} (rebuilt)",
        summary={**summary_rows(latency), "frames": log.frames}, latency=stages.summary(),
        hardware=latency.get("hardware") or {}, series=log.series,
        verdict=verdict_badge(verdict, threshold),
        malignancy_threshold=threshold, lesion_threshold=number_or_none(run_model.get("lesion_threshold")), notes=notes,
        lesion_evidence=_lesion_evidence(run_model),
        episodes=verdict.episodes, episode_count=verdict.episode_count,
        fps=info.fps if info is not None else source_fps,
        e2e_stages=e2e_stages(info) if info is not None else None,
        latency_note=FILE_LATENCY_NOTE if latency.get("mode") == "file" else ""), hint=_HINT)
    return RebuiltRun(out_dir, log.frames, log.skipped, wrote_latency, verdict, broken_video)


def _notes(skipped: int, unfinished: str, broken_video: bool) -> list[str]:
    """What the rebuilt report says above its numbers: that it was rebuilt, and what is not known.
    ``unfinished``: "killed" (the run was killed; its latency.json's numbers were rebuilt), "guessed" (it
    left no latency.json: the model and thresholds were given to edge-bus report) or ""."""
    notes = [f"report.html rebuilt from frames.jsonl by edge-bus {__version__} on {time.strftime('%Y-%m-%d %H:%M')}"
             + (f"; {skipped} incomplete or invalid line(s) skipped" if skipped else "")]
    if unfinished == "killed":
        notes.append("the run was killed before it ended (SIGKILL, out of memory, a power cut): its latency numbers "
                     "were rebuilt from frames.jsonl; the machine, model and source are the ones it started with")
    elif unfinished == "guessed":
        notes.append("the run left no latency.json (it was killed, or lost power): the machine and source it ran on "
                     "are not known, and the model and thresholds are the ones given to edge-bus report")
    if broken_video:
        notes.append("overlay.mp4 is not playable: the run ended before it closed the video")
    return notes


def _read_log(path: Path, tally: VerdictTally | None = None) -> _Log:
    """Each stage's latency over the frames that ran it (a stage a frame did not run is left out), end to
    end and glass to glass over the frames the model answered (as the run itself counts them: a frozen
    frame repeats an answer, it took no inference), and the report's :class:`ChartSeries`; each frame also
    goes to ``tally``."""
    metrics = StageMetrics()
    builder = ChartSeriesBuilder(e2e=metrics[END_TO_END])
    frames = skipped = dropped = 0
    first: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    for obj in frame_lines(path):
        if obj is None:
            skipped += 1
            continue
        values = logged_values(obj, frames)
        builder.add(**values)
        metrics.add_times(StageTimes(values["stages_ms"], values["e2e_ms"], values["glass_to_glass_ms"]),
                          end_to_end=not values["frozen"])
        if tally is not None:
            _tally(tally, values)
        frames += 1
        dropped += values["dropped_before"]
        first = first or obj
        last = obj
    if first is None or last is None:
        return _Log(builder.build(), metrics, 0, (0, 0), 0, skipped, (0.0, 0.0), (0.0, 0.0))
    end = _finite(last.get("t_capture")) + _finite(last.get("e2e_ms")) / 1e3
    first_done = _finite(first.get("t_capture")) + _finite(first.get("e2e_ms")) / 1e3
    span = (logged_values(first)["frame"], logged_values(last)["frame"])
    return _Log(builder.build(), metrics, frames, span, dropped, skipped, (_finite(first.get("t_capture")), end),
                (_finite(first.get("t_source")), _finite(last.get("t_source"))), stills="file" in first,
                first_done=first_done)


def _verdict(path: Path, threshold: float, fps: float) -> Verdict:
    """The clip verdict over frames.jsonl, read again (a run that left no latency.json: the episodes' gaps
    are known once the first reading gave the source's rate)."""
    tally = VerdictTally(threshold, fps=fps)
    for index, obj in enumerate(line for line in frame_lines(path) if line is not None):
        _tally(tally, logged_values(obj, index))
    return tally.verdict()


def _tally(tally: VerdictTally, values: dict[str, Any]) -> None:
    """One frames.jsonl line (:func:`logged_values`) into the verdict."""
    tally.add(values["frame"], values["lesion"], values["malignancy"], answered=not values["frozen"])


def _read_latency(path: Path) -> dict[str, Any] | None:
    """A finished run's latency.json; None when there is none, or it is not a complete one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or number_or_none(model.get("threshold")) is None:
        return None
    return data


def _model_facts(model: str | None, operating_point: str | None, lesion_threshold: float | None) -> dict[str, Any]:
    """latency.json's ``model`` for a run that left none: the given model at the given operating point, with
    the given lesion threshold (default the model's)."""
    from edge_bus.zoo import resolve_model

    manifest = resolve_model(model)
    op = manifest.operating_point(operating_point)
    if lesion_threshold is not None and not 0.0 < lesion_threshold < 1.0:
        raise ConfigError(f"--lesion-threshold must be between 0 and 1, got {lesion_threshold}")
    return {"name": manifest.name, "version": manifest.version, "operating_point": op.name,
            "threshold": op.threshold,
            "lesion_threshold": manifest.lesion_threshold if lesion_threshold is None else lesion_threshold,
            "given_to": "edge-bus report (the run left no latency.json)"}


def _lesion_evidence(run_model: dict[str, Any]) -> LesionThresholdEvidence:
    """What the model's own lesion threshold did on validation, for the report's warning that a frame
    called normal may still show a lesion, when the run used that threshold and the model is one
    ``edge-bus`` finds by name; else nothing (it says nothing about another threshold)."""
    from edge_bus.zoo import resolve_model

    name, used = run_model.get("name"), number_or_none(run_model.get("lesion_threshold"))
    if not isinstance(name, str) or used is None:
        return LesionThresholdEvidence()
    try:
        manifest = resolve_model(name)
    except EdgeBusError:  # a model of one's own, given by its folder: not found by name now
        return LesionThresholdEvidence()
    same = manifest.version == run_model.get("version") and abs(manifest.lesion_threshold - used) < 1e-9
    return manifest.lesion_evidence if same else LesionThresholdEvidence()


def _log_fps(log: _Log) -> float:
    """The source's frame rate, for the lesion episodes' gaps, where latency.json does not give it: from the
    frames' positions in the source; 0 for independent stills (no episodes)."""
    if log.stills:
        return 0.0
    seconds = log.t_source[1] - log.t_source[0]
    return float(log.frame_span[1] - log.frame_span[0]) / seconds if seconds > 0 and log.frames > 1 else 0.0


def _run_fps(log: _Log, live: bool) -> float:
    """The run's FPS as the run counts it (OutputStage): a file run's frames over its first capture to its
    last overlay, a live run's frame intervals over its first overlay to its last."""
    start = log.first_done if live else log.t_capture[0]
    span = log.t_capture[1] - start
    frames = log.frames - 1 if live else log.frames
    return round(frames / span, 2) if span > 0 and frames > 0 else 0.0


def _finite(value: object) -> float:
    """A finite JSON number as a float; 0.0 for anything else (a field missing from an old log)."""
    number = number_or_none(value)
    return number if number is not None and math.isfinite(number) else 0.0
