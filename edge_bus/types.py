"""The typed, immutable values that travel between pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge_bus.errors import ConfigError


@dataclass(frozen=True)
class ROI:
    """A rectangle in frame pixels: x, y (top-left), w, h."""

    x: int
    y: int
    w: int
    h: int

    def __post_init__(self) -> None:
        values = (self.x, self.y, self.w, self.h)
        if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"ROI needs whole pixel numbers x, y, w, h, got {values!r}")
        for name, v in zip(("x", "y", "w", "h"), values, strict=True):  # numpy integers: plain ints, for
            object.__setattr__(self, name, int(v))  # the bbox in frames.jsonl (json can't write an np.int64)
        if self.x < 0 or self.y < 0 or self.w <= 0 or self.h <= 0:
            raise ConfigError(f"ROI needs x,y >= 0 and w,h > 0, got {self.x},{self.y},{self.w},{self.h}")

    @classmethod
    def parse(cls, text: str) -> ROI:
        """``"x,y,w,h"`` in pixels; :class:`~edge_bus.errors.ConfigError` (a ValueError) otherwise."""
        parts = [p.strip() for p in str(text).split(",")]
        if len(parts) != 4 or not all(p.lstrip("-").isdigit() for p in parts):
            raise ConfigError(f"ROI must be x,y,w,h in pixels, got {text!r}")
        return cls(*(int(p) for p in parts))

    def fits(self, width: int, height: int) -> bool:
        return self.x + self.w <= width and self.y + self.h <= height

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


@dataclass(frozen=True)
class HardwareMeta:
    """What the controller board said about a frame (via firmware_bridge)."""

    device_frame: int
    t_acquired_host: float  # device acquisition time mapped onto the host's monotonic clock (s)
    probe_id: int = 0
    depth_mm: float = 0.0
    gain_db: float = 0.0
    frozen: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "device_frame": self.device_frame,
            "t_acquired_host": round(self.t_acquired_host, 6),
            "probe_id": self.probe_id,
            "depth_mm": self.depth_mm,
            "gain_db": self.gain_db,
            "frozen": self.frozen,
        }


@dataclass(frozen=True)
class Frame:
    """One frame from a source.

    ``t_source``: seconds into the source (file position or since the stream started);
    ``t_capture``: host monotonic time when the frame was read (``time.perf_counter``);
    ``wall_time``: host wall clock when it was read (``time.time``).
    ``pixel_spacing_mm``: (row, col) physical spacing, when the source knows it (DICOM).
    ``file``: the image file, for a folder of stills (frames.jsonl then has a ``file`` key).
    ``cut``: the picture jumps here from the frame before (the first frame of each ``--loop`` pass
    after the first, of each file after the first in a folder): temporal smoothing starts afresh on
    it, and the scan area is detected again.
    ``decode_ms``: what it took to turn the frame into pixels (timed by a capture device itself, by an
    image folder, and for a replayed file by the live reader; 0 where nobody timed it). A capture device stamps
    ``t_capture`` when the grabber hands the frame over, before decoding it, so its decode counts in
    the end-to-end latency; a file's frame is stamped once decoded (reading a file is not acquisition).
    """

    index: int
    pixels: np.ndarray
    t_source: float
    t_capture: float
    wall_time: float
    dropped_before: int = 0
    pixel_spacing_mm: tuple[float, float] | None = None
    hw: HardwareMeta | None = None
    decode_ms: float = 0.0
    file: str | None = None  # the image file a folder source read this frame from
    cut: bool = False


@dataclass(frozen=True)
class PreprocessMeta:
    """How the model tensor was cut out of the frame, to map outputs back."""

    frame_h: int
    frame_w: int
    roi: ROI


@dataclass(frozen=True)
class ModelOutputs:
    """Raw model outputs for one frame: mask logits [H, W] and class logits [K]."""

    mask_logits: np.ndarray
    class_logits: np.ndarray


@dataclass(frozen=True)
class Prediction:
    """What the model says about one frame, mapped back to frame coordinates.

    ``mask``: bool HxW at frame size; ``probs``: class name → probability (sums to 1);
    ``malignancy``: P(malignant | lesion); ``lesion``: the presence decision.
    """

    mask: np.ndarray
    probs: dict[str, float]
    malignancy: float
    lesion: bool
    label: str
    bbox: tuple[int, int, int, int] | None
    mask_area: float
    lesion_mm: float | None = None
    frozen: bool = False


@dataclass(frozen=True)
class StageTimes:
    """Milliseconds spent in each stage for one frame, plus end-to-end."""

    stages_ms: dict[str, float] = field(default_factory=dict)
    e2e_ms: float = 0.0
    glass_to_glass_ms: float | None = None


@dataclass(frozen=True)
class FrameRecord:
    """Everything logged about one processed frame (one line of frames.jsonl)."""

    frame: Frame
    prediction: Prediction
    times: StageTimes

    def to_json(self) -> dict[str, object]:
        p, f = self.prediction, self.frame
        return {
            "frame": f.index,
            "t_source": round(f.t_source, 6),
            "t_capture": round(f.wall_time, 6),
            "label": p.label,
            "probs": {k: round(v, 5) for k, v in p.probs.items()},
            "malignancy": round(p.malignancy, 5),
            "lesion": p.lesion,
            "frozen": p.frozen,
            "mask_area": round(p.mask_area, 6),
            "bbox": list(p.bbox) if p.bbox is not None else None,
            "lesion_mm": round(p.lesion_mm, 2) if p.lesion_mm is not None else None,
            "stages_ms": {k: round(v, 3) for k, v in self.times.stages_ms.items()},
            "e2e_ms": round(self.times.e2e_ms, 3),
            "glass_to_glass_ms": (
                round(self.times.glass_to_glass_ms, 3) if self.times.glass_to_glass_ms is not None else None
            ),
            "dropped_before": f.dropped_before,
            "hw": f.hw.to_json() if f.hw is not None else None,
            **({"file": f.file} if f.file is not None else {}),
        }
