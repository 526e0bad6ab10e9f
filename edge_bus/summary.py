"""End of a run: the clip-level verdict, ``latency.json`` and ``report.html``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_bus.sinks.files import atomic_write_text
from edge_bus.telemetry.series import FrameSeries

EPISODE_GAP_S = 0.5
"""A lesion episode goes on across lesion-free stretches up to this long (a lesion leaves the model's
view for a few frames as the probe moves, or the presence score dips below the threshold)."""
EPISODE_MIN_S = 0.2
"""A shorter run of lesion frames is not listed as an episode (a flicker, not a lesion in view)."""
MAX_LISTED_EPISODES = 1000
"""Lesion episodes latency.json lists (``verdict.episodes``; ``verdict.episode_count`` counts them all): a
100k-frame --loop of a clip had 1,667, 190 KB of the file, and an overnight one would have had 100,000."""
ASSUMED_EPISODE_FPS = 30.0
"""The frame rate episodes are measured at when the source does not give its own (a DICOM cine without
FrameTime): a scanner's usual rate. The report then gives the episodes in frames, not seconds."""


@dataclass(frozen=True)
class LesionEpisode:
    """A stretch of the clip with a lesion in view: source frames ``first_frame`` to ``last_frame``
    (as in frames.jsonl), of which ``lesion_frames`` showed a lesion; ``label`` is malignant when
    their mean P(malignant | lesion), ``mean_malignancy``, reaches the operating point, else benign."""

    first_frame: int
    last_frame: int
    lesion_frames: int
    mean_malignancy: float
    label: str

    def to_json(self) -> dict[str, object]:
        return {"first_frame": self.first_frame, "last_frame": self.last_frame, "lesion_frames": self.lesion_frames,
                "mean_malignancy": round(self.mean_malignancy, 4), "label": self.label}


def lesion_episodes(series: FrameSeries, threshold: float, max_gap: int, min_frames: int) -> tuple[LesionEpisode, ...]:
    """The clip's lesion frames grouped into episodes: lesion frames with at most ``max_gap`` source
    frames between them belong to one (dropped frames count as the time they stand for); groups of
    fewer than ``min_frames`` lesion frames are left out. Frames shown while the device was frozen are
    left out, as in the verdict, so a freeze longer than the gap splits an episode."""
    keep = series.answered & series.lesion
    frames = series.frame[keep]
    if len(frames) == 0:
        return ()
    malignancy = series.malignancy[keep]
    cuts = np.flatnonzero(np.diff(frames) > max_gap + 1) + 1
    episodes = []
    for idx in np.split(np.arange(len(frames)), cuts):
        if len(idx) < max(1, min_frames):
            continue
        mean_m = float(np.mean(malignancy[idx]))
        episodes.append(LesionEpisode(int(frames[idx[0]]), int(frames[idx[-1]]), len(idx), mean_m,
                                      "malignant" if mean_m >= threshold else "benign"))
    return tuple(episodes)


@dataclass(frozen=True)
class Verdict:
    """The clip-level result, from the frames the model answered (``frames``; frozen ones are left
    out). ``label`` is normal when a lesion was seen in fewer than ``min_lesion_fraction`` of them;
    otherwise benign/malignant by the mean malignancy of the lesion frames against the operating
    point. ``confidence`` is that mean (malignant), one minus it (benign), or the share of
    lesion-free frames (normal). ``mean_malignancy`` is that mean whenever a frame had a lesion, also
    in a clip called normal (None without lesion frames)."""

    label: str
    confidence: float
    lesion_frames: int
    frames: int
    mean_malignancy: float | None
    #: the stretches with a lesion in view, each with its own label (:func:`lesion_episodes`): one clip
    #: may sweep over two lesions, which the clip's mean would blend
    episodes: tuple[LesionEpisode, ...] = ()
    min_lesion_fraction: float = 0.1  #: the share of lesion frames under which the clip is normal

    def evidence(self) -> str:
        """What the label rests on, in words: the lesion frames and their mean malignancy (the
        ``confidence`` number alone read badly: "benign 0.39" for a mean malignancy of 0.61), and for a
        clip called normal with a few lesion frames, the rule that made it normal."""
        text = f"lesion in {self.lesion_frames} of {self.frames} frames"
        if self.label == "normal" and self.lesion_frames:
            text += f" (under {100 * self.min_lesion_fraction:g}% of them: called normal)"
        if self.mean_malignancy is not None:
            text += f", mean P(malignant | lesion) {self.mean_malignancy:.2f}"
        if len(self.episodes) > 1:  # one episode says nothing the clip's numbers don't
            malignant = sum(e.label == "malignant" for e in self.episodes)
            text += f"; {len(self.episodes)} lesion episodes, {malignant} malignant"
        return text

    def to_json(self) -> dict[str, object]:
        return {"label": self.label, "confidence": round(self.confidence, 4), "lesion_frames": self.lesion_frames,
                "frames": self.frames,
                "mean_malignancy": None if self.mean_malignancy is None else round(self.mean_malignancy, 4),
                "episode_count": len(self.episodes),
                "episodes": [e.to_json() for e in self.episodes[:MAX_LISTED_EPISODES]]}


def clip_verdict(series: FrameSeries, threshold: float, min_lesion_fraction: float = 0.1,
                 fps: float = 0.0) -> Verdict:
    """The clip's :class:`Verdict` from the frames the model answered (frames shown while the device
    was frozen repeat an earlier answer and are left out; ``frames`` counts the answered ones).
    ``fps`` > 0 (a video: 0 for independent stills) also lists its lesion episodes, with
    :data:`EPISODE_GAP_S` and :data:`EPISODE_MIN_S` at that rate."""
    answered = series.answered
    lesion = series.lesion & answered
    n = int(answered.sum())
    n_lesion = int(lesion.sum())
    episodes = lesion_episodes(series, threshold, max_gap=round(EPISODE_GAP_S * fps),
                               min_frames=max(1, round(EPISODE_MIN_S * fps))) if fps > 0 else ()
    if n == 0:
        return Verdict("none", 0.0, 0, 0, None, min_lesion_fraction=min_lesion_fraction)
    mean_m = float(np.mean(series.malignancy[lesion])) if n_lesion else None
    if mean_m is None or n_lesion < max(1.0, min_lesion_fraction * n):
        return Verdict("normal", 1.0 - n_lesion / n, n_lesion, n, mean_m, episodes, min_lesion_fraction)
    label = "malignant" if mean_m >= threshold else "benign"
    return Verdict(label, mean_m if label == "malignant" else 1.0 - mean_m, n_lesion, n, mean_m, episodes,
                   min_lesion_fraction)


def write_latency_json(path: Path, data: dict[str, Any], hint: str | None = None) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n", hint=hint)
