"""Self-contained HTML (inline CSS and SVG, no scripts) for ``edge-bus bench`` — and the page
shell, tables and range-bar chart that ``edge-bus doctor``'s report shares.

Charts use :mod:`edge_bus.sinks.svg` primitives and :func:`edge_bus.sinks.charts.latency_histogram`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_bus import __version__
from edge_bus.bench_gates import FRAME_BUDGET_MS, INFER_SHARE, Gate
from edge_bus.bench_measure import Timing
from edge_bus.bench_profile import op_label
from edge_bus.sinks import charts
from edge_bus.sinks.files import atomic_write_text
from edge_bus.sinks.report import BASE_CSS, kv_table
from edge_bus.sinks.svg import MUTED, Plot, fmt_num, nice_ticks, svg_document, text

if TYPE_CHECKING:
    from edge_bus.bench import BenchResult
    from edge_bus.bench_profile import LayerProfile
    from edge_bus.bench_stream import RealtimeBench

__all__ = ["Bar", "kv_table", "page", "range_bars", "render_bench_html", "section", "table", "write_bench_html"]


@dataclass(frozen=True)
class Bar:
    """One row of :func:`range_bars`: a bar to ``value`` with a whisker from ``lo`` to ``hi``."""

    name: str
    value: float
    lo: float = math.nan
    hi: float = math.nan
    color: str = "#4e79a7"
    note: str = ""


def range_bars(rows: Sequence[Bar], unit: str, title: str, markers: Sequence[tuple[float, str]] = ()) -> str:
    """Horizontal bars (median) with min–p99 whiskers and optional vertical ``(x, label)`` markers."""
    rows = [r for r in rows if math.isfinite(r.value)]
    if not rows:
        return ""
    row_h, label_w, width = 28, 150, 1000
    height = row_h * len(rows) + 36
    peak = max([r.value for r in rows] + [r.hi for r in rows if math.isfinite(r.hi)] + [x for x, _ in markers])
    # the right quarter stays free for the value labels
    plot = Plot(0.0, peak / 0.75 or 1.0, 0.0, 1.0, width=width, height=height, left=label_w, top=8, bottom=28)
    parts = []
    for t in nice_ticks(0.0, plot.x1, 6):
        x = float(plot.px(t))
        parts.append(f'<line x1="{x:.1f}" y1="{plot.top}" x2="{x:.1f}" y2="{height - plot.bottom}" stroke="#e3e7eb"/>')
        parts.append(text(x, height - 10, f"{fmt_num(t)} {unit}".strip(), anchor="middle", size=11, fill=MUTED))
    for i, r in enumerate(rows):
        y = plot.top + i * row_h
        w = float(plot.px(r.value)) - plot.left
        parts.append(text(label_w - 8, y + 18, escape(r.name), anchor="end", size=12))
        parts.append(
            f'<rect x="{plot.left}" y="{y + 5}" width="{max(1.0, w):.1f}" height="{row_h - 10}" '
            f'rx="2" fill="{r.color}"/>'
        )
        if math.isfinite(r.lo) and math.isfinite(r.hi):
            x0, x1, cy = float(plot.px(r.lo)), float(plot.px(r.hi)), y + row_h / 2
            parts.append(f'<line x1="{x0:.1f}" y1="{cy:.1f}" x2="{x1:.1f}" y2="{cy:.1f}" stroke="#1f2933"/>')
            for x in (x0, x1):
                parts.append(f'<line x1="{x:.1f}" y1="{cy - 5:.1f}" x2="{x:.1f}" y2="{cy + 5:.1f}" stroke="#1f2933"/>')
        label = f"{fmt_num(r.value)} {unit}".strip() + (f"  {r.note}" if r.note else "")
        end = max(w, float(plot.px(r.hi)) - plot.left if math.isfinite(r.hi) else w)
        parts.append(text(plot.left + end + 6, y + 18, escape(label), size=11, weight="600"))
    for x_val, name in markers:
        x = float(plot.px(x_val))
        parts.append(
            f'<line x1="{x:.1f}" y1="{plot.top}" x2="{x:.1f}" y2="{height - plot.bottom}" stroke="#d64545" '
            f'stroke-dasharray="5 3"/>'
        )
        parts.append(text(x - 4, plot.top + 10, escape(name), anchor="end", size=10, fill="#d64545", halo=True))
    return svg_document(width, height, "".join(parts), title)


# --------------------------------------------------------------------------- page pieces
def _verdict(g: Gate) -> str:
    if not g.applicable:
        return '<span class="muted">n/a</span>'
    if g.required:
        return badge(g.passed)
    return f'<span class="muted">target {"met" if g.passed else "missed"}</span>'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], classes: Sequence[str] = ()) -> str:
    """A numeric table; cells are already-escaped HTML. ``classes``: one CSS class per row (or none)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        body.append(f"<tr{cls}>{''.join(f'<td>{c}</td>' for c in row)}</tr>")
    return f'<table class="num"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def section(title: str, body: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{body}</section>" if body else ""


def badge(passed: bool, text_: str | None = None) -> str:
    label = text_ or ("PASS" if passed else "FAIL")
    return f'<span class="badge {"pass" if passed else "fail"}">{escape(label)}</span>'


def page(title: str, subtitle: str, verdict: str, body: str, css: str = "") -> str:
    """A whole page: the shared style (plus ``css``), a header with ``verdict`` on its right, ``body``."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}{css}</style></head><body><main>"
        f'<header><div><h1>{escape(title)}</h1><p class="muted">{escape(subtitle)} · edge-bus '
        f"{escape(__version__)}</p></div>{verdict}</header>{body}</main></body></html>\n"
    )


def _ms(v: float) -> str:
    return f"{v:.2f}" if math.isfinite(v) else '<span class="muted">—</span>'


# --------------------------------------------------------------------------- bench page
def _timing_rows(timings: Mapping[str, Timing], share: Mapping[str, float] | None = None) -> list[list[str]]:
    rows = []
    for name, t in timings.items():
        row = [escape(name), escape(t.precision or "")] if share is None else [escape(name)]
        row += [_ms(t.median_ms), _ms(t.mean_ms), _ms(t.min_ms), _ms(t.max_ms), _ms(t.p99_ms), _ms(t.fps), str(t.count)]
        if share is not None:
            row += list(_frame_shares(t, share.get(name, math.nan)))
        if t.error:
            row[-1] += f' <span class="muted">{escape(t.error)}</span>'
        rows.append(row)
    return rows


def _frame_shares(t: Timing, budget: float) -> tuple[str, str]:
    """A stage's budget share of the 30 fps frame and the share its median took, as percentages."""
    used = t.median_ms / FRAME_BUDGET_MS
    return (f"{100 * budget:g}%" if math.isfinite(budget) else "—",
            f"{100 * used:.1f}%" if math.isfinite(used) else "—")


def render_bench_html(result: BenchResult) -> str:
    eng = result.engines
    cols = ["median ms", "mean ms", "min ms", "max ms", "p99 ms", "FPS", "count"]
    engine_bars = [
        Bar(n, t.median_ms, t.min_ms, t.p99_ms, charts.stage_color(i), t.precision or "")
        for i, (n, t) in enumerate(eng.items())
    ]
    fps_bars = [Bar(n, t.fps, color=charts.stage_color(i)) for i, (n, t) in enumerate(eng.items())]
    stages = result.stage_timings
    shares = result.stage_shares()
    stage_bars = []
    for i, (n, t) in enumerate(stages.items()):
        # what the stage takes of a frame, and the share of it it may take ("share 10%" read as what it took)
        budget, used = _frame_shares(t, shares.get(n, math.nan))
        stage_bars.append(Bar(n, t.median_ms, t.min_ms, t.p99_ms, charts.color_for_stage(n, i),
                              f"{used} of a frame (budget {budget})"))
    gates = table(
        ["gate", "value", "threshold", "verdict", "detail"],
        [
            [escape(g.name), g.shown(g.value), g.shown(g.threshold), _verdict(g), escape(g.message)]
            for g in result.gates
        ],
    )
    p, rt = result.pipeline, result.realtime
    body = [
        section(
            "Gates",
            gates
            + "".join(
                f'<p class="muted">{escape(g.name)}: {escape(g.basis)}</p>'
                for g in result.gates
                if g.basis and not g.name.startswith("stage_")
            ),
        ),
        section(
            "Engines (batch 1, one request, LATENCY hint)",
            range_bars(engine_bars, "ms", "Median latency per engine, min–p99 whiskers")
            + range_bars(fps_bars, "FPS", "Throughput per engine")
            + table(["engine", "precision ran", *cols], _timing_rows(eng)),
        ),
        section(
            f"Stages (share of a {FRAME_BUDGET_MS:.1f} ms frame)",
            range_bars(stage_bars, "ms", "Median ms per stage, min–p99 whiskers")
            + f'<p class="muted">infer (OpenVINO INT8, batch 1) is reserved the remaining {100 * INFER_SHARE:g}% '
            "of the frame; it is reported, not gated (it depends on the model, cores and ISA).</p>"
            + table(["stage", *cols, "share", "used"], _timing_rows(stages, shares)),
        ),
        section(
            "Pipeline vs engine (THROUGHPUT hint, async)",
            kv_table(
                {
                    "source": p.source,
                    "frames": p.frames,
                    "pipeline FPS": p.fps,
                    "frames per inference (batch)": p.batch,
                    "engine-only FPS (same batch)": p.engine_fps,
                    "ratio": p.ratio,
                    "benchmark_app FPS (same IR, batch 1)": p.app_fps,
                    "ratio to benchmark_app": p.app_ratio,
                    "pipeline FPS, no overlay video": p.fps_no_video,
                    "ratio to benchmark_app, no overlay video": p.app_ratio_no_video,
                    f"benchmark_app FPS at batch {p.batch}": p.app_fps_batched,
                    f"ratio to benchmark_app at batch {p.batch}": p.app_ratio_batched,
                    "precision": p.precision,
                }
            ),
        ),
        section(
            "Live latency (--realtime)",
            charts.latency_histogram(np.asarray(rt.e2e_ms, dtype=np.float64))
            + kv_table(
                {
                    "source": rt.source,
                    "frames": rt.frames,
                    "dropped": rt.dropped,
                    "FPS": rt.fps,
                    "end-to-end p50 ms": rt.p50_ms,
                    "end-to-end p99 ms": rt.p99_ms,
                    "end-to-end max ms": rt.max_ms,
                    "bare INT8 inference p50 ms": rt.infer_p50_ms,
                    "bare INT8 inference p99 ms": rt.infer_p99_ms,
                }
            )
            + '<p class="muted">Bare inference: the same engine set-up (LATENCY hint, one request) at the same '
            "pace, without decode, render or write, measured before and after the stream: the floor under the "
            "end-to-end latency on this machine"
            + (f" — though not in this run: its p99 ({rt.infer_p99_ms:.2f} ms) is above the stream's own "
               f"({rt.p99_ms:.2f} ms), so the host's load came and went between them" if rt.infer_p99_ms > rt.p99_ms
               else "") + ".</p>",
        ),
        *([_bridge_section(result.bridge)] if result.bridge is not None else []),
        *([_layers_section(result.layers)] if result.layers is not None and result.layers.ops else []),
        section("Hardware", kv_table(result.hardware)),
    ]
    subtitle = f"{result.model.get('name')} {result.model.get('version')} · {result.generated_at}"
    return page(
        "edge-bus bench", subtitle, badge(result.passed, "GATES PASS" if result.passed else "GATES FAIL"), "".join(body)
    )


def _bridge_section(b: RealtimeBench) -> str:
    return section(
        f"Glass to glass (controller board {b.bridge})",
        kv_table(
            {
                "source": b.source,
                "board": b.bridge,
                "frames": b.frames,
                "with hardware timestamps": b.g2g_count,
                "dropped": b.dropped,
                "glass-to-glass p50 ms": b.g2g_p50_ms,
                "glass-to-glass p99 ms": b.g2g_p99_ms,
                "end-to-end p99 ms": b.p99_ms,
                "bare INT8 inference p99 ms": b.infer_p99_ms,
            }
        )
        + '<p class="muted">Device acquisition (FRAME_META, mapped to host time by the synced clock) → '
        "overlay ready.</p>",
    )


#: kernel precision → bar colour in the layer profile
PRECISION_COLORS = {"int8": "#2e9e5e", "f32": "#e8833a", "bf16": "#9c6ade", "f16": "#9c6ade"}


def _layers_section(lp: LayerProfile) -> str:
    names = Counter(o.op for o in lp.ops)  # an operation run in two precisions has a bar for each: say which
    bars = [Bar(f"{o.op} ({o.precision})" if names[o.op] > 1 else o.op, o.ms,
                color=PRECISION_COLORS.get(o.precision, "#8a96a3"),
                note=f"{o.precision} · {100 * o.share:.0f}% · {o.layers} layer{'s' if o.layers != 1 else ''}")
            for o in lp.ops if o.share >= 0.005]
    small = [o for o in lp.ops if o.share < 0.005]
    hidden = (f'<p class="muted">Not drawn: {len(small)} operation{"s" if len(small) != 1 else ""} under 0.5% each '
              f'({escape(", ".join(o.op for o in small))}; {sum(o.ms for o in small):.3f} ms together).</p>'
              if small else "")
    top = table(["layer", "operation", "kernel", "precision", "ms"],
                # the operation as the chart above names it ("ConvTranspose" there was "ConvolutionBackpropData" here)
                [[f'<span style="word-break:break-all">{escape(t.name)}</span>', escape(op_label(t)), escape(t.kernel),
                  escape(t.precision), _ms(t.ms)]
                 for t in lp.top_layers])
    return section(
        f"Where INT8 inference spends its time (OpenVINO per-layer counters, {lp.runs} runs)",
        range_bars(bars, "ms", "Mean ms per inference by operation; colour = the precision its kernel ran in")
        + hidden + f'<p class="muted">{100 * lp.share_in("int8"):.0f}% of the layer time ran in INT8 kernels, '
        f'{100 * lp.share_in("f32"):.0f}% in f32 (green INT8, orange f32). A quantised layer that the CPU '
        "plugin runs in f32 shows in orange; the counters cost a little, so read the shares, not the total "
        f"({lp.total_ms:.2f} ms).</p>"
        + "<h3>Slowest layers</h3>" + top,
    )


def write_bench_html(path: Path, result: BenchResult) -> Path:
    from edge_bus.bench import REPORT_HINT

    return atomic_write_text(path, render_bench_html(result), hint=REPORT_HINT)


_CSS = BASE_CSS + """table{border-collapse:collapse;width:100%}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
table.kv th{width:32%;font-weight:500;color:var(--muted)}
table.kv td{font-variant-numeric:tabular-nums;word-break:break-word}
table.num td{font-variant-numeric:tabular-nums}
table.num thead th{color:var(--muted);font-weight:500;border-bottom:2px solid var(--line)}
tr.fail td{background:#fdecea}
tr.info td{color:var(--muted)}
.badge{display:inline-block;border-radius:6px;padding:2px 10px;font-weight:700;color:#fff}
.badge.pass{background:#2e9e5e}.badge.fail{background:#d64545}
header .badge{font-size:26px;padding:8px 22px}
.advice{margin:4px 0;padding:6px 10px;background:#fff4e5;border:1px solid #f3c98b;border-radius:6px}
svg.chart{width:100%;height:auto;display:block;font-family:inherit;margin-bottom:10px}
@media print{@page{margin:14mm}body{background:#fff;font-size:12px}main{max-width:none;padding:0}
section{border:none;border-top:1px solid var(--line);border-radius:0;padding:10px 0;margin:8px 0}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""
