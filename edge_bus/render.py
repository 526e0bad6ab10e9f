"""Draw one prediction over its frame: mask fill + contour, label, operating point, HUD, FROZEN.
The panels go inside the scan area (``HudInfo.scan_area``), leaving the scanner's own text around it
readable.

Supervision-annotator style: an immutable :class:`OverlayStyle` is given once to
:class:`OverlayRenderer`; :meth:`OverlayRenderer.render` only draws and returns a new BGR uint8
image at frame size (the frame's pixels are never modified).

Cheap by construction: the mask is only touched inside ``prediction.bbox`` (``x, y, w, h`` in
frame pixels, the same convention as :class:`edge_bus.types.ROI`), blended with cv2 ops on that
slice; the contour comes from ``cv2.findContours`` on the bbox crop; text panels darken small
rectangles in place. No full-frame boolean indexing.
"""

from __future__ import annotations

import functools
import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields

import cv2
import numpy as np

from edge_bus.checks import check_fields
from edge_bus.errors import ConfigError
from edge_bus.imaging import to_bgr
from edge_bus.types import ROI, Frame, Prediction

__all__ = ["BGR", "HudInfo", "OverlayRenderer", "OverlayStyle", "label_lines", "mask_bbox"]

BGR = tuple[int, int, int]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_MAX_THICKNESS = 32767  # OpenCV's MAX_THICKNESS: more is a cv2.error at the first lesion drawn


@dataclass(frozen=True)
class OverlayStyle:
    """How overlays look. Colours are BGR. ``mask_color``/``contour_color`` ``None`` → the label's colour.

    ``font_scale`` is for a 480-pixel-high area and scales with the height of the area the panels are
    drawn in (the scan area, or the frame).
    ``contour_thickness`` 0 draws no contour; ``alpha`` 0 draws no fill.
    """

    mask_color: BGR | None = None
    alpha: float = 0.35
    contour_color: BGR | None = None
    contour_thickness: int = 2
    font_scale: float = 0.55
    color_normal: BGR = (94, 158, 46)  # green  #2e9e5e
    color_benign: BGR = (40, 165, 230)  # amber  #e6a528
    color_malignant: BGR = (69, 69, 214)  # red    #d64545
    color_other: BGR = (200, 200, 200)
    text_color: BGR = (255, 255, 255)
    muted_text_color: BGR = (200, 200, 200)
    frozen_color: BGR = (104, 99, 95)  # grey #5f6368, as the report's frozen frames (red read as an alarm)
    panel_darken: float = 0.35  # text panels keep this fraction of the image brightness
    show_hud: bool = True
    # the label and HUD panels go inside the scan area (HudInfo.scan_area), so that the scanner's own
    # text around it (patient, probe, MI / TI, depth) stays readable; False: the frame's corners
    panels_in_scan_area: bool = True

    def __post_init__(self) -> None:
        check_fields(self, numbers=("alpha", "font_scale", "panel_darken"), integers=("contour_thickness",),
                     flags=("show_hud", "panels_in_scan_area"))
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"OverlayStyle.alpha must be in [0, 1], got {self.alpha}")
        if not 0.0 <= self.panel_darken <= 1.0:
            raise ConfigError(f"OverlayStyle.panel_darken must be in [0, 1], got {self.panel_darken}")
        if not 0 <= self.contour_thickness <= _MAX_THICKNESS:
            raise ConfigError(f"OverlayStyle.contour_thickness must be 0-{_MAX_THICKNESS} pixels (OpenCV's limit), got "
                              f"{self.contour_thickness}")
        if self.font_scale <= 0:
            raise ConfigError(f"OverlayStyle.font_scale must be > 0, got {self.font_scale}")
        for f in fields(self):
            value = getattr(self, f.name)
            if "color" in f.name and value is not None:
                if not _is_bgr(value):
                    raise ConfigError(f"OverlayStyle.{f.name} must be a BGR triple of numbers 0-255, e.g. (0, 0, "
                                      f"255) for red, got {value!r}")
                # a list or an array is kept as a tuple of floats: a list crashed (unhashable) and an array
                # ("truth value is ambiguous") at the first lesion frame, not here
                object.__setattr__(self, f.name, tuple(float(c) for c in value))

    def label_color(self, label: str) -> BGR:
        return {
            "normal": self.color_normal,
            "benign": self.color_benign,
            "malignant": self.color_malignant,
        }.get(label.lower(), self.color_other)


def _is_bgr(value: object) -> bool:
    """Three numbers 0-255 (ints, floats or numpy scalars, as OpenCV takes them; not bools)."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray) or len(value) != 3:
        return False
    return all(isinstance(c, numbers.Real) and not isinstance(c, bool | np.bool_) and 0 <= float(c) <= 255
               for c in value)


@dataclass(frozen=True)
class HudInfo:
    """What the HUD shows besides the prediction. ``latency_ms`` (and ``glass_to_glass_ms``) are this
    frame's up to the moment it is drawn (frames.jsonl's also hold the drawing); ``threshold``: the
    operating point's malignancy threshold (shown beside its name); ``scan_area``: the part of the
    frame the model read (the panels are drawn inside it; None: the whole frame); ``latency_queued``:
    a file run's latency, which includes the wait in the engine's queue (and for its batch), and says so."""

    fps: float | None  # None: not known yet (the first frames)
    latency_ms: float | None  # None: no answer on this frame (a frozen one repeats the last): "--"
    operating_point: str
    threshold: float | None = None
    frozen: bool = False
    glass_to_glass_ms: float | None = None
    lesion_mm: float | None = None
    scan_area: ROI | None = None
    latency_queued: bool = False
    #: no frame has been answered yet (the board froze the image from the start): the chip says so, in
    #: grey, where it showed a green "no lesion" that no inference had said
    waiting: bool = False


def label_lines(p: Prediction, hud: HudInfo) -> tuple[str, str]:
    """The label chip and the operating-point line. Benign vs malignant is decided by P(malignant |
    lesion) against the operating point's threshold, so both are shown, not the class probability
    (a "BENIGN 0.23" chip beside a malignancy of 0.77 read as a contradiction)."""
    if hud.waiting:
        text = "no answer yet"
    elif p.lesion:  # rounded towards the side of the threshold the label is on, so they never contradict
        shown = _round_to(p.malignancy, up=p.label == "malignant")
        text = f"{p.label.upper()}  malignancy {shown:.3f}"
        mm = hud.lesion_mm if hud.lesion_mm is not None else p.lesion_mm
        if mm is not None:
            text += f"  {mm:.1f} mm"
    else:
        text = "no lesion"
    op = f"op: {hud.operating_point}"
    if hud.threshold is not None:
        op += f", malignant at >= {_round_to(hud.threshold, up=True):.3f}"
    return text, op


def _round_to(x: float, up: bool, digits: int = 3) -> float:
    """``x`` rounded up or down to ``digits`` decimals. With the threshold rounded up, a benign
    malignancy rounded down stays below it and a malignant one rounded up stays at or above it."""
    scaled = round(x * 10**digits, 6)  # absorb binary noise (0.892 * 1000 = 891.9999...)
    return (math.ceil(scaled) if up else math.floor(scaled)) / 10**digits


def _binary_u8(mask: np.ndarray) -> np.ndarray:
    """0/1 uint8 (a free view for bool masks); float masks are probabilities, cut at 0.5."""
    if mask.dtype == np.bool_:
        return mask.view(np.uint8)
    if np.issubdtype(mask.dtype, np.floating):
        return (mask >= 0.5).astype(np.uint8)
    return (mask > 0).astype(np.uint8)


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight ``(x, y, w, h)`` box around the mask (bool, 0/1 or 0/255, or probabilities ≥ 0.5)."""
    x, y, w, h = cv2.boundingRect(_binary_u8(mask))
    return None if w == 0 or h == 0 else (int(x), int(y), int(w), int(h))


@dataclass(frozen=True)
class _Layout:
    scale: float
    thickness: int
    line_h: int
    pad: int
    margin: int


_MIN_SCALE = 0.25
"""The smallest text a narrow area gets (Hershey simplex at 0.25: letters about 6 px high)."""


_WIDEST_LABEL = "MALIGNANT  malignancy 0.000"


@functools.lru_cache(maxsize=512)  # the operating-point line and the widest label are the same every frame
def _widest(text: str) -> str:
    """``text`` with every number at three digits before its point: the widest it reads in a run."""
    return re.sub(r"(?<![A-Za-z])\d+", lambda m: "0" * len(m.group()) if text[m.start() - 1:m.start()] == "."
                  else "000", text)  # "e2e" and "g2g" are words; a fraction keeps its digits


def _layout_at(scale: float, margin: int) -> _Layout:
    thickness = max(1, round(scale * 2))
    (_, th), base = cv2.getTextSize("Ag", _FONT, scale, thickness)
    pad = max(2 if scale < 0.4 else 3, round(th * 0.4))
    return _Layout(scale, thickness, th + base + pad, pad, margin)


class OverlayRenderer:
    """Draws predictions with one :class:`OverlayStyle`. Not thread-safe (it caches per frame size)."""

    def __init__(self, style: OverlayStyle | None = None) -> None:
        self.style = style or OverlayStyle()
        self._layout: tuple[tuple[int, int], _Layout] | None = None
        self._solid: dict[BGR, np.ndarray] = {}
        self._corner: dict[str, str] = {}  # each panel's corner last frame: it moves only when it must
        self._widths: dict[tuple[str, float], int] = {}  # _widest_width's

    # ------------------------------------------------------------------ public
    def render(self, frame: Frame, prediction: Prediction, hud: HudInfo) -> np.ndarray:
        """A new BGR uint8 image at frame size with the overlay drawn on it."""
        canvas = to_bgr(frame.pixels, copy=True)
        h, w = canvas.shape[:2]
        area = hud.scan_area if self.style.panels_in_scan_area and hud.scan_area is not None else None
        if area is None or not area.fits(w, h) or min(area.w, area.h) < 1:
            area = ROI(0, 0, w, h)
        layout = self._layout_for(area.w, area.h)
        color = self.style.label_color(prediction.label)
        lesion = self._draw_mask(canvas, prediction, color) if prediction.lesion else None
        label = self._draw_label(canvas, prediction, hud, color, layout, area, lesion)
        if self.style.show_hud:
            self._draw_hud(canvas, hud, layout, area, lesion)
        if hud.frozen or prediction.frozen:
            self._draw_frozen(canvas, layout, label, area, lesion)
        return canvas

    def warm_up(self, size: tuple[int, int]) -> None:
        """Draw two throwaway overlays at ``size`` = (width, height), without and with a lesion, on
        the thread that will render. A thread's first ``render`` costs ~30 ms (OpenCV's per-thread
        set-up; then 0.2–0.5 ms, on the 2-core AVX2 machine here), which would otherwise land on a
        stream's first frame."""
        w, h = size
        if w <= 0 or h <= 0:
            return
        frame = Frame(index=-1, pixels=np.zeros((h, w, 3), np.uint8), t_source=0.0, t_capture=0.0, wall_time=0.0)
        mask = np.zeros((h, w), dtype=bool)
        mask[h // 3 : h // 2, w // 3 : w // 2] = True
        hud = HudInfo(fps=30.0, latency_ms=10.0, operating_point="balanced", glass_to_glass_ms=12.0)
        for lesion in (False, True):
            p = Prediction(mask=mask, probs={"normal": 0.2, "benign": 0.5, "malignant": 0.3}, malignancy=0.4,
                           lesion=lesion, label="benign" if lesion else "normal", bbox=mask_bbox(mask),
                           mask_area=float(mask.mean()))
            self.render(frame, p, hud)

    # ------------------------------------------------------------------ mask
    def _draw_mask(self, canvas: np.ndarray, prediction: Prediction,
                   color: BGR) -> tuple[int, int, int, int] | None:
        """The mask's fill and contour; returns the lesion's box (the panels keep off it)."""
        h, w = canvas.shape[:2]
        mask = prediction.mask
        if mask.ndim != 2 or mask.size == 0:
            return prediction.bbox
        if mask.shape != (h, w):  # should not happen (masks come at frame size); keep going
            mask = cv2.resize(_binary_u8(mask), (w, h), interpolation=cv2.INTER_NEAREST)
        box = prediction.bbox if prediction.bbox is not None else mask_bbox(mask)
        if box is None:
            return None
        bx, by, bw, bh = box
        x0, y0 = max(0, int(bx)), max(0, int(by))
        x1, y1 = min(w, int(bx) + int(bw)), min(h, int(by) + int(bh))
        if x1 <= x0 or y1 <= y0:
            return box
        crop = mask[y0:y1, x0:x1]
        m8 = _binary_u8(crop)
        roi = canvas[y0:y1, x0:x1]  # a view: cv2 writes into it in place
        style = self.style
        if style.alpha > 0:
            fill = style.mask_color or color
            solid = self._solid_for(fill, h, w)[y0:y1, x0:x1]
            tinted = cv2.addWeighted(roi, 1.0 - style.alpha, solid, style.alpha, 0.0)
            cv2.copyTo(tinted, m8, roi)
        if style.contour_thickness > 0:
            contours, _ = cv2.findContours(m8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0))
            # thick anti-aliased polylines cost per vertex: a 1-px simplification cuts ~250 → ~30 vertices (5x faster)
            simple = [cv2.approxPolyDP(c, 1.0, True) for c in contours]
            cv2.polylines(canvas, simple, True, style.contour_color or color, style.contour_thickness, cv2.LINE_AA)
        return box

    def _solid_for(self, color: BGR, h: int, w: int) -> np.ndarray:
        solid = self._solid.get(color)
        if solid is None or solid.shape[0] < h or solid.shape[1] < w:
            solid = np.empty((h, w, 3), np.uint8)
            solid[:] = color
            self._solid[color] = solid
        return solid

    # ------------------------------------------------------------------ text
    def _layout_for(self, w: int, h: int) -> _Layout:
        if self._layout is not None and self._layout[0] == (w, h):
            return self._layout[1]
        # sized by the area in steps of 32 px: a scan area re-detected a few pixels larger or smaller
        # does not make the text flicker between sizes
        scale = float(np.clip(self.style.font_scale * (min(w, h) // 32 * 32) / 480.0, 0.4, 3.0))
        layout = _layout_at(scale, max(3, round(min(w, h) * 0.015)))
        self._layout = ((w, h), layout)
        return layout

    def _fit(self, lay: _Layout, lines: Sequence[str], area: ROI) -> _Layout:
        """``lay``, or smaller text where a panel of these ``lines`` is wider than the area (a scan area under
        about 230 px wide cut its text off mid-word). Sized for the lines with every number at its widest
        (:func:`_widest`), so the text does not change size as the numbers change ("e2e 9.9" to "10.1"), in
        steps of 0.05."""
        room = area.w - 2 * lay.margin
        width = max(self._widest_width(line, lay) for line in lines)
        if width <= room or lay.scale <= _MIN_SCALE:
            return lay
        scale = max(_MIN_SCALE, math.floor(lay.scale * room / width * 20) / 20)
        return _layout_at(scale, lay.margin)

    def _box(self, canvas: np.ndarray, x0: int, y0: int, x1: int, y1: int, fill: BGR | None) -> None:
        """Fill a rectangle with ``fill``, or darken it (``fill`` None); clipped at the image edge."""
        h, w = canvas.shape[:2]
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 <= x0 or y1 <= y0:
            return
        sub = canvas[y0:y1, x0:x1]
        if fill is None:
            cv2.convertScaleAbs(sub, dst=sub, alpha=self.style.panel_darken)
        else:
            sub[:] = fill

    def _text(self, canvas: np.ndarray, text: str, x: int, y: int, color: BGR, lay: _Layout) -> None:
        """``text`` with its top-left corner at (x, y) (inside the line's padding)."""
        (_, th), _ = cv2.getTextSize(text, _FONT, lay.scale, lay.thickness)
        cv2.putText(canvas, text, (x + lay.pad, y + lay.pad + th), _FONT, lay.scale, color, lay.thickness, cv2.LINE_AA)

    def _widest_width(self, text: str, lay: _Layout) -> int:
        """:meth:`_width` of ``text`` with its numbers at their widest; a run has few such texts, so each is
        measured once (measuring every frame's took a fifth of the overlay's time)."""
        key = (_widest(text), lay.scale)
        width = self._widths.get(key)
        if width is None:
            if len(self._widths) > 256:
                self._widths.clear()
            width = self._widths[key] = self._width(key[0], lay)
        return width

    def _width(self, text: str, lay: _Layout, scale: float = 1.0) -> int:
        (tw, _), _ = cv2.getTextSize(text, _FONT, lay.scale * scale, lay.thickness)
        return int(tw) + 2 * lay.pad

    def _place(self, panel: str, corners: dict[str, tuple[int, int]], size: tuple[int, int],
               lesion: tuple[int, int, int, int] | None) -> tuple[int, int]:
        """The top-left of ``panel`` (``size`` = w, h): at its corner of last frame while that leaves the
        lesion's box clear, else at the first of ``corners`` that does, else at the first. The label
        chip sat over the top of a lesion near the top-left corner, hiding its margin."""
        last = self._corner.get(panel)
        order = ([last] if last in corners else []) + list(corners)
        w, h = size
        for name in order:
            x, y = corners[name]
            if lesion is None or not _overlap((x, y, w, h), lesion):
                self._corner[panel] = name
                return x, y
        return corners[next(iter(corners))]

    def _draw_label(self, canvas: np.ndarray, p: Prediction, hud: HudInfo, color: BGR, lay: _Layout,
                    area: ROI, lesion: tuple[int, int, int, int] | None) -> tuple[int, int, int, int]:
        """The label chip (label colour) over the operating point, top-left, or top-right where the lesion
        is; returns the panel's box (x, y, w, h)."""
        text, op = label_lines(p, hud)
        if hud.waiting:
            color = self.style.color_other
        elif not p.lesion:
            color = self.style.label_color("normal")
        lay = self._fit(lay, [text, op, _WIDEST_LABEL], area)  # as wide as a malignant chip: no change with the class
        w_chip, w_op = self._width(text, lay), self._width(op, lay)
        w, h = max(w_chip, w_op), 2 * lay.line_h
        top = area.y + lay.margin
        x, y = self._place("label", {"top-left": (area.x + lay.margin, top),
                                     "top-right": (area.x + area.w - lay.margin - w, top)}, (w, h), lesion)
        self._box(canvas, x, y, x + w_chip, y + lay.line_h, color)
        self._text(canvas, text, x, y, _ink_on(color), lay)
        self._box(canvas, x, y + lay.line_h, x + w_op, y + h, None)
        self._text(canvas, op, x, y + lay.line_h, self.style.muted_text_color, lay)
        return x, y, w, h

    def _draw_hud(self, canvas: np.ndarray, hud: HudInfo, lay: _Layout, area: ROI,
                  lesion: tuple[int, int, int, int] | None) -> None:
        """FPS, end-to-end latency and (when known) glass-to-glass latency: bottom-left, or bottom-right
        where the lesion is."""
        fps = "--" if hud.fps is None else f"{hud.fps:.1f}"
        text = f"{fps} FPS  e2e {'--' if hud.latency_ms is None else f'{hud.latency_ms:.1f}'} ms"
        if hud.latency_queued and hud.latency_ms is not None:
            text += " incl. queue"
        if hud.glass_to_glass_ms is not None:
            text += f"  g2g {hud.glass_to_glass_ms:.0f} ms"
        lay = self._fit(lay, [text], area)
        w = self._width(text, lay)
        bottom = area.y + area.h - lay.margin - lay.line_h
        x, y = self._place("hud", {"bottom-left": (area.x + lay.margin, bottom),
                                   "bottom-right": (area.x + area.w - lay.margin - w, bottom)}, (w, lay.line_h), lesion)
        self._box(canvas, x, y, x + w, y + lay.line_h, None)
        self._text(canvas, text, x, y, self.style.text_color, lay)

    def _draw_frozen(self, canvas: np.ndarray, lay: _Layout, label: tuple[int, int, int, int], area: ROI,
                     lesion: tuple[int, int, int, int] | None) -> None:
        """The "FROZEN" banner: in the top corner the label leaves free, else under the label panel (an area
        too narrow for both, or the lesion in that corner)."""
        bw = self._width("FROZEN", lay)
        lx, ly, lw, lh = label
        top = area.y + lay.margin
        label_left = lx <= area.x + lay.margin
        spots = [(area.x + area.w - lay.margin - bw if label_left else area.x + lay.margin, top),
                 (lx if label_left else lx + lw - bw, ly + lh + lay.pad)]
        taken = (lx - lay.margin, ly, lw + 2 * lay.margin, lh)
        x, y = next(((sx, sy) for sx, sy in spots if not _overlap((sx, sy, bw, lay.line_h), taken)
                     and (lesion is None or not _overlap((sx, sy, bw, lay.line_h), lesion))), spots[-1])
        self._box(canvas, x, y, x + bw, y + lay.line_h, self.style.frozen_color)
        self._text(canvas, "FROZEN", x, y, self.style.text_color, lay)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Whether boxes ``a`` and ``b`` (x, y, w, h) share a pixel."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _ink_on(color: BGR) -> BGR:
    """Black or white text, whichever reads better on ``color`` (BGR)."""
    b, g, r = color
    return (0, 0, 0) if 0.114 * b + 0.587 * g + 0.299 * r > 150 else (255, 255, 255)
