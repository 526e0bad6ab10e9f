"""Frame → model tensor. Knows the model's input contract (from the manifest), not the runtime.

``Preprocessor.preprocess(frame)`` crops the scan area (a fixed ``--roi`` or one detected
automatically), converts to grayscale, resizes to the model's input size and normalises, and
returns the tensor plus :class:`PreprocessMeta`, which postprocess uses to map the mask back.

Training uses :func:`detect_scan_area` and the same INTER_AREA resize, so the model sees frames as
the runtime prepares them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge_bus.checks import check_fields
from edge_bus.errors import ConfigError, SourceError
from edge_bus.types import ROI, PreprocessMeta


@dataclass(frozen=True)
class InputSpec:
    """The model input contract, read from the manifest."""

    height: int
    width: int
    mean: float
    std: float
    channels: int = 1

    def __post_init__(self) -> None:
        check_fields(self, integers=("height", "width", "channels"), numbers=("mean", "std"))
        if min(self.height, self.width, self.channels) < 1:
            raise ConfigError(f"InputSpec sizes must be >= 1, got {self.height}x{self.width}x{self.channels}")
        if self.std <= 0:
            raise ConfigError(f"InputSpec.std must be > 0 (the input is divided by it), got {self.std}")


MIN_FRAME_SIDE = 16
"""Frames narrower or lower than this are refused (:class:`~edge_bus.errors.SourceError`)."""


def detect_scan_area(gray: np.ndarray, threshold: int = 12, min_fraction: float = 0.25) -> ROI:
    """Find the ultrasound scan area in a uint8 frame (gray, or BGR / BGRA) with scanner UI margins
    around it.

    Dark margins, burned-in text and small colour marks are excluded: the scan area is the
    bounding box of the largest bright connected region after a morphological opening that
    erases thin text strokes. It must cover ``min_fraction`` of the frame, or
    :data:`DOMINANT_FRACTION` when nothing else bright comes near it (:data:`DOMINANT_RATIO`). Falls
    back to the whole frame if nothing big enough is found (:func:`find_scan_area` says None).
    """
    found = find_scan_area(gray, threshold, min_fraction)
    return found if found is not None else ROI(0, 0, gray.shape[1], gray.shape[0])


DOMINANT_FRACTION = 0.05
"""A scan area smaller than ``min_fraction`` of the frame (a 320×320 picture in an 800×600 display
frame is 21%) is taken down to this share when it is the one bright region (:data:`DOMINANT_RATIO`)."""
DOMINANT_RATIO = 4.0
"""...that is, when its area is at least this many times the next bright region's."""


def find_scan_area(gray: np.ndarray, threshold: int = 12, min_fraction: float = 0.25) -> ROI | None:
    """The scan area :func:`detect_scan_area` finds, or None where it finds none big enough (a blank
    frame: the probe lifted) and would take the whole frame."""
    if (not isinstance(gray, np.ndarray) or gray.dtype != np.uint8 or gray.ndim not in (2, 3) or gray.size == 0
            or (gray.ndim == 3 and gray.shape[2] not in (1, 3, 4))):
        raise SourceError(f"detect_scan_area takes a uint8 frame, gray or BGR, got {type(gray).__name__} "
                          f"{list(getattr(gray, 'shape', []))} {getattr(gray, 'dtype', '')}".rstrip())
    gray = to_gray(gray)
    h, w = gray.shape[:2]
    small_scale = 4 if min(h, w) >= 256 else 2
    if min(h, w) < 4 * small_scale:  # too small to find margins in
        return None
    small = cv2.resize(gray, (w // small_scale, h // small_scale), interpolation=cv2.INTER_AREA)
    bright = (small > threshold).astype(np.uint8)
    opened = cv2.morphologyEx(bright, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    if n <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = np.argsort(areas)[::-1]
    idx = 1 + int(order[0])
    x, y, bw, bh = (int(v) * small_scale for v in stats[idx, :4])
    bw, bh = min(bw, w - x), min(bh, h - y)
    dominant = len(order) == 1 or areas[order[0]] >= DOMINANT_RATIO * areas[order[1]]
    if bw * bh < (DOMINANT_FRACTION if dominant else min_fraction) * w * h:
        return None
    return ROI(x, y, bw, bh)


def to_gray(pixels: np.ndarray) -> np.ndarray:
    """BGR/BGRA/gray uint8 → gray uint8 (a view when already gray)."""
    if pixels.ndim == 2:
        return pixels
    if pixels.shape[2] == 1:
        return pixels[:, :, 0]
    if pixels.shape[2] == 4:
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)


DECIMATE_FROM = 3.0
"""A crop at least this many times the model input on both sides (672 px for 224) is first divided by
the whole number k = ⌊ratio / 1.5⌋ with OpenCV's integer-ratio area path, leaving 1.5–3× for the exact
area resize. Direct INTER_AREA at a fractional ratio is slow: an 1100×920 scan area of a 1920×1080
capture frame took 1.76 ms, the two steps 0.50 ms, 0.23 grey levels apart on average (smooth image,
2-core EPYC). No image of BUSI (at most 512 px) or BUS-BRA, nor a cine clip (320 px), comes near
672 px, so what the model was trained and tested on is resized exactly as before."""


def area_resize(gray: np.ndarray, width: int, height: int) -> np.ndarray:
    """``gray`` → ``width`` x ``height`` by pixel-area averaging (INTER_AREA); see :data:`DECIMATE_FROM`."""
    h, w = gray.shape[:2]
    ratio = min(w / width, h / height)
    if ratio >= DECIMATE_FROM:
        k = int(ratio / 1.5)  # a whole-number ratio takes the fast path: at most k-1 rows / columns are left out
        gray = cv2.resize(gray[: h - h % k, : w - w % k], (w // k, h // k), interpolation=cv2.INTER_AREA)
    return cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)


def to_model_input(gray_roi: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Resize a grayscale crop to the model input and normalise → float32 [1, 1, H, W]."""
    resized = area_resize(gray_roi, spec.width, spec.height)
    tensor = resized.astype(np.float32)  # one allocation, then in place: with a video capture open,
    tensor *= np.float32(1.0 / (255.0 * spec.std))  # each extra 200 KB temporary cost ~0.1 ms in page faults
    tensor -= np.float32(spec.mean / spec.std)
    return tensor[None, None]


def check_roi_fits(roi: ROI, width: int, height: int) -> ROI:
    """``roi`` when it lies inside a ``width`` x ``height`` frame, else a :class:`ConfigError`."""
    if not roi.fits(width, height):
        raise ConfigError(f"ROI (--roi or source.roi) {roi.x},{roi.y},{roi.w},{roi.h} reaches past the "
                          f"{width}x{height} frame (it needs x + w <= {width} and y + h <= {height}); omit it to "
                          "detect the scan area automatically")
    return roi


class Preprocessor:
    """Crops the scan area and prepares the model tensor.

    ``roi``: a fixed crop (``--roi``); ``None`` detects the scan area on the first frame and
    re-detects every ``redetect_every`` frames (the probe may change depth).
    """

    def __init__(self, spec: InputSpec, roi: ROI | None = None, redetect_every: int = 30) -> None:
        self.spec = spec
        self._fixed_roi = roi
        self._roi: ROI | None = roi
        self._roi_size: tuple[int, int] | None = None  # (w, h) of the frame self._roi was detected on
        self._redetect_every = max(1, redetect_every)
        self._count = 0

    def roi_for(self, pixels: np.ndarray) -> ROI:
        """The scan area of this frame: the fixed one, the last one detected, or (on the first frame, every
        ``redetect_every`` frames and at a new frame size) one detected now."""
        h, w = pixels.shape[:2]
        if self._fixed_roi is not None:
            return check_roi_fits(self._fixed_roi, w, h)
        # a new frame size (a grabber switched mode) is a new picture: the old area may fit it and
        # still be the wrong place (a smaller one kept on a larger frame reads its black corner)
        if self._roi is None or self._count % self._redetect_every == 0 or self._roi_size != (w, h):
            found = find_scan_area(pixels)  # made gray there
            # a blank frame (the probe lifted) finds none: the picture is where it was, not the whole
            # frame with its UI (taken until the next re-detection, 30 frames on, it changed the answers)
            if found is not None or self._roi is None or self._roi_size != (w, h):
                self._roi = found if found is not None else ROI(0, 0, w, h)
            self._roi_size = (w, h)
        return self._roi

    def new_scene(self) -> None:
        """The picture jumps (:attr:`Frame.cut`: the next file of a folder, a ``--loop`` restart): the next
        frame's scan area is detected afresh (a folder's cines may differ in depth, at one frame size)."""
        self._count = 0
        self._roi = self._fixed_roi

    def warm_up(self, size: tuple[int, int]) -> None:
        """Prepare one blank frame of ``size`` = (width, height) on the calling thread, leaving the scan
        area and the frame count alone. The first frame at a new size otherwise pays for OpenCV's first
        calls and fresh memory: at 1920×1080 it took 7–10 ms, 6–6.5 ms after this warm-up, and the
        next ones 4.7 ms (measured, one process each)."""
        w, h = size
        if min(w, h) < MIN_FRAME_SIDE:
            return
        gray = np.zeros((h, w), np.uint8)
        roi = self._fixed_roi if self._fixed_roi is not None and self._fixed_roi.fits(w, h) else detect_scan_area(gray)
        to_model_input(gray[roi.y : roi.y + roi.h, roi.x : roi.x + roi.w], self.spec)

    def preprocess(self, pixels: np.ndarray) -> tuple[np.ndarray, PreprocessMeta]:
        if not isinstance(pixels, np.ndarray):
            raise SourceError(f"a frame's pixels are a {type(pixels).__name__}, not a numpy array — check the source")
        if pixels.ndim not in (2, 3) or min(pixels.shape[:2], default=0) < 1:
            raise SourceError(f"a frame of shape {list(pixels.shape)} holds no image — check the source")
        if min(pixels.shape[:2]) < MIN_FRAME_SIDE:
            raise SourceError(f"a frame of {pixels.shape[1]}×{pixels.shape[0]} pixels is too small to read a lesion in "
                              f"(edge-bus needs at least {MIN_FRAME_SIDE}×{MIN_FRAME_SIDE}) — check the source")
        # a frame source of one's own can hand over anything: refused here with one line, not as a
        # cv2.error or a ValueError from the renderer (run_stream raises only EdgeBusErrors)
        if pixels.ndim == 3 and pixels.shape[2] not in (1, 3, 4):
            raise SourceError(f"a frame with {pixels.shape[2]} channels: frames are gray, BGR or BGRA — "
                              "check the source")
        if pixels.dtype != np.uint8:
            raise SourceError(f"a frame of dtype {pixels.dtype}: frames are 8-bit (uint8) — convert them in the source")
        roi = self.roi_for(pixels)
        self._count += 1
        # only the scan area is made gray (the whole frame only when it is detected): at 1920×1080 the
        # whole frame's conversion took 0.5 ms, an 1100×920 scan area's 0.3 ms (and its resize 0.5 ms)
        crop = to_gray(pixels[roi.y : roi.y + roi.h, roi.x : roi.x + roi.w])
        tensor = to_model_input(crop, self.spec)
        return tensor, PreprocessMeta(frame_h=pixels.shape[0], frame_w=pixels.shape[1], roi=roi)
