"""``edge-bus eval --html``: the scores as one self-contained page (inline CSS, SVG and JPEG, no
scripts) to look at rather than read: the normal / benign / malignant confusion table, the scores per
scanner, the ROC curve with the manifest's operating points on it, the distribution of Dice over the
lesion images, and pictures of the images the model did worst on.

Pictures: the image in gray, the true lesion outlined in green, the predicted mask filled in amber.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edge_bus.bench_html import kv_table, page, section, table
from edge_bus.datasets import CLASSES
from edge_bus.metrics import roc_curve
from edge_bus.sinks.files import atomic_write_text
from edge_bus.sinks.svg import INK, MUTED, Plot, fmt_num, line_path, svg_document, text

if TYPE_CHECKING:
    from edge_bus.evaluation import Case, CropCase, EvalGallery, EvalReport, ScoredImage

__all__ = ["THUMB_SIDE", "case_picture", "confusion_table", "crop_picture", "crops_text", "dice_histogram",
           "metric_text", "render_eval_html", "roc_chart", "write_eval_html"]

THUMB_SIDE = 220
"""The longer side of a gallery picture, in pixels."""

TRUTH_BGR = (60, 180, 75)
PREDICTION_BGR = (0, 170, 255)
OP_COLORS = {"sensitive": "#e15759", "balanced": "#4e79a7", "specific": "#59a14f"}
HINT = "choose another --html path"


def metric_text(x: float | None) -> str:
    """A metric as the eval table and page show it: 4 decimals, "-" when there is none (None or NaN,
    e.g. an AUC without malignant images)."""
    return "-" if x is None or x != x else f"{x:.4f}"


def crops_text(rate: float | None, n: int) -> str:
    """The share of lesion-free crops flagged, with how many were scored in brackets ("-" when none were)."""
    return "-" if rate is None or n == 0 else f"{metric_text(rate)} ({n})"


def case_picture(scored: ScoredImage, side: int = THUMB_SIDE) -> bytes:
    """A JPEG of ``scored``: gray image, predicted mask filled (amber), true lesion outlined (green); JPEG,
    as the speckle of ultrasound made PNGs of 60-90 KB each."""
    h, w = scored.gray.shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = cv2.cvtColor(cv2.resize(scored.gray, size, interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2BGR)
    pred = cv2.resize(scored.prediction.mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    truth = cv2.resize(scored.truth.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    fill = img.copy()
    fill[pred > 0] = PREDICTION_BGR
    img = cv2.addWeighted(fill, 0.35, img, 0.65, 0)
    for mask, color in ((pred, PREDICTION_BGR), (truth, TRUTH_BGR)):
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(img, contours, -1, color, 1, cv2.LINE_AA)
    ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 88])
    return jpeg.tobytes() if ok else b""


def crop_picture(crop: np.ndarray, side: int = THUMB_SIDE) -> bytes:
    """A JPEG of a lesion-free crop, ``side`` pixels square."""
    img = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 88])
    return jpeg.tobytes() if ok else b""


def roc_chart(report: EvalReport) -> str:
    """Benign vs malignant ROC over the lesion images, each operating point where its threshold lands."""
    lesion = [r for r in report.results if r.label != "normal"]
    fpr, tpr = roc_curve(np.array([r.malignancy for r in lesion]), np.array([r.label == "malignant" for r in lesion]))
    if fpr.size == 0:
        return ""
    plot = Plot(0.0, 1.0, 0.0, 1.0, width=520, height=500, top=30, bottom=40)
    ticks = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    parts = [plot.axes("1 − specificity (benign called malignant)", "sensitivity (malignant found)",
                       x_ticks=ticks, y_ticks=ticks),
             line_path(plot, np.array([0.0, 1.0]), np.array([0.0, 1.0]), MUTED, 1.0, "4 4"),
             line_path(plot, fpr, tpr, INK, 2.0)]
    drawn: dict[tuple[float, float], str] = {}  # each marker's place, and the point drawn there first
    for i, (name, op) in enumerate(report.operating_points.items()):
        x, y = float(plot.px(1.0 - op.specificity)), float(plot.py(op.sensitivity))
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        color = OP_COLORS.get(name, MUTED)
        under = drawn.setdefault((round(x, 1), round(y, 1)), name)
        # two points at one place (one threshold for both): the second a smaller dot inside the first, so
        # both colours show (it hid the first, whose legend entry then named a marker nowhere to be seen)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{6 if under == name else 3}" fill="{color}" '
                     'stroke="#fff" stroke-width="1.5"/>')
        label = f"{name} (≥ {op.threshold:.3f}): SEN {op.sensitivity:.2f}, SPE {op.specificity:.2f}"
        if under != name:
            label += f", the same point as {under}"
        parts.append(text(float(plot.px(0.3)), float(plot.py(0.3)) + 16 * i, f"● {escape(label)}", size=11,
                          fill=color))
    n_mal = sum(r.label == "malignant" for r in lesion)
    auc = report.auc if report.auc is not None else float("nan")
    title = f"AUC {fmt_num(auc, 4)} · {len(lesion)} lesion images, {n_mal} malignant"
    parts.append(text(plot.left, 18, escape(title), size=12, weight="600"))
    return svg_document(plot.width, plot.height, "".join(parts), "ROC curve, benign vs malignant")


def dice_histogram(report: EvalReport) -> str:
    """How the lesion images' Dice spreads, in bins of 0.05, with the mean marked."""
    dices = np.array([r.dice for r in report.results if r.dice is not None], dtype=np.float64)
    if dices.size == 0:
        return ""
    edges = np.linspace(0.0, 1.0, 21)
    counts, _ = np.histogram(dices, bins=edges)
    plot = Plot(0.0, 1.0, 0.0, max(1.0, float(counts.max()) * 1.15), height=250, top=26)
    parts = [plot.axes("Dice of the predicted mask against the true one", "lesion images")]
    base = float(plot.py(0))
    for left, c in zip(edges[:-1].tolist(), counts.tolist(), strict=True):
        if c:
            x0, x1, y = float(plot.px(left)), float(plot.px(left + 0.05)), float(plot.py(c))
            color = "#d64545" if left == 0.0 else "#4e79a7"
            parts.append(f'<rect x="{x0 + 0.5:.1f}" y="{y:.1f}" width="{x1 - x0 - 1:.1f}" height="{base - y:.1f}" '
                         f'fill="{color}"/>')
            parts.append(text((x0 + x1) / 2, y - 3, str(c), anchor="middle", size=10, fill=MUTED))
    mean = float(dices.mean())
    x = float(plot.px(mean))
    parts.append(f'<line x1="{x:.1f}" y1="{plot.top}" x2="{x:.1f}" y2="{base:.1f}" stroke="{INK}" '
                 'stroke-width="1.2" stroke-dasharray="5 3"/>')
    parts.append(text(x - 4, plot.top + 10, "mean", anchor="end", size=10, halo=True))
    missed = int((dices < 0.05).sum())
    # both to 3 decimals ("mean 0.76" beside "median 0.878" read as two precisions)
    summary = (f"mean Dice {mean:.3f} · median {float(np.median(dices)):.3f} · {missed} of "
               f"{dices.size} below 0.05 (red: the lesion missed, or the mask elsewhere)")
    parts.append(text(plot.left, 16, escape(summary), size=12, weight="600"))
    return svg_document(plot.width, plot.height, "".join(parts), "Dice over the lesion images")


def _gallery(cases: Sequence[Case]) -> str:
    figures = []
    for c in cases:
        r = c.result
        called = r.predicted if r.predicted == r.label else f"{r.predicted} ✗"
        caption = (f"<b>{escape(r.name)}</b><br>{escape(r.label)} → {escape(called)}"
                   + (f" · Dice {r.dice:.2f}" if r.dice is not None else "")
                   + f"<br>P(lesion) {r.lesion_prob:.2f} · P(malignant | lesion) {r.malignancy:.2f}")
        figures.append(_figure(c.picture, r.name, caption))
    return f'<div class="gallery">{"".join(figures)}</div>'


def _crop_gallery(cases: Sequence[CropCase]) -> str:
    figures = [_figure(c.picture, f"{c.image} crop {c.index + 1}",
                       f"<b>{escape(c.image)}</b>, crop {c.index + 1}<br>P(lesion) {c.lesion_prob:.3f}") for c in cases]
    return f'<div class="gallery">{"".join(figures)}</div>'


def _figure(picture: bytes, alt: str, caption_html: str) -> str:
    """A gallery figure: the JPEG inline, ``alt`` (plain text) and the caption (HTML, escaped by the caller)."""
    src = "data:image/jpeg;base64," + base64.b64encode(picture).decode("ascii")
    return f'<figure><img src="{src}" alt="{escape(alt)}"><figcaption>{caption_html}</figcaption></figure>'


def confusion_table(report: EvalReport) -> str:
    """Counts of each true class (rows) called as each class (columns) at the default operating point;
    the diagonal in green, the errors in red. Empty when the data has no normal images (no 3-class call
    to score)."""
    if not report.counts.get("normal"):
        return ""
    counts = {(t, c): 0 for t in CLASSES for c in CLASSES}
    for r in report.results:
        if (r.label, r.predicted) in counts:
            counts[(r.label, r.predicted)] += 1
    rows = []
    for t in CLASSES:
        n = sum(counts[(t, c)] for c in CLASSES)
        cells = [f'<span class="{"hit" if c == t else "miss" if counts[(t, c)] else ""}">{counts[(t, c)]}</span>'
                 for c in CLASSES]
        rows.append([f"<b>{t}</b>", *cells, str(n)])
    return table(["true \\ called", *CLASSES, "images"], rows)


def render_eval_html(report: EvalReport, gallery: EvalGallery) -> str:
    summary = {
        "model": report.model, "backend / precision": f"{report.backend} / {report.precision}", "data": report.data,
        "images": f"{report.n_images} ({', '.join(f'{n} {c}' for c, n in report.counts.items())})",
        "Dice / IoU (mean over lesion images)": f"{metric_text(report.dice)} / {metric_text(report.iou)}",
        "AUC, benign vs malignant": metric_text(report.auc),
        "normal images flagged as lesion": metric_text(report.normal_fp_rate),
        "lesion images where a lesion is found": metric_text(report.lesion_recall),
        "lesion-free crops of lesion images flagged as lesion": crops_text(report.crop_fp_rate, report.n_crops),
        "3-class accuracy (normal / benign / malignant)": metric_text(report.accuracy_3class),
        "lesion threshold (a lesion is found at P(lesion) ≥ it)": (f"{report.lesion_threshold:.4f}"
                                                                   if report.lesion_threshold is not None else "-"),
    }
    if report.kernel_note:
        summary["note"] = report.kernel_note
    ops = [[escape(name), f"{o.threshold:.4f}", *(metric_text(v) for v in (o.accuracy, o.sensitivity, o.specificity))]
           for name, o in report.operating_points.items()]
    key = ('<p class="muted">Green outline: the true lesion. Amber: the predicted mask (not gated by the '
           "presence answer, as Dice is scored). ✗: the class called at the model's default operating point "
           f"({escape(report.default_operating_point) or 'the manifest’s'}) is wrong"
           + (f"; a lesion is found where P(lesion) ≥ {report.lesion_threshold:.4f}, so a lesion image below it is "
              "called normal" if report.lesion_threshold is not None else "") + ".</p>")
    wrong_note = (f'<p class="muted">{len(gallery.wrong_class)} of {gallery.n_wrong} shown, the most confident '
                  "first.</p>" if gallery.n_wrong > len(gallery.wrong_class) else "")
    roc = roc_chart(report)
    body = [
        section("Summary", kv_table(summary)),
        section("Operating points (malignant vs benign, lesion images)",
                table(["operating point", "threshold", "accuracy", "sensitivity", "specificity"], ops)
                + '<p class="muted">Scored on P(malignant | lesion) over every lesion image, whether or not a '
                "lesion was found in it; the 3-class calls below also need a lesion found, so fewer malignant "
                "images may be called malignant there.</p>"),
        section("Normal, benign or malignant (rows: truth; columns: the call at the default operating point, "
                f"{report.default_operating_point or 'the manifest’s'})",
                confusion_table(report)),
        section("By scanner", table(["scanner", "images", "lesion images", "Dice", "AUC, benign vs malignant",
                                     "lesions found", "lesion-free crops flagged"],
                                    [[escape(name), str(g.n_images), str(g.n_lesion), metric_text(g.dice),
                                      metric_text(g.auc), metric_text(g.lesion_recall),
                                      crops_text(g.crop_fp_rate, g.n_crops)] for name, g in report.by_device.items()]))
        if report.by_device else "",
        section("ROC curve", f'<div class="roc">{roc}</div>') if roc else "",
        section("Dice over the lesion images", dice_histogram(report)),
        section(f"Lowest Dice ({len(gallery.lowest_dice)} of {sum(r.dice is not None for r in report.results)} "
                "lesion images)", key + _gallery(gallery.lowest_dice))
        if gallery.lowest_dice else "",
        section(f"Wrong class ({gallery.n_wrong} images)", key + wrong_note + _gallery(gallery.wrong_class))
        if gallery.wrong_class else "",
        section(f"Lesion-free crops called lesion ({gallery.n_flagged_crops} of {report.n_crops})",
                f'<p class="muted">Squares of lesion images clear of the marked lesion, with P(lesion) at or above '
                f"the lesion threshold ({len(gallery.flagged_crops)} shown, the most confident first). Look at "
                "what is in them: burned-in text or calipers, the shadow behind a lesion, or a second lesion that "
                "the mask leaves out are not normal tissue.</p>" + _crop_gallery(gallery.flagged_crops))
        if gallery.flagged_crops else "",
    ]
    subtitle = f"{report.model} · {report.backend} {report.precision} · {report.data}"
    return page("edge-bus eval", subtitle, "", "".join(body), css=_CSS)


def write_eval_html(path: Path, report: EvalReport, gallery: EvalGallery) -> Path:
    return atomic_write_text(path, render_eval_html(report, gallery), hint=HINT)


_CSS = """.roc{max-width:520px}
span.hit{font-weight:700;color:#1e6b3a}span.miss{color:#d64545}
.gallery{display:flex;flex-wrap:wrap;gap:12px}
.gallery figure{margin:0;width:220px;font-size:12px}
.gallery img{display:block;max-width:220px;border-radius:4px;background:#000}
.gallery figcaption{margin-top:4px;word-break:break-all}
"""
