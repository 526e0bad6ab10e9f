"""Minimal inline-SVG plotting primitives for the HTML report (no matplotlib, no JavaScript).

A :class:`Plot` maps data coordinates to SVG pixels inside fixed margins; the helpers return SVG
fragments as strings. Charts are drawn in a 1000-unit-wide ``viewBox`` and scale to their container.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

__all__ = [
    "Plot",
    "area_path",
    "fmt_num",
    "legend",
    "line_path",
    "nice_step",
    "nice_ticks",
    "svg_document",
    "text",
]

INK = "#1f2933"
MUTED = "#66727f"
GRID = "#e3e7eb"


def nice_step(raw: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^k that is >= ``raw`` (> 0)."""
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-12))


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 × 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else [0.0]
    step = nice_step((hi - lo) / max(1, target))
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 10))
        v += step
    return ticks


def fmt_num(v: float, digits: int = 3) -> str:
    """Compact number: integers without decimals, else up to ``digits`` significant decimals."""
    if not math.isfinite(v):
        return "—"
    if abs(v - round(v)) < 1e-9 and abs(v) < 1e15:
        return f"{int(round(v)):,}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.{max(1, digits - 1)}f}".rstrip("0").rstrip(".")


def places_apart(value: float, threshold: float, places: int, scale: float = 1.0) -> int:
    """``places`` decimals, or more (up to 6) where that many would show ``value`` and ``threshold`` alike
    though they differ: a check that FAILs must not read "0.95 against 0.95" (a mask IoU of 0.9496), nor
    a MISS "250 FPS against 250 FPS" (249.6). ``scale``: what both are shown multiplied by (100 for %)."""
    if math.isfinite(value) and math.isfinite(threshold) and value != threshold:
        while places < 6 and round(value * scale, places) == round(threshold * scale, places):
            places += 1
    return places


@dataclass(frozen=True)
class Plot:
    """Data ranges [x0, x1] × [y0, y1] drawn in a ``width`` × ``height`` box with margins."""

    x0: float
    x1: float
    y0: float
    y1: float
    width: int = 1000
    height: int = 240
    left: int = 58
    right: int = 16
    top: int = 12
    bottom: int = 34

    @property
    def inner_w(self) -> float:
        return self.width - self.left - self.right

    @property
    def inner_h(self) -> float:
        return self.height - self.top - self.bottom

    def px(self, x: np.ndarray | float) -> np.ndarray:
        span = self.x1 - self.x0 or 1.0
        return self.left + (np.asarray(x, dtype=np.float64) - self.x0) / span * self.inner_w

    def py(self, y: np.ndarray | float) -> np.ndarray:
        span = self.y1 - self.y0 or 1.0
        clipped = np.clip(np.asarray(y, dtype=np.float64), self.y0, self.y1)
        return self.top + (1.0 - (clipped - self.y0) / span) * self.inner_h

    def axes(
        self,
        x_label: str = "",
        y_label: str = "",
        *,
        x_ticks: Sequence[float] | None = None,
        y_ticks: Sequence[float] | None = None,
        x_fmt: str = "{}",
        y_fmt: str = "{}",
    ) -> str:
        """Grid lines, tick labels and axis titles."""
        out: list[str] = []
        xt = list(x_ticks) if x_ticks is not None else nice_ticks(self.x0, self.x1, 8)
        yt = list(y_ticks) if y_ticks is not None else nice_ticks(self.y0, self.y1, 4)
        bottom, xr = self.top + self.inner_h, self.width - self.right
        for v in yt:
            y = float(self.py(v))
            out.append(f'<line x1="{self.left}" y1="{y:.1f}" x2="{xr}" y2="{y:.1f}" stroke="{GRID}"/>')
            label = escape(y_fmt.format(fmt_num(v)))
            out.append(text(self.left - 6, y + 4, label, anchor="end", size=11, fill=MUTED))
        for v in xt:
            if not self.x0 <= v <= self.x1:
                continue
            x = float(self.px(v))
            out.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="{MUTED}"/>')
            out.append(text(x, bottom + 16, escape(x_fmt.format(fmt_num(v))), anchor="middle", size=11, fill=MUTED))
        out.append(f'<line x1="{self.left}" y1="{bottom}" x2="{xr}" y2="{bottom}" stroke="{MUTED}"/>')
        if x_label:
            out.append(text(self.left + self.inner_w / 2, self.height - 3, escape(x_label), anchor="middle", size=11))
        if y_label:
            cy = self.top + self.inner_h / 2
            out.append(
                f'<text x="12" y="{cy:.1f}" font-size="11" fill="{INK}" text-anchor="middle" '
                f'transform="rotate(-90 12 {cy:.1f})">{escape(y_label)}</text>'
            )
        return "".join(out)


def _points(xs: np.ndarray, ys: np.ndarray) -> str:
    return "L".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs.tolist(), ys.tolist(), strict=True))


def _finite_runs(ok: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of True in ``ok``."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], ok.astype(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def line_path(plot: Plot, x: np.ndarray, y: np.ndarray, color: str, width: float = 1.5, dash: str = "") -> str:
    """A polyline; NaN values break it into segments. A segment of one point (a run of one frame, a
    value between two gaps) is drawn as a dot: a zero-length line with round caps."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(y)
    if not ok.any():
        return ""
    px, py = plot.px(x), plot.py(np.where(ok, y, 0.0))
    # split at NaNs: each finite run becomes its own "M...L..." subpath
    parts = [f"M{_points(px[a:b], py[a:b])}" + ("l0,0" if b - a == 1 else "") for a, b in _finite_runs(ok)]
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<path d="{"".join(parts)}" fill="none" stroke="{color}" stroke-width="{width}" '
        f'stroke-linejoin="round" stroke-linecap="round"{dash_attr}/>'
    )


def area_path(plot: Plot, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, color: str, opacity: float = 1.0) -> str:
    """A filled band between ``lo`` and ``hi`` (a NaN ``hi`` treated as ``lo``); a NaN ``lo`` breaks it into
    pieces. A NaN went into the path as "nan", and a browser stops drawing a path at the first bad value:
    a long run's malignancy band (the timeline's bins without a lesion frame) was not drawn at all."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return ""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.where(np.isfinite(hi), hi, lo)
    ok = np.isfinite(lo)
    px, py_lo, py_hi = plot.px(x), plot.py(np.where(ok, lo, 0.0)), plot.py(np.where(ok, hi, 0.0))
    parts = [f"M{_points(px[a:b], py_hi[a:b])}L{_points(px[a:b][::-1], py_lo[a:b][::-1])}Z"
             for a, b in _finite_runs(ok)]
    if not parts:
        return ""
    return f'<path d="{"".join(parts)}" fill="{color}" fill-opacity="{opacity}" stroke="none"/>'


def text(
    x: float,
    y: float,
    content: str,
    *,
    anchor: str = "start",
    size: int = 12,
    fill: str = INK,
    weight: str = "",
    halo: bool = False,
) -> str:
    """A ``<text>``; ``content`` must already be escaped. ``halo``: a white outline, for labels over data."""
    w = f' font-weight="{weight}"' if weight else ""
    h = ' stroke="#fff" stroke-width="3" paint-order="stroke"' if halo else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{fill}" text-anchor="{anchor}"{w}{h}>{content}</text>'
    )


def legend(items: Sequence[tuple[str, str, str]], x: float, y: float, gap: float = 18) -> str:
    """A one-row legend of ``(name, colour, kind)`` with kind ``"box"``, ``"line"`` or ``"dash"``."""
    out: list[str] = []
    cx = x
    for name, color, kind in items:
        if kind == "box":
            out.append(f'<rect x="{cx:.1f}" y="{y - 9:.1f}" width="12" height="10" rx="2" fill="{color}"/>')
        else:
            dash = ' stroke-dasharray="5 3"' if kind == "dash" else ""
            out.append(
                f'<line x1="{cx:.1f}" y1="{y - 4:.1f}" x2="{cx + 14:.1f}" y2="{y - 4:.1f}" '
                f'stroke="{color}" stroke-width="2"{dash}/>'
            )
        out.append(text(cx + 18, y, escape(name), size=11))
        cx += 18 + 6.5 * len(name) + gap
    return "".join(out)


def svg_document(width: int, height: int, body: str, title: str) -> str:
    """An inline ``<svg>`` that scales to its container's width."""
    return (
        f'<svg viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="xMidYMid meet" class="chart">'
        f"<title>{escape(title)}</title>{body}</svg>"
    )
