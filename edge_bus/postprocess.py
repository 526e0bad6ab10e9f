"""Model outputs + preprocessing meta → :class:`Prediction`. Knows the manifest, not the runtime.

* Class probabilities come from the manifest's head type: ``presence_malignancy`` (two logits:
  P(lesion) = σ(z0), P(malignant | lesion) = σ(z1)) or ``softmax3`` (normal, benign, malignant).
* ``lesion`` is P(lesion) ≥ the lesion threshold (the manifest's, or the config's); the label is ``normal`` without a
  lesion, else ``malignant`` when P(malignant | lesion) ≥ the operating point's threshold.
* Temporal smoothing (exponential moving average of the probabilities and the low-resolution
  mask probabilities) is configurable and off for still images.
* The mask is mapped back to frame size through the ROI; only the largest lesion component and
  those at least ``min_component`` of its size are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from edge_bus.checks import check_fields
from edge_bus.errors import ConfigError, ModelError
from edge_bus.types import ROI, ModelOutputs, Prediction, PreprocessMeta
from edge_bus.zoo import HEADS, Manifest


@dataclass(frozen=True)
class PostprocessConfig:
    operating_point: str | None = None  # None: the manifest's default
    lesion_threshold: float | None = None  # P(lesion) for a lesion frame; None: the manifest's
    smoothing: float = 0.0  # EMA weight of the past, 0 = off, e.g. 0.6 for live video
    gate_mask: bool = True  # empty mask when no lesion is detected
    min_component: float = 0.2  # keep components ≥ this fraction of the largest

    def __post_init__(self) -> None:
        check_fields(self, texts=("operating_point",), optional=("operating_point", "lesion_threshold"),
                     numbers=("smoothing", "min_component", "lesion_threshold"), flags=("gate_mask",))
        if self.lesion_threshold is not None and not 0.0 < self.lesion_threshold < 1.0:
            raise ConfigError(f"lesion_threshold must be between 0 and 1, got {self.lesion_threshold}")
        if not 0.0 <= self.smoothing < 1.0:
            raise ConfigError(f"smoothing must be in [0, 1), got {self.smoothing}")
        if not 0.0 <= self.min_component <= 1.0:
            raise ConfigError(f"min_component must be in [0, 1], got {self.min_component}")


_P_EPS = 1e-6  # a smoothed mask probability is kept this far from 0 and 1 to take its logit (±13.8)


def _sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def presence_malignancy(manifest: Manifest, logits: np.ndarray) -> tuple[float, float]:
    """(P(lesion), P(malignant | lesion)) from a model's class output."""
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    if manifest.head == "softmax3":
        e = np.exp(z - z.max())
        p = e / e.sum()
        lesion = float(p[1] + p[2])
        return lesion, float(p[2] / lesion) if lesion > 0 else 0.0
    return float(_sigmoid(z[0])), float(_sigmoid(z[1]))


def class_probs(lesion_p: float, malignancy: float) -> dict[str, float]:
    """The three class probabilities from P(lesion) and P(malignant | lesion)."""
    return {"normal": 1.0 - lesion_p, "benign": lesion_p * (1.0 - malignancy), "malignant": lesion_p * malignancy}


def keep_main_components(mask: np.ndarray, min_fraction: float) -> np.ndarray:
    """``mask`` with only its largest 8-connected component and those at least ``min_fraction`` of its area.

    Labels only, areas by ``bincount``: ``connectedComponentsWithStats`` took 0.8 ms on a 300×300
    mask here against 0.12 ms for the labels alone (2-core AVX2), and most frames have one
    component, which returns at once."""
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    areas = np.bincount(labels.ravel(), minlength=n)
    keep = areas >= min_fraction * areas[1:].max()
    keep[0] = False
    return keep[labels]


@dataclass(frozen=True)
class MaskRegion:
    """The kept lesion pixels cut to their bounding box, whose top-left corner is (``x``, ``y``) in
    the mask they came from."""

    x: int
    y: int
    pixels: np.ndarray  # bool [h, w]


def main_region(above: np.ndarray, min_fraction: float) -> MaskRegion | None:
    """:func:`keep_main_components` of a thresholded bool mask, labelled inside the mask's bounding
    box only, cut to the bounding box of what is kept; None when nothing is above the threshold.

    The same pixels as labelling the whole mask (a component lies inside the bounding box of all of
    them), at a fraction of the cost on large frames: a lesion is a small part of the scan area, and
    over a 1920×1080 one the labels, their areas and the kept-pixel lookup took 2–10 ms a frame."""
    above = np.asarray(above, dtype=bool)  # a bool mask as it is; anything else: non-zero is above
    x, y, w, h = cv2.boundingRect(above.view(np.uint8))
    if w == 0 or h == 0:
        return None
    kept = keep_main_components(above[y : y + h, x : x + w], min_fraction)
    kx, ky, kw, kh = cv2.boundingRect(kept.view(np.uint8))  # smaller when a component was dropped
    return MaskRegion(x + kx, y + ky, kept[ky : ky + kh, kx : kx + kw])


_PIXEL_CORNERS = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]], np.float32)


def longest_axis_mm(mask_crop: np.ndarray, spacing_mm: tuple[float, float]) -> float | None:
    """Longest extent of the lesion in mm: its maximum Feret diameter (the largest distance between two
    points of the region, pixel edges included), as calipers across the lesion read it. ``spacing_mm``
    is (row, column) spacing. The min-area rectangle's long side, used before, read a diamond 101 px
    tip to tip as 71 px, and a single pixel as 0."""
    contours, _ = cv2.findContours(mask_crop.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    hull = cv2.convexHull(np.concatenate(contours)).reshape(-1, 1, 2).astype(np.float32)  # the farthest pair lies on it
    corners = (hull + _PIXEL_CORNERS).reshape(-1, 2) * np.array([spacing_mm[1], spacing_mm[0]], np.float32)
    outline = cv2.convexHull(corners).reshape(-1, 2).astype(np.float64)  # tens of points on a lesion
    gaps = outline[:, None, :] - outline[None, :, :]
    return float(np.sqrt((gaps * gaps).sum(axis=2).max()))


class Postprocessor:
    """Stateful when smoothing is on: one instance per stream."""

    def __init__(self, manifest: Manifest, config: PostprocessConfig | None = None) -> None:
        self.manifest = manifest
        self.config = config or PostprocessConfig()
        self.op = manifest.operating_point(self.config.operating_point)
        #: P(lesion) at or above which a frame has a lesion: the config's, else the manifest's
        self.lesion_threshold = (manifest.lesion_threshold if self.config.lesion_threshold is None
                                 else self.config.lesion_threshold)
        self._prev_probs: tuple[float, float] | None = None
        self._prev_mask: np.ndarray | None = None

    def reset(self) -> None:
        self._prev_probs = None
        self._prev_mask = None

    def warm_up(self, size: tuple[int, int]) -> None:
        """Map two synthetic lesions back to a frame of ``size`` = (width, height) once, on the calling
        thread, leaving the smoothing state alone. The first frame at a new size otherwise pays for
        OpenCV's first calls and fresh memory, and a live frame waits for it: at 1920×1080 the first
        postprocess of a ``--realtime`` run took 19 ms, against 2–4 ms after this warm-up (measured)."""
        w, h = size
        if w <= 0 or h <= 0:
            return
        spec = self.manifest.input
        mh, mw = max(4, spec.height // 2), max(4, spec.width // 2)
        yy, xx = np.ogrid[:mh, :mw]
        blobs = ((yy - mh / 3) ** 2 + (xx - mw / 3) ** 2 <= (mh / 6) ** 2) | (
            (yy - 2 * mh / 3) ** 2 + (xx - 2 * mw / 3) ** 2 <= (mh / 10) ** 2)
        logits = np.where(blobs, 6.0, -6.0).astype(np.float32)
        fresh = Postprocessor(self.manifest, replace(self.config, smoothing=0.0, gate_mask=False))
        n_logits = 3 if self.manifest.head == "softmax3" else 2
        fresh.postprocess(ModelOutputs(mask_logits=logits, class_logits=np.zeros(n_logits, np.float32)),
                          PreprocessMeta(frame_h=h, frame_w=w, roi=ROI(0, 0, w, h)), spacing_mm=(0.1, 0.1))

    def postprocess(self, outputs: ModelOutputs, meta: PreprocessMeta,
                    spacing_mm: tuple[float, float] | None = None, frozen: bool = False) -> Prediction:
        m = self.manifest
        self._check(outputs, meta)
        lesion_p, malig = presence_malignancy(m, outputs.class_logits)
        a = self.config.smoothing
        mask_map = outputs.mask_logits.astype(np.float32, copy=False)
        if a > 0:  # smooth probabilities: the mask's through its sigmoid
            probs_map = (1.0 / (1.0 + np.exp(-mask_map))).astype(np.float32)
            if self._prev_probs is not None and self._prev_mask is not None:
                lesion_p = a * self._prev_probs[0] + (1 - a) * lesion_p
                malig = a * self._prev_probs[1] + (1 - a) * malig
                probs_map = a * self._prev_mask + (1 - a) * probs_map
                # back to logits, so the mask is cut as without smoothing (resized logits cut at the threshold's
                # logit): a probability map resized is not its logits resized, and cut at 0.5 it drew 35-53 of
                # 15-20k pixels otherwise on a cine frame, so a stream's masks were not eval's
                q = np.clip(probs_map, _P_EPS, 1.0 - _P_EPS)
                mask_map = np.log(q) - np.log1p(-q)
            self._prev_probs, self._prev_mask = (lesion_p, malig), probs_map
        cut = float(np.log(m.mask_threshold / (1.0 - m.mask_threshold)))
        lesion = lesion_p >= self.lesion_threshold
        probs = class_probs(lesion_p, malig)
        label = "normal" if not lesion else ("malignant" if malig >= self.op.threshold else "benign")

        frame_mask = np.zeros((meta.frame_h, meta.frame_w), dtype=bool)
        bbox = None
        area = 0.0
        lesion_mm = None
        if lesion or not self.config.gate_mask:
            roi = meta.roi
            above = cv2.resize(mask_map, (roi.w, roi.h), interpolation=cv2.INTER_LINEAR) >= cut
            region = main_region(above, self.config.min_component)
            if region is not None:
                x, y = roi.x + region.x, roi.y + region.y
                h, w = region.pixels.shape
                frame_mask[y : y + h, x : x + w] = region.pixels
                bbox = (x, y, w, h)
                area = cv2.countNonZero(region.pixels.view(np.uint8)) / float(meta.frame_h * meta.frame_w)
                if spacing_mm is not None:
                    lesion_mm = longest_axis_mm(region.pixels, spacing_mm)
        return Prediction(mask=frame_mask, probs=probs, malignancy=malig, lesion=lesion, label=label,
                          bbox=bbox, mask_area=area, lesion_mm=lesion_mm, frozen=frozen)

    def _check(self, outputs: ModelOutputs, meta: PreprocessMeta) -> None:
        """What an engine of one's own (or a direct call) may hand over wrongly, as one-line errors: a
        [1, 1, H, W] mask gave a cv2.error, one class logit too few an IndexError, a NaN logit a
        ValueError in the renderer (and a frame called normal), a scan area past the frame a
        broadcasting ValueError."""
        mask, logits = outputs.mask_logits, outputs.class_logits
        name = self.manifest.name
        if not isinstance(mask, np.ndarray) or mask.ndim != 2 or min(mask.shape) < 2:
            raise ModelError(f"model {name}: mask_logits must be a 2-D [H, W] array (at least 2x2), got "
                             f"{list(getattr(mask, 'shape', []))} — squeeze the model's [1, 1, H, W] output")
        want = HEADS[self.manifest.head]
        if not isinstance(logits, np.ndarray) or logits.size != want:
            raise ModelError(f"model {name}: class_logits must hold {want} values for its {self.manifest.head} "
                             f"head, got {list(getattr(logits, 'shape', []))}")
        if not np.isfinite(logits).all():
            raise ModelError(f"model {name} gave class logits {logits.tolist()} for a frame: not finite — check the "
                             "model and the device it runs on")
        if not meta.roi.fits(meta.frame_w, meta.frame_h):
            raise ConfigError(f"scan area {meta.roi.as_list()} reaches past the {meta.frame_w}x{meta.frame_h} frame")
