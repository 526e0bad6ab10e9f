"""What a run's report.html says, from its latency.json document: the summary table, the source line,
the latency note, the notes on the board. The run's end (:func:`~edge_bus.run_outputs.finalize_run`) and
``edge-bus report`` (:mod:`edge_bus.recover`) draw the same page from it.
"""

from __future__ import annotations

from typing import Any

from edge_bus.sinks.report import VerdictBadge
from edge_bus.sources.base import SourceInfo
from edge_bus.summary import ASSUMED_EPISODE_FPS, Verdict
from edge_bus.telemetry.stats import PIPELINE_STAGES

__all__ = ["FILE_LATENCY_NOTE", "board_events_note", "bridge_note", "e2e_stages", "episode_fps", "link_note",
           "report_notes", "source_text", "summary_rows", "verdict_badge"]


FILE_LATENCY_NOTE = (
    "A file run reads ahead to keep the engine busy: a frame's infer time runs from its submission to its "
    "answer, so it includes the wait in the engine's queue (and for its batch), and end to end follows. What a "
    "file run measures is its throughput (FPS); a live probe's latency comes from --realtime or a capture device.")


def verdict_badge(verdict: Verdict, threshold: float) -> VerdictBadge:
    """The report's badge: the clip's label, what it rests on, and the malignancy threshold it met."""
    return VerdictBadge(verdict.label, None, verdict.evidence() + (
        f" (malignant at ≥ {threshold:.4f})" if verdict.label in ("benign", "malignant") else ""))


def episode_fps(info: SourceInfo) -> float:
    """The frame rate the lesion episodes' gaps are measured at: 0 (no episodes) for independent stills,
    :data:`ASSUMED_EPISODE_FPS` when the source's is unknown."""
    return 0.0 if info.still else info.fps or ASSUMED_EPISODE_FPS


def source_text(info: SourceInfo) -> str:
    """The report's summary row for the source: "video: clip.avi (320x320 @ 30 fps)"; for independent
    stills "folder: benign (still images; the first 512x429)" (they differ in size and have no rate)."""
    if info.still:
        size = f"{info.width}x{info.height}"
        what = f"still images; the first {size}" if info.kind == "folder" else f"a still image, {size}"
        return f"{info.kind}: {info.name} ({what})"
    rate = f"{info.fps:g} fps" if info.fps > 0 else "frame rate unknown"
    return f"{info.kind}: {info.name} ({info.width}x{info.height} @ {rate})"


def e2e_stages(info: SourceInfo) -> tuple[str, ...]:
    """The stages inside ``e2e_ms`` (capture → overlay ready): decoding too when the source stamps its
    frames before decoding them (``SourceInfo.stamped_before_decode``, a capture device); the write
    follows the overlay."""
    first = "decode" if info.stamped_before_decode else "preprocess"
    return PIPELINE_STAGES[PIPELINE_STAGES.index(first) : PIPELINE_STAGES.index("write")]


def board_events_note(events: dict[str, Any]) -> str:
    """The report's note on what the board sent besides frames, from latency.json's
    ``bridge.device_events``: the counts, and the last ALERTs and ERRORs by name."""
    shown = [f"ALERT {a['code']} at board frame {a['device_frame']}" for a in events.get("last_alerts") or []]
    shown += [f"ERROR {e['code']}: {e['text']}" for e in events.get("last_errors") or []]
    return (f"the controller board sent {events.get('alerts', 0)} ALERT(s) and {events.get('errors', 0)} ERROR(s)"
            + (f" (the last: {'; '.join(shown)})" if shown else ""))


def summary_rows(latency: dict[str, Any]) -> dict[str, Any]:
    """The report's summary table from a latency.json document: the run's own at its end, or what a killed
    run left and ``edge-bus report`` finished (a rebuilt page dropped the sha256, the device, the mode, the
    lesion rule, the scan area and the board's line, though latency.json held them). Rows whose facts the
    document lacks (one rebuilt for a run that left none) are left out."""
    model = latency.get("model") or {}
    hardware = latency.get("hardware") or {}
    source = latency.get("source") if isinstance(latency.get("source"), dict) else None
    rows: dict[str, Any] = {"model": f"{model.get('name')} {model.get('version') or ''}".strip()}
    if model.get("sha256"):
        rows["sha256"] = model["sha256"]
    if model.get("backend"):
        device = f", {hardware['device']}" if hardware.get("device") else ""
        rows["backend"] = f"{model['backend']} ({model.get('precision')}{device})"
    if latency.get("mode") == "live":
        rows["mode"] = "live: newest frame first, one frame per inference"
    elif latency.get("mode") == "file":
        batch = model.get("batch") or 1
        rows["mode"] = (f"file: every frame, read ahead; {model.get('requests')} requests of {batch} "
                        f"frame{'s' if batch > 1 else ''}")
    if source is not None:
        rows["source"] = source_text(SourceInfo.from_json(source))
    rows.update(frames=latency.get("frames"), dropped=latency.get("dropped"), fps=latency.get("fps"))
    # 4 decimals, as in the manifest: at 3, 0.8925 read ">= 0.892" here and ">= 0.893" on the overlay
    rows["operating point"] = f"{model.get('operating_point')} (malignancy >= {float(model['threshold']):.4f})"
    used, own = model.get("lesion_threshold"), model.get("model_lesion_threshold")
    if isinstance(used, int | float):
        rows["lesion rule"] = f"P(lesion) >= {used:.4f}" + (
            "" if not isinstance(own, int | float) else " (the model's)" if abs(used - own) < 1e-12
            else f" (set for this run; the model's is {own:.4f})")
    if source is not None:
        roi = source.get("roi")
        rows["scan area"] = ("--roi " + ",".join(map(str, roi))) if isinstance(roi, list) else "detected automatically"
    bridge = latency.get("bridge")
    if isinstance(bridge, dict):
        frames = int(latency.get("frames") or 0)
        hw = frames - int(bridge.get("frames_without_hw") or 0)
        rows["bridge"] = (f"{bridge.get('url')}: {hw} of {frames} frames with the board's timestamps; "
                          f"link {'up' if bridge.get('connected_at_end') else 'down'} at the end")
    rows["ended"] = latency.get("ended")
    return rows


def bridge_note(lost: int, reconnects: int, connected: bool, without_hw: int, frames: int) -> str | None:
    """One sentence on the link to the board when it was not up throughout, else None: for the report
    and the end-of-run line (a link lost for good showed one warning mid-run, then nothing)."""
    if not lost and connected and not without_hw:
        return None
    state = "down at the end" if not connected else ("restored" if lost else "up")
    lost_text = f"lost {lost} time(s), reconnected {reconnects} time(s), {state}" if lost else state
    return f"link to the board {lost_text}: {without_hw} of {frames} frames have no hardware timestamps"


def link_note(latency: dict[str, Any]) -> str | None:
    """:func:`bridge_note` for a run's latency.json (None without a bridge)."""
    bridge = latency.get("bridge")
    if not isinstance(bridge, dict):
        return None
    counters = bridge.get("counters") or {}
    return bridge_note(int(counters.get("links_lost") or 0), int(counters.get("reconnects") or 0),
                       bool(bridge.get("connected_at_end")), int(bridge.get("frames_without_hw") or 0),
                       int(latency.get("frames") or 0))


def report_notes(latency: dict[str, Any]) -> list[str]:
    """The notes above the report's numbers that latency.json gives: what stopped the run early, the link
    to the board when it was not up throughout, what the board sent besides frames."""
    frames = int(latency.get("frames") or 0)
    notes = [f"stopped early: {latency['error']}"] if latency.get("error") else []
    if latency.get("ended") == "stopped":
        notes.append(f"stopped by the application after {frames} frames (before the source ended)")
    link = link_note(latency)
    if link:
        notes.append(link)
    bridge = latency.get("bridge")
    if isinstance(bridge, dict):
        events = bridge.get("device_events") or {}
        if events.get("alerts") or events.get("errors"):
            notes.append(board_events_note(events))
    return notes
