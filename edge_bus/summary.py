"""End of a run: the clip-level verdict, ``latency.json`` and ``report.html``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_bus.sinks.files import atomic_write_text
from edge_bus.telemetry.series import FrameSeries


@dataclass(frozen=True)
class Verdict:
    """The clip-level result, from the frames the model answered (``frames``; frozen ones are left
    out). ``label`` is normal when a lesion was seen in fewer than ``min_lesion_fraction`` of them;
    otherwise benign/malignant by the mean malignancy of the lesion frames against the operating
    point. ``confidence`` is that mean (malignant), one minus it (benign), or the share of
    lesion-free frames (normal)."""

    label: str
    confidence: float
    lesion_frames: int
    frames: int
    mean_malignancy: float | None

    def evidence(self) -> str:
        """What the label rests on, in words: the lesion frames and their mean malignancy (the
        ``confidence`` number alone read badly: "benign 0.39" for a mean malignancy of 0.61)."""
        text = f"lesion in {self.lesion_frames} of {self.frames} frames"
        if self.mean_malignancy is not None:
            text += f", mean P(malignant | lesion) {self.mean_malignancy:.2f}"
        return text

    def to_json(self) -> dict[str, object]:
        return {"label": self.label, "confidence": round(self.confidence, 4), "lesion_frames": self.lesion_frames,
                "frames": self.frames,
                "mean_malignancy": None if self.mean_malignancy is None else round(self.mean_malignancy, 4)}


def clip_verdict(series: FrameSeries, threshold: float, min_lesion_fraction: float = 0.1) -> Verdict:
    """The clip's :class:`Verdict` from the frames the model answered (frames shown while the device
    was frozen repeat an earlier answer and are left out; ``frames`` counts the answered ones)."""
    answered = series.answered
    lesion = series.lesion & answered
    n = int(answered.sum())
    n_lesion = int(lesion.sum())
    if n == 0:
        return Verdict("none", 0.0, 0, 0, None)
    if n_lesion < max(1.0, min_lesion_fraction * n):
        return Verdict("normal", 1.0 - n_lesion / n, n_lesion, n, None)
    mean_m = float(np.mean(series.malignancy[lesion]))
    label = "malignant" if mean_m >= threshold else "benign"
    return Verdict(label, mean_m if label == "malignant" else 1.0 - mean_m, n_lesion, n, mean_m)


def write_latency_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")
