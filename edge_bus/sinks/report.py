"""report.html: one self-contained file (inline CSS and SVG, no scripts, no external resources).

Put a :class:`~edge_bus.telemetry.chart_series.ChartSeries` (the run over time, in bounded memory) with the
run's summary, latency and hardware facts into a :class:`ReportData` and call :func:`write_report`. The file is
written atomically: a crash never leaves half a report.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from edge_bus import __version__
from edge_bus.sinks import charts
from edge_bus.sinks.files import atomic_write_text
from edge_bus.sinks.svg import fmt_num
from edge_bus.telemetry.chart_series import ChartSeries
from edge_bus.zoo import LesionThresholdEvidence

if TYPE_CHECKING:
    from edge_bus.summary import LesionEpisode

__all__ = ["ReportData", "VerdictBadge", "display_name", "kv_table", "render_report", "write_report"]


@dataclass(frozen=True)
class VerdictBadge:
    """The run's overall call, shown as a badge: e.g. ``VerdictBadge("malignant", 0.87)``."""

    label: str
    confidence: float | None = None
    detail: str = ""


@dataclass(frozen=True, eq=False)
class ReportData:
    """Everything the report shows.

    ``summary``: rows of the summary table in order (model, sha256, source, frames, dropped, FPS,
    precision, device, ...); values may be str, numbers, bools, None, or small mappings/lists.
    ``latency``: ``StageMetrics.summary()`` (stage → {count, mean_ms, p50_ms, p90_ms, p99_ms, max_ms}).
    ``hardware``: ``hardware_facts()``. ``notes``: warnings shown under the header.
    """

    title: str
    summary: Mapping[str, object]
    latency: Mapping[str, Mapping[str, float | int | None]]
    hardware: Mapping[str, object]
    series: ChartSeries = field(default_factory=ChartSeries.empty)
    verdict: VerdictBadge | None = None
    malignancy_threshold: float | None = None
    #: P(lesion) at or above which a frame has a lesion (the manifest's); below it, the frame is normal
    lesion_threshold: float | None = None
    #: what that threshold did on the images it was chosen on (the manifest's): a frame called normal
    #: may still show a lesion
    lesion_evidence: LesionThresholdEvidence = field(default_factory=LesionThresholdEvidence)
    notes: Sequence[str] = ()
    generated_at: str = field(default_factory=lambda: _dt.datetime.now().astimezone().isoformat(timespec="seconds"))
    max_points: int = 1200
    #: the stages between capture and overlay-ready, which the timeline stacks under the end-to-end
    #: line (None: all). A file's decode comes before its capture stamp, every write after the overlay.
    e2e_stages: Sequence[str] | None = None
    #: what the latency numbers mean for this run, shown above them ("": nothing to add)
    latency_note: str = ""
    #: the stretches with a lesion in view (the verdict's), bracketed on the class timeline and listed
    episodes: Sequence[LesionEpisode] = ()
    #: how many episodes there were in all (None: those in ``episodes``; a long run lists the first
    #: :data:`~edge_bus.summary.MAX_LISTED_EPISODES` only)
    episode_count: int | None = None
    #: the source's frame rate, to give the episodes' times (0: unknown, frames only)
    fps: float = 0.0


def write_report(path: str | os.PathLike[str], data: ReportData, hint: str | None = None) -> Path:
    """Render ``data`` and write it atomically to ``path``; returns the path. Raises OutputError (with
    ``hint``, what to do; default: about ``--out``)."""
    return atomic_write_text(path, render_report(data), hint=hint)


# --------------------------------------------------------------------------- HTML
def html_value(v: object) -> str:
    """One value as table-cell HTML (None → a dash, floats to 3 significant digits, mappings one per line)."""
    if v is None:
        return '<span class="muted">—</span>'
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return escape(fmt_num(v))
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, Mapping):
        if v and all(isinstance(x, bool) or x is None for x in v.values()):
            return "".join(_chip(str(k), x) for k, x in v.items())
        return "<br>".join(f'<span class="muted">{escape(str(k))}:</span> {html_value(x)}' for k, x in v.items())
    if isinstance(v, list | tuple):
        return escape(", ".join(str(x) for x in v))
    return escape(str(v))


def _chip(name: str, on: bool | None) -> str:
    cls = "on" if on else ("unknown" if on is None else "off")
    mark = "✓" if on else ("?" if on is None else "✗")
    return f'<span class="chip {cls}">{mark} {escape(name)}</span>'


_NAMES = {
    "sha256": "sha256",
    "fps": "FPS",
    "cpu_model": "CPU model",
    "cores_logical": "Logical cores",
    "cores_physical": "Physical cores",
    "cores_available": "Cores available to this process",
    "isa": "ISA extensions",
    "ram_gb": "RAM (GB)",
    "os": "OS",
    "python": "Python",
    "openvino": "OpenVINO",
    "onnxruntime": "ONNX Runtime",
    "openvino_devices": "OpenVINO devices",
    "hostname": "Host name",
    "budget_ms": "Latency budget (ms)",
    "capture_fps": "Capture FPS",
}


def display_name(key: str) -> str:
    """How a table shows a key: known ones spelled properly, other identifiers "snake_case" → "Snake
    case"; a key with a space in it is already written for people and only gets its capital (unless it
    starts with a name such as benchmark_app)."""
    if key in _NAMES:
        return _NAMES[key]
    if " " in key and "_" in key.split(" ", 1)[0]:
        return key
    text = key if " " in key else key.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def kv_table(rows: Mapping[str, object]) -> str:
    """A two-column table of a mapping, its keys through :func:`display_name`."""
    body = "".join(f"<tr><th>{escape(display_name(str(k)))}</th><td>{html_value(v)}</td></tr>" for k, v in rows.items())
    return f'<table class="kv">{body}</table>' if body else '<p class="muted">none</p>'


def _latency_table(latency: Mapping[str, Mapping[str, float | int | None]]) -> str:
    cols = ("count", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms")
    head = "".join(f"<th>{c.replace('_ms', '')}</th>" for c in cols)
    rows = []
    for stage, s in latency.items():
        cells = "".join(f"<td>{_ms(s.get(c)) if c != 'count' else html_value(s.get(c))}</td>" for c in cols)
        cls = ' class="total"' if stage in charts.SUMMARY_STAGES else ""
        rows.append(f"<tr{cls}><th>{escape(stage.replace('_', ' '))}</th>{cells}</tr>")
    if not rows:
        return '<p class="muted">no latency recorded</p>'
    return f'<table class="num"><thead><tr><th>stage (ms)</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _ms(v: object) -> str:
    return f"{v:.2f}" if isinstance(v, int | float) and not isinstance(v, bool) else html_value(None)


def _tiles(data: ReportData) -> str:
    """The headline numbers: frames, FPS (the summary's), end-to-end p50/p99 (and glass-to-glass p50
    when measured)."""
    tiles = [("frames", f"{data.series.frame_count:,}", "")]
    fps = data.summary.get("fps")
    if isinstance(fps, int | float) and not isinstance(fps, bool) and math.isfinite(fps):
        tiles.append(("frames per second", fmt_num(float(fps)), ""))
    for key, name in (("end_to_end", "end-to-end"), ("glass_to_glass", "glass-to-glass")):
        s = data.latency.get(key) or {}
        for q in ("p50", "p99") if key == "end_to_end" else ("p50",):
            v = s.get(f"{q}_ms")
            if isinstance(v, int | float):
                tiles.append((f"{name} {q}", fmt_num(float(v)), "ms"))
    cells = "".join(
        f'<div class="tile"><div class="v">{escape(v)}<span class="u">{u}</span></div>'
        f'<div class="k">{escape(k)}</div></div>'
        for k, v, u in tiles
    )
    return f'<div class="tiles">{cells}</div>'


def _verdict(v: VerdictBadge | None) -> str:
    if v is None:
        return ""
    color = charts.CLASS_COLORS.get(v.label.lower(), charts.OTHER_COLOR)
    ink = charts.CLASS_TEXT_COLORS.get(v.label.lower(), "#5f6368")
    conf = f' <span class="conf">{v.confidence:.2f}</span>' if v.confidence is not None else ""
    detail = f'<div class="detail">{escape(v.detail)}</div>' if v.detail else ""
    return (f'<div class="verdict" style="--c:{color};--t:{ink}"><div class="big">{escape(v.label.upper())}{conf}'
            f'</div>{detail}</div>')


def _episode_count(data: ReportData) -> int:
    return len(data.episodes) if data.episode_count is None else data.episode_count


def _episode_table(episodes: Sequence[LesionEpisode], fps: float, total: int) -> str:
    """The lesion episodes, numbered as on the class timeline, each with its own label; ``total``: how
    many there were in all."""
    if not episodes:
        return ""
    from edge_bus.summary import (  # here: summary imports the sinks
        ASSUMED_EPISODE_FPS,
        EPISODE_GAP_S,
        EPISODE_MIN_S,
        MAX_LISTED_EPISODES,
    )

    rows = []
    for i, e in enumerate(episodes[: charts.MAX_SHOWN_EPISODES], start=1):
        when = f"{e.first_frame / fps:.1f}–{e.last_frame / fps:.1f}" if fps > 0 else "—"
        color = charts.CLASS_TEXT_COLORS.get(e.label, "#5f6368")
        rows.append(f"<tr><th>{i}</th><td>{e.first_frame:,}–{e.last_frame:,}</td><td>{when}</td>"
                    f"<td>{e.lesion_frames:,}</td><td>{e.mean_malignancy:.2f}</td>"
                    f'<td style="color:{color};font-weight:600">{escape(e.label)}</td></tr>')
    head = ("<tr><th>episode</th><th>frames</th><th>seconds</th><th>lesion frames</th>"
            "<th>mean P(malignant | lesion)</th><th>label</th></tr>")
    unknown = (f" The source does not give its frame rate: the seconds are counted at an assumed "
               f"{ASSUMED_EPISODE_FPS:g} fps, and not shown." if fps <= 0 else "")
    more = total - len(rows)
    more_text = (f" The first {len(rows)} of {total:,} episodes are listed, and none bracketed on the "
                 f"timeline (past {charts.MAX_SHOWN_EPISODES} they can't be told apart); latency.json lists up to "
                 f"{MAX_LISTED_EPISODES:,}." if more > 0 else "")
    return (f'<table class="num"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
            f'<p class="muted">A lesion episode: lesion frames at most {EPISODE_GAP_S:g} s apart, at least '
            f"{EPISODE_MIN_S:g} s of them; each is labelled by its own mean malignancy, which the clip verdict "
            f"(over all lesion frames) blends.{unknown}{more_text}</p>")


def _section(title: str, body: str, cls: str = "") -> str:
    return f'<section class="{cls}"><h2>{escape(title)}</h2>{body}</section>'


def _figure(svg: str, caption: str) -> str:
    if not svg:
        return ""
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


FROZEN_NOTE = "; grey: frames shown while the board froze the image (no inference: they repeat the answer before)"


def render_report(data: ReportData) -> str:
    """The complete HTML document as a string."""
    s = data.series
    n = s.frame_count
    notes = "".join(f'<p class="note">{escape(x)}</p>' for x in data.notes)
    parts = [
        f'<header><div><h1>{escape(data.title)}</h1><p class="muted">generated {escape(data.generated_at)} '
        f"· edge-bus {escape(__version__)} · {n:,} frames</p></div>{_verdict(data.verdict)}</header>",
        notes,
        _tiles(data),
        _section("Summary", kv_table(data.summary)),
    ]
    if n == 0:
        parts.append(_section("Frames", '<p class="empty">no frames processed</p>'))
        lat = _latency_table(data.latency) if any(v.get("count") for v in data.latency.values()) else ""
        if lat:
            parts.append(_section("Latency", lat))
    else:
        buckets = min(len(s.frames), data.max_points)
        down = f" — {n:,} frames shown as {buckets:,} buckets" if n > buckets else ""
        parts.append(
            _section(
                "Latency",
                (f'<p class="note">{escape(data.latency_note)}</p>' if data.latency_note else "")
                + _figure(charts.latency_histogram(s.e2e_distribution), "End-to-end latency per frame (all frames"
                        + (" the model answered; frozen ones are left out, as in the table" if s.frozen_count
                           else "") + ").")
                + _figure(charts.stage_bars(data.latency), "Mean milliseconds per stage.")
                + _latency_table(data.latency),
            )
        )
        parts += _timelines(data, down) if n > 1 else [_section("Over time", (
            '<p class="note">One frame: the timelines need two or more (its numbers are in the tables above).</p>'))]
    parts.append(_section("Hardware", kv_table(data.hardware)))
    return _PAGE.format(title=escape(data.title), css=_CSS, body="".join(parts))


def _timelines(data: ReportData, down: str) -> list[str]:
    """The latency and the predictions over time (two frames or more: one frame drew a dot at the axis
    under a five-item legend, and a class band over half an axis that read as a missing second frame)."""
    s = data.series
    parts: list[str] = []
    # a frozen frame repeats the answer before it (no inference): its stage times, end to end, glass to
    # glass, class and malignancy are left out of the lines and drawn as their own grey class, as the
    # table and the verdict leave them out (its stage times stacked into the areas, which ramped into
    # every freeze); ChartSeries keeps them out
    frozen = s.frozen_count > 0
    inside = data.e2e_stages
    outside = [k for k in s.stages if inside is not None and k not in inside]
    timeline = charts.latency_timeline(s, inside, data.max_points)
    caption = "Stacked stage times under the end-to-end line"
    if outside:
        caption += f" ({', '.join(outside)}: outside the capture → overlay-ready window, so not stacked)"
    if s.dropped is not None:
        caption += ". Red ticks: frames were dropped just before (a live source keeps only the newest frame)"
    parts.append(_section("Latency over time", _figure(timeline, f"{caption}{down}.")))
    # P(malignant | lesion) means nothing on a frame without a lesion: drawn there, it showed normal
    # frames far above the malignancy threshold (ChartSeries keeps the lesion frames' only)
    total = _episode_count(data)
    bracketed = 0 < total <= charts.MAX_SHOWN_EPISODES
    classes = charts.class_timeline(s, data.malignancy_threshold, data.max_points,
                                    [(e.first_frame, e.last_frame) for e in data.episodes] if bracketed else [])
    rule = (f"P(lesion) ≥ {data.lesion_threshold:.4f}" if data.lesion_threshold is not None
            else "the model's presence score")
    evidence = data.lesion_evidence.sentence()
    if evidence:
        rule += f"; {escape(evidence)}, so a frame called normal may still show one"
    parts.append(_section("Predictions over time", _figure(classes, (
        f"Predicted class per frame, and P(malignant | lesion) on the frames with a lesion ({rule}); a frame "
        f"with a lesion is malignant when that reaches the threshold line, else benign"
        f"{FROZEN_NOTE if frozen else ''}"
        f"{'; the numbered brackets are the lesion episodes below' if bracketed else ''}{down}."))
        + _episode_table(data.episodes, data.fps, total)))
    return parts


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{css}</style></head>
<body><main>{body}</main></body></html>
"""

BASE_CSS = """\
.chip{display:inline-block;border-radius:10px;padding:0 8px;margin:1px 4px 1px 0;font-size:12px;border:1px solid}
.chip.on{background:#e6f4ea;border-color:#9ccfac;color:#1e6b3a}
.chip.off{background:#f5f5f5;border-color:#ddd;color:#888}
.chip.unknown{background:#fff8e1;border-color:#f0d48a;color:#8a6d00}
:root{--ink:#1f2933;--muted:#66727f;--line:#dfe3e8;--bg:#f5f7f9;--card:#fff}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1100px;margin:0 auto;padding:24px 20px 40px}
header{display:flex;justify-content:space-between;align-items:center;gap:16px;margin-bottom:12px}
h1{font-size:22px;margin:0 0 2px}
h2{font-size:15px;margin:0 0 10px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:16px 18px;margin:14px 0;
break-inside:avoid}
.muted{color:var(--muted)}
"""

_CSS = BASE_CSS + """.note{background:#fff4e5;border:1px solid #f3c98b;border-radius:6px;padding:6px 10px;margin:6px 0}
.empty{font-size:16px;color:var(--muted);text-align:center;padding:24px 0;margin:0}
.verdict{border:2px solid var(--c);border-left-width:10px;border-radius:8px;padding:8px 16px;background:#fff;
min-width:200px;text-align:right}
.verdict .big{font-size:22px;font-weight:700;color:var(--t)}
.verdict .conf{font-size:18px;color:var(--ink);font-weight:600}
.verdict .detail{color:var(--muted);font-size:12px}
table{border-collapse:collapse;width:100%}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
table.kv th{width:32%;font-weight:500;color:var(--muted)}
.tiles{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.tile{flex:1 1 150px;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 14px}
.tile .v{font-size:24px;font-weight:700;font-variant-numeric:tabular-nums}
.tile .u{font-size:13px;font-weight:500;color:var(--muted);margin-left:3px}
.tile .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
table.kv td{font-variant-numeric:tabular-nums;word-break:break-word}
table.num td{text-align:right;font-variant-numeric:tabular-nums}
table.num thead th{text-align:right;color:var(--muted);font-weight:500;border-bottom:2px solid var(--line)}
table.num thead th:first-child{text-align:left}
table.num tbody th{font-weight:500}
table.num tr.total{font-weight:600;background:#f5f7f9}
figure{margin:0 0 14px}
figcaption{color:var(--muted);font-size:12px;margin-top:2px}
svg.chart{width:100%;height:auto;display:block;font-family:inherit}
@media print{
@page{margin:14mm}
body{background:#fff;font-size:12px}
main{max-width:none;padding:0}
section{border:none;border-top:1px solid var(--line);border-radius:0;padding:10px 0;margin:8px 0;break-inside:auto}
figure,table.kv,.tiles,header{break-inside:avoid}
h2{break-after:avoid}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"""
