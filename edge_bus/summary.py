"""End of a run: the clip-level verdict, ``latency.json`` and ``report.html``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    #: the stretches with a lesion in view, each with its own label (:class:`VerdictTally`), the first
    #: :data:`MAX_LISTED_EPISODES` of them: one clip may sweep over two lesions, which the clip's mean
    #: would blend
    episodes: tuple[LesionEpisode, ...] = ()
    min_lesion_fraction: float = 0.1  #: the share of lesion frames under which the clip is normal
    #: all the episodes, and how many of them were malignant (None: those in ``episodes``)
    episode_count: int | None = None
    malignant_episodes: int | None = None

    def __post_init__(self) -> None:
        if self.episode_count is None:
            object.__setattr__(self, "episode_count", len(self.episodes))
        if self.malignant_episodes is None:
            object.__setattr__(self, "malignant_episodes", sum(e.label == "malignant" for e in self.episodes))

    def evidence(self) -> str:
        """What the label rests on, in words: the lesion frames and their mean malignancy (the
        ``confidence`` number alone read badly: "benign 0.39" for a mean malignancy of 0.61), and for a
        clip called normal with a few lesion frames, the rule that made it normal."""
        text = f"lesion in {self.lesion_frames} of {self.frames} frames"
        if self.label == "normal" and self.lesion_frames:
            text += f" (under {100 * self.min_lesion_fraction:g}% of them: called normal)"
        if self.mean_malignancy is not None:
            text += f", mean P(malignant | lesion) {self.mean_malignancy:.2f}"
        if self.episode_count and self.episode_count > 1:  # one episode says nothing the clip's numbers don't
            text += f"; {self.episode_count:,} lesion episodes, {self.malignant_episodes:,} malignant"
        return text

    def to_json(self) -> dict[str, object]:
        return {"label": self.label, "confidence": round(self.confidence, 4), "lesion_frames": self.lesion_frames,
                "frames": self.frames,
                "mean_malignancy": None if self.mean_malignancy is None else round(self.mean_malignancy, 4),
                "episode_count": self.episode_count,
                "episodes": [e.to_json() for e in self.episodes[:MAX_LISTED_EPISODES]]}


class EpisodeFinder:
    """Groups a clip's lesion frames into :class:`LesionEpisode` s as they come: lesion frames with at
    most ``max_gap`` source frames between them belong to one (dropped frames count as the time they
    stand for); one with fewer than ``min_frames`` lesion frames is left out (a flicker). Keeps the open
    episode, the count of closed ones and the first :data:`MAX_LISTED_EPISODES` of them."""

    def __init__(self, threshold: float, max_gap: int, min_frames: int) -> None:
        self.threshold, self.max_gap, self.min_frames = threshold, max_gap, max(1, min_frames)
        self.listed: list[LesionEpisode] = []
        self.count = 0  # episodes closed
        self.malignant = 0  # of which malignant
        self._open: list[float] | None = None  # [first frame, last frame, lesion frames, malignancy sum]

    def add(self, frame: int, malignancy: float) -> None:
        """One lesion frame (the model answered it): its index in the source and P(malignant | lesion)."""
        if self._open is not None and frame - self._open[1] > self.max_gap + 1:
            self._close(self._open)
            self._open = None
        if self._open is None:
            self._open = [frame, frame, 0, 0.0]
        self._open[1] = frame
        self._open[2] += 1
        self._open[3] += malignancy

    def _episode(self, episode: list[float]) -> LesionEpisode | None:
        """``[first, last, lesion frames, malignancy sum]`` as an episode; None for a flicker."""
        first, last, n, total = episode
        if n < self.min_frames:
            return None
        mean_m = total / n
        label = "malignant" if mean_m >= self.threshold else "benign"
        return LesionEpisode(int(first), int(last), int(n), mean_m, label)

    def _close(self, episode: list[float]) -> None:
        ended = self._episode(episode)
        if ended is None:
            return
        self.count += 1
        self.malignant += ended.label == "malignant"
        if len(self.listed) < MAX_LISTED_EPISODES:
            self.listed.append(ended)

    def result(self) -> tuple[tuple[LesionEpisode, ...], int, int]:
        """(the listed episodes, how many there are, how many malignant), with the open one counted as it
        stands; adding may go on."""
        last = None if self._open is None else self._episode(self._open)
        if last is None:
            return tuple(self.listed), self.count, self.malignant
        listed = self.listed + [last] if len(self.listed) < MAX_LISTED_EPISODES else self.listed
        return tuple(listed), self.count + 1, self.malignant + (last.label == "malignant")


class VerdictTally:
    """The clip's :class:`Verdict`, added up frame by frame as a run goes: a run of any length holds its
    counts and its :class:`EpisodeFinder`, not its frames.

    Frames shown while the device was frozen repeat an earlier answer and are left out (``frames``
    counts the answered ones), so a freeze longer than an episode's gap splits it. ``fps`` > 0 (a
    video: 0 for independent stills) also finds the clip's lesion episodes, with :data:`EPISODE_GAP_S`
    and :data:`EPISODE_MIN_S` at that rate.
    """

    def __init__(self, threshold: float, min_lesion_fraction: float = 0.1, fps: float = 0.0) -> None:
        self.threshold, self.min_lesion_fraction = threshold, min_lesion_fraction
        self.episodes = (EpisodeFinder(threshold, round(EPISODE_GAP_S * fps), round(EPISODE_MIN_S * fps))
                         if fps > 0 else None)
        self.frames = 0
        self.lesion_frames = 0
        self._malignancy_sum = 0.0

    def add(self, frame: int, lesion: bool, malignancy: float, answered: bool = True) -> None:
        """One frame: its index in the source, whether it showed a lesion and its P(malignant | lesion);
        ``answered=False`` for a frame shown while frozen (left out)."""
        if not answered:
            return
        self.frames += 1
        if lesion:
            self.lesion_frames += 1
            self._malignancy_sum += malignancy
            if self.episodes is not None:
                self.episodes.add(frame, malignancy)

    def verdict(self) -> Verdict:
        """The verdict over the frames so far (adding may go on)."""
        listed, count, malignant = self.episodes.result() if self.episodes is not None else ((), 0, 0)
        n, n_lesion, fraction = self.frames, self.lesion_frames, self.min_lesion_fraction
        if n == 0:
            return Verdict("none", 0.0, 0, 0, None, min_lesion_fraction=fraction)
        mean_m = self._malignancy_sum / n_lesion if n_lesion else None
        if mean_m is None or n_lesion < max(1.0, fraction * n):
            label, confidence = "normal", 1.0 - n_lesion / n
        else:
            label = "malignant" if mean_m >= self.threshold else "benign"
            confidence = mean_m if label == "malignant" else 1.0 - mean_m
        return Verdict(label, confidence, n_lesion, n, mean_m, listed, fraction, count, malignant)


def clip_verdict(series: FrameSeries, threshold: float, min_lesion_fraction: float = 0.1,
                 fps: float = 0.0) -> Verdict:
    """The clip's :class:`Verdict` from a :class:`FrameSeries` (a :class:`VerdictTally` over its frames)."""
    tally = VerdictTally(threshold, min_lesion_fraction, fps)
    for frame, lesion, malignancy, answered in zip(series.frame.tolist(), series.lesion.tolist(),
                                                   series.malignancy.tolist(), series.answered.tolist(), strict=True):
        tally.add(frame, lesion, malignancy, answered)
    return tally.verdict()


def write_latency_json(path: Path, data: dict[str, Any], hint: str | None = None) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n", hint=hint)
