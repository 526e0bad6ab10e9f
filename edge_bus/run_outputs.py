"""The run folder: opening its sinks up front, and closing them and writing the summaries at the end.

``--out DIR`` (default ``runs/<timestamp>``) receives ``frames.jsonl`` (one line per frame,
flushed as it goes), ``overlay.mp4`` (unless ``--no-video``), ``latency.json`` and ``report.html``.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_bus.errors import EdgeBusError, Interrupted, OutputError
from edge_bus.run_report import (
    FILE_LATENCY_NOTE,
    e2e_stages,
    link_note,
    report_notes,
    summary_rows,
    verdict_badge,
)
from edge_bus.sinks.files import (
    RESERVE_BYTES,
    SpaceReserve,
    free_bytes,
    nearest_existing,
    output_error,
    unwritable_reason,
)
from edge_bus.sinks.framelog import LOG_RESERVE_BYTES, FrameLog
from edge_bus.sinks.report import ReportData, write_report
from edge_bus.sinks.video import VIDEO_MIN_FREE_MB, VideoSink
from edge_bus.summary import Verdict, write_latency_json
from edge_bus.telemetry.hardware import hardware_facts
from edge_bus.telemetry.stats import LatencySummary
from edge_bus.zoo import LesionThresholdEvidence, Manifest

if TYPE_CHECKING:
    from edge_bus.pipeline import Pipeline


@dataclass
class RunFiles:
    out_dir: Path
    framelog: FrameLog
    video: VideoSink | None
    lock: OutFolderLock | None = None
    reserve: SpaceReserve | None = None  # given back when the sinks close, for the run's last writes

    def release(self) -> None:
        """Let another run write to this folder (after latency.json and report.html)."""
        if self.lock is not None:
            self.lock.release()

    def close(self) -> list[OutputError]:
        """Give back the reserved space, then close the frame log and the video (which writes its index)."""
        if self.reserve is not None:
            self.reserve.release()
        errors = []
        for sink in (self.framelog, self.video):
            if sink is None:
                continue
            try:
                sink.close()
            except OutputError as exc:
                errors.append(exc)
        return errors


def default_out_dir() -> Path:
    """A new ``runs/<YYYYmmdd-HHMMSS>`` folder, made here, with ``-2``, ``-3``, ... when that second's is
    taken: two runs started in one second wrote into one folder (the second's outputs replaced the first's,
    or it was refused as "another run is writing to" a folder nobody named). Made exclusively, so two runs
    at once can't both take one name."""
    stamp = Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    path, k = stamp, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            k += 1
            path = stamp.with_name(f"{stamp.name}-{k}")
        except OSError as exc:
            raise output_error(path, exc, "choose a writable --out folder") from None


class OutFolderLock:
    """An exclusive lock on the ``--out`` folder itself (``flock`` on the folder, no file left in it):
    two runs writing into one folder interleaved their frame logs and both exited 0. Where ``fcntl``
    does not exist (Windows) there is no lock."""

    def __init__(self, folder: Path) -> None:
        self._fd: int | None = None
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on Linux
            return
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputError(f"another edge-bus run is writing to {folder} — wait for it to end, or choose "
                              "another --out folder") from None
        except OSError:  # a file system without locks: run unlocked
            os.close(fd)
            return
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the lock


START_ROOM_BYTES = 8_000_000
"""Free space a run needs to start beyond what its sinks keep free and its reserve holds: room to write."""
_STALE = ("latency.json", "report.html", "overlay.mp4", "overlay.avi", SpaceReserve.NAME, "frames.jsonl")
"""A previous run's files, deleted first (their space counts as free). overlay.avi: the video where no mp4
encoder was found, left beside a new run's overlay.mp4; frames.jsonl deleted, not truncated: a link there
had its target overwritten, and a named pipe there hung the run."""


def start_space_needed(video: bool) -> int:
    """Bytes free that a run needs to start: what the video (or, without it, the frame log) keeps free, the
    reserve it holds, and room to write. Less started a run that the video stopped at once (69 MB free)."""
    keep = int(VIDEO_MIN_FREE_MB * 1e6) if video else LOG_RESERVE_BYTES
    return keep + RESERVE_BYTES + START_ROOM_BYTES


def _no_storage(folder: Path) -> str | None:
    """Why ``folder``'s file system holds no files, or None: a virtual one (/proc, /sys) has no blocks."""
    try:
        blocks = os.statvfs(folder).f_blocks
    except (OSError, AttributeError):  # no statvfs (Windows)
        return None
    return "it is on a virtual file system (such as /proc), not a disk" if blocks == 0 else None


def _check_start_space(out_dir: Path, video: bool) -> None:
    """Refuse a run, before its folder is made, on a disk too full for it (a previous run's files in
    ``out_dir`` count as free: they are deleted first)."""
    try:
        where = nearest_existing(out_dir)
        free = free_bytes(where)
        if free is None:
            return
        if where == out_dir:
            free += sum((out_dir / name).stat().st_size for name in _STALE if (out_dir / name).is_file())
    except OSError:  # the folder's own checks say what is wrong
        return
    need = start_space_needed(video)
    if free < need:
        # a read-only or virtual file system reports little or nothing free too: not "disk full" there
        reason = unwritable_reason(where) or _no_storage(where)
        if reason is not None:
            raise OutputError(f"can't write in {out_dir}: {reason} — choose a writable --out folder")
        other = "" if not video else f", {start_space_needed(False) / 1e6:.0f} MB with --no-video"
        raise OutputError(f"disk full: {free / 1e6:.0f} MB free for {out_dir}, and a run needs {need / 1e6:.0f} MB "
                          f"to start{other} — free space or choose another --out")


def open_run_files(out: Path | None, video: bool, fps: float, size: tuple[int, int]) -> RunFiles:
    # refused for a disk too full before any folder is made (the default one is made as it is named)
    _check_start_space(Path(out) if out is not None else Path("runs"), video)
    out_dir = Path(out) if out is not None else default_out_dir()
    probe = out_dir / ".write-test"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
    except OSError as exc:
        raise output_error(out_dir, exc, "choose a writable --out folder") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)  # also when the disk took the name but not the bytes
    lock = OutFolderLock(out_dir)
    try:
        return _open_sinks(out_dir, video, fps, size, lock)
    except BaseException:
        lock.release()
        raise


def _open_sinks(out_dir: Path, video: bool, fps: float, size: tuple[int, int], lock: OutFolderLock) -> RunFiles:
    for stale in _STALE:
        try:
            (out_dir / stale).unlink(missing_ok=True)
        except OSError as exc:
            raise output_error(out_dir / stale, exc, "choose another --out folder") from None
    # the video and the reserve first: a disk too full for them refuses the run before an empty
    # frames.jsonl is left
    sink = VideoSink(out_dir / "overlay.mp4", fps, size, background=True) if video else None
    reserve: SpaceReserve | None = None
    try:
        reserve = SpaceReserve(out_dir)
        framelog = FrameLog(out_dir / "frames.jsonl")
    except BaseException:
        if reserve is not None:
            reserve.release()
        if sink is not None:
            sink.close()  # no frames written: it leaves no file
        raise
    return RunFiles(out_dir, framelog, sink, lock, reserve)


@dataclass(frozen=True)
class FinalReport:
    """What :func:`finalize_run` wrote: the latency.json document and the clip verdict."""

    latency: dict[str, Any]
    verdict: Verdict
    stages: dict[str, LatencySummary]
    bridge_note: str | None = None  # the link to the board was not up throughout: what happened


RUNNING = ("not yet: the run is going, or was killed before it ended (SIGKILL, out of memory, a power cut); "
           "edge-bus report OUT rebuilds this file and report.html from frames.jsonl")
"""latency.json's ``ended`` while the run goes: :func:`write_started_latency` wrote it, the run's end
replaces it."""


def run_facts(p: Pipeline) -> dict[str, Any]:
    """latency.json's facts that are known before the first frame: ``mode``, ``hardware``, ``model``
    (with the thresholds the run uses) and ``source``."""
    engine = p.engine
    op = p.outputs.post.op
    loaded = _loaded_files(engine.model_file, p.manifest)
    return {
        "mode": "live" if p.live else "file",
        "hardware": hardware_facts(device=p.config.device, precision=engine.precision),
        "model": {"name": p.manifest.name, "version": p.manifest.version, "file": loaded[0],
                  "sha256": p.manifest.sha256.get(loaded[0]),
                  # an IR's .xml is only the topology: the weights that ran are in its .bin
                  "files_sha256": {f: p.manifest.sha256.get(f) for f in loaded},
                  "backend": engine.name, "precision": engine.precision, "requests": engine.requests,
                  "batch": engine.batch, "operating_point": op.name, "threshold": op.threshold,
                  "lesion_threshold": p.outputs.post.lesion_threshold,
                  "model_lesion_threshold": p.manifest.lesion_threshold},  # the manifest's own
        "source": {**p.source.info.to_json(), "roi": p.config.roi.as_list() if p.config.roi is not None else "auto"},
    }


def write_started_latency(p: Pipeline) -> None:
    """latency.json as the run starts: its :func:`run_facts`, no frames yet and ``ended`` :data:`RUNNING`.
    The run's end replaces it; a run killed before that (where no handler runs) leaves it, and
    ``edge-bus report`` then rebuilds the numbers on the machine, model and source the run really had."""
    write_latency_json(p.files.out_dir / "latency.json", {
        "stages": {}, "fps": 0.0, "frames": 0, "dropped": 0, **run_facts(p), "verdict": None, "ended": RUNNING,
        "error": None})


def finalize_run(p: Pipeline, error: BaseException | None, stopped: bool = False) -> FinalReport:
    """Close the sinks, then write latency.json and report.html for the frames processed.

    ``ended`` says why the run ended: ``end of source``, ``max frames`` (``--max-frames`` were read),
    ``stopped`` (the caller's stop event), ``interrupted`` (Ctrl-C, SIGTERM) or ``error`` (then
    ``error`` holds the message)."""
    close_errors = p.files.close()
    series = p.outputs.series.build()
    op = p.outputs.post.op
    info = p.source.info
    verdict = p.outputs.verdict.verdict()
    lesion_threshold = p.outputs.post.lesion_threshold
    models_own = lesion_threshold == p.manifest.lesion_threshold  # not one set with --lesion-threshold
    stages = p.metrics.stats()
    latency: dict[str, Any] = {
        "stages": {name: s.to_json() for name, s in stages.items()},
        "fps": round(p.outputs.fps.fps, 2),
        "frames": p.outputs.processed,
        "dropped": p.outputs.dropped,
        **run_facts(p),
        "verdict": verdict.to_json(),
        "ended": ("interrupted" if isinstance(error, Interrupted) else "error") if error is not None
        else ("stopped" if stopped else "max frames" if _limit_reached(p.source) else "end of source"),
        "error": None if error is None else str(error) if isinstance(error, EdgeBusError)
        else f"{type(error).__name__}: {error}",
    }
    if p.bridge is not None:
        latency["bridge"] = {"url": p.config.bridge, "counters": p.bridge.counters().to_json(),
                             "device_events": p.bridge.events().to_json(),
                             # FRAME_META that no replayed frame was paired with (a burst after a reconnect)
                             "skipped_metas": p.skipped_metas,
                             "connected_at_end": p.bridge.connected, "frames_without_hw": p.outputs.frames_without_hw}
    latency_path = p.files.out_dir / "latency.json"
    write_latency_json(latency_path, latency)
    notes = report_notes(latency) + [str(e) for e in close_errors]
    write_report(p.files.out_dir / "report.html", ReportData(
        title=f"edge-bus stream — {info.name}", summary=summary_rows(latency), latency=latency["stages"],
        hardware=latency["hardware"], series=series,
        verdict=verdict_badge(verdict, op.threshold),
        malignancy_threshold=op.threshold, lesion_threshold=lesion_threshold,
        # what the model's threshold did on validation says nothing about another one set for this run
        lesion_evidence=p.manifest.lesion_evidence if models_own else LesionThresholdEvidence(), notes=notes,
        e2e_stages=e2e_stages(info), latency_note="" if p.live else FILE_LATENCY_NOTE,
        episodes=verdict.episodes, episode_count=verdict.episode_count, fps=0.0 if info.still else info.fps))
    if close_errors:
        raise close_errors[0]
    return FinalReport(latency, verdict, stages, link_note(latency))


def _loaded_files(model_file: str, manifest: Manifest) -> list[str]:
    """The manifest's names of the files an engine read: an OpenVINO IR's .xml and the .bin the manifest
    names (the engine loads that one), an ONNX model's one file; the file's own name where the manifest
    does not list it (an engine of one's own)."""
    listed = {str(manifest.path(role)): name for role, name in manifest.files.items()}
    name = listed.get(str(model_file), os.path.basename(model_file))
    if name == manifest.files.get("openvino_int8_xml") and "openvino_int8_bin" in manifest.files:
        return [name, manifest.files["openvino_int8_bin"]]
    return [name, os.path.splitext(name)[0] + ".bin"] if name.endswith(".xml") else [name]


def _limit_reached(source: object) -> bool:
    """The run's source is a :class:`LimitedSource` that stopped at ``--max-frames``."""
    from edge_bus.sources.wrappers import LimitedSource

    return isinstance(source, LimitedSource) and source.limit_reached
