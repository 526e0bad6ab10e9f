"""The doctor's one-page report: JSON for machines, a self-contained HTML page for people.

JSON: ``{"passed": bool, "checks": [{"name", "value", "threshold", "passed", "advice", ...}],
"hardware": {...}, "model": {...}, "budget_ms", "duration_s", "generated_at"}``.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import numpy as np

from edge_bus.bench_html import badge, kv_table, page, section, table
from edge_bus.doctor import DoctorReport
from edge_bus.sinks import charts
from edge_bus.sinks.files import atomic_write_text

__all__ = ["REPORT_HINT", "render_doctor_html", "write_doctor_html", "write_doctor_json"]

REPORT_HINT = "choose another --json/--html path"


def write_doctor_json(path: Path, report: DoctorReport) -> Path:
    return atomic_write_text(path, json.dumps(report.to_json(), indent=2) + "\n", hint=REPORT_HINT)


def render_doctor_html(report: DoctorReport) -> str:
    rows, classes = [], []
    for i, c in enumerate(report.checks, 1):
        verdict = badge(c.passed) if c.required else '<span class="muted">info</span>'
        rows.append(
            [str(i), escape(c.name), escape(c.shown(c.value)), escape(c.shown_threshold()), verdict, escape(c.advice)]
        )
        classes.append("" if c.passed and c.required else ("info" if not c.required else "fail"))
    todo = "".join(f'<p class="advice"><b>{escape(c.name)}:</b> {escape(c.advice)}</p>' for c in report.failures)
    hist = charts.latency_histogram(np.asarray(report.e2e_ms, dtype=np.float64)) if report.e2e_ms else ""
    body = [
        section("What to do", todo) if todo else "",
        section("Checks", table(["#", "check", "value", "threshold", "verdict", "note"], rows, classes)),
        section(f"Latency of the validation clip at 30 fps (budget {report.budget_ms:.1f} ms; the frames its p99 "
                "check is over: those the model answered, after the pipeline's start)", hist),
        section("How it was run", kv_table({k: v for k, v in report.options.items() if v is not None}))
        if report.options else "",
        section("Model", kv_table(report.model)) if report.model else "",
        section("Hardware", kv_table(report.hardware)),
    ]
    n_fail = len(report.failures)
    host = report.hardware.get("hostname")
    parts = [str(host)] if host else []
    judged, info = report.tally()
    more = f" ({info} more for information)" if info else ""
    parts += [report.generated_at, f"{judged} checks, {n_fail} failed{more}", f"{report.duration_s:.0f} s"]
    if report.quick_check:
        parts.append(report.quick_check)
    subtitle = " · ".join(parts)
    return page("edge-bus doctor", subtitle, badge(report.passed), "".join(body))


def write_doctor_html(path: Path, report: DoctorReport) -> Path:
    return atomic_write_text(path, render_doctor_html(report), hint=REPORT_HINT)
