"""Run outputs: frames.jsonl, overlay.mp4, report.html, and atomic file writes."""

from edge_bus.sinks.files import atomic_write_text, output_error
from edge_bus.sinks.framelog import FrameLog
from edge_bus.sinks.report import ReportData, VerdictBadge, render_report, write_report
from edge_bus.sinks.video import VideoSink

__all__ = [
    "FrameLog",
    "ReportData",
    "VerdictBadge",
    "VideoSink",
    "atomic_write_text",
    "output_error",
    "render_report",
    "write_report",
]
