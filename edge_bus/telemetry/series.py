"""A run's few numbers per frame, every frame kept (not the pixels): for the checks that read a short
run's frames.jsonl back (``edge-bus bench``, ``edge-bus doctor``) and for tests.

A run itself keeps what its report draws in a :class:`~edge_bus.telemetry.chart_series.ChartSeries`,
which stops growing, and its verdict in a :class:`~edge_bus.summary.VerdictTally`.
"""

from __future__ import annotations

import json
import math
import os
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_bus.types import FrameRecord

__all__ = ["FrameSeries", "SeriesBuilder", "frame_lines", "is_frame_record", "logged_values"]


@dataclass(frozen=True, eq=False)
class FrameSeries:
    """A run's numbers, one entry per processed frame in every array.

    Stage times are NaN for frames where a stage did not run; ``glass_to_glass_ms`` is ``None``
    when no frame had it (NaN per frame where unknown). ``frozen``: frames shown while the device was
    frozen (no inference: they repeat the answer before them); ``None`` means none was.
    """

    frame: np.ndarray
    e2e_ms: np.ndarray
    stages_ms: Mapping[str, np.ndarray]
    label: tuple[str, ...]
    malignancy: np.ndarray
    lesion: np.ndarray
    glass_to_glass_ms: np.ndarray | None = None
    frozen: np.ndarray | None = None
    dropped_before: np.ndarray | None = None  # frames dropped just before each one (None: no drop at all)

    def __post_init__(self) -> None:
        n = len(self.frame)
        lengths = {"e2e_ms": len(self.e2e_ms), "label": len(self.label), "malignancy": len(self.malignancy)}
        lengths |= {"lesion": len(self.lesion), **{f"stages_ms[{k}]": len(v) for k, v in self.stages_ms.items()}}
        if self.glass_to_glass_ms is not None:
            lengths["glass_to_glass_ms"] = len(self.glass_to_glass_ms)
        if self.frozen is not None:
            lengths["frozen"] = len(self.frozen)
        if self.dropped_before is not None:
            lengths["dropped_before"] = len(self.dropped_before)
        wrong = {k: v for k, v in lengths.items() if v != n}
        if wrong:
            raise ValueError(f"FrameSeries: {n} frames but {wrong}")

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def answered(self) -> np.ndarray:
        """Per frame: the model ran on it (not frozen)."""
        return np.ones(len(self), dtype=bool) if self.frozen is None else ~self.frozen

    @classmethod
    def from_records(cls, records: Iterable[FrameRecord]) -> FrameSeries:
        builder = SeriesBuilder()
        for r in records:
            builder.add(r)
        return builder.build()

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike[str]) -> FrameSeries:
        """Read a frames.jsonl; an incomplete or broken line (a crash mid-write) is skipped."""
        builder = SeriesBuilder()
        for obj in frame_lines(path):
            if obj is not None:
                builder.add_json(obj)
        return builder.build()


_MAX_INDEX = 2**53  # frame and drop counts: whole numbers a float (and a JSON reader) holds exactly


def _count(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < _MAX_INDEX


def _finite_number(v: object, lo: float = -math.inf, hi: float = math.inf) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi


def is_frame_record(obj: object) -> bool:
    """``obj`` is a frames.jsonl line as edge-bus writes it, in the fields the report reads: a frame
    index, a label, a malignancy in [0, 1], finite times. A line edited or damaged into something
    else (``{}``, ``"frame": 1e300``, ``"malignancy": Infinity``) would otherwise end in a traceback
    or in a verdict of "mean P(malignant) inf"."""
    if not isinstance(obj, dict) or not _count(obj.get("frame")) or not isinstance(obj.get("label"), str):
        return False
    if not _finite_number(obj.get("malignancy"), 0.0, 1.0) or not _count(obj.get("dropped_before", 0)):
        return False
    times = [obj.get("e2e_ms"), obj.get("t_source", 0.0), obj.get("t_capture", 0.0)]
    stages = obj.get("stages_ms", {})
    if not isinstance(stages, dict):
        return False
    times += list(stages.values())
    if obj.get("glass_to_glass_ms") is not None:
        times.append(obj["glass_to_glass_ms"])
    return all(_finite_number(t) for t in times)


def frame_lines(path: str | os.PathLike[str]) -> Iterator[dict[str, Any] | None]:
    """Each line of a frames.jsonl as its object, read as the file goes; None for a line that is not
    one (the last line, torn when a run is killed mid-write, or a line that is not a frame record:
    :func:`is_frame_record`). Blank lines are passed over. Raises OutputError when it can't be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except (json.JSONDecodeError, RecursionError):
                    yield None
                    continue
                yield obj if is_frame_record(obj) else None
    except OSError as exc:
        from edge_bus.sinks.files import output_error  # here: edge_bus.sinks imports this module

        raise output_error(path, exc, "check the run folder") from None


class SeriesBuilder:
    """Collects a :class:`FrameSeries`, frame by frame: about 100 bytes a frame with six stages, for as long
    as it is fed (a run's own numbers go to a bounded :class:`~edge_bus.telemetry.chart_series.ChartSeriesBuilder`)."""

    def __init__(self) -> None:
        self._frame: array[int] = array("q")
        self._e2e: array[float] = array("d")
        self._mal: array[float] = array("d")
        self._lesion: array[int] = array("b")
        self._g2g: array[float] = array("d")
        self._any_g2g = False
        self._frozen: array[int] = array("b")
        self._dropped: array[int] = array("q")
        self._label: list[str] = []
        self._stages: dict[str, array[float]] = {}

    def __len__(self) -> int:
        return len(self._frame)

    def add(self, record: FrameRecord) -> None:
        p, t = record.prediction, record.times
        self.add_values(record.frame.index, t.e2e_ms, t.stages_ms, p.label, p.malignancy, p.lesion, t.glass_to_glass_ms,
                        frozen=p.frozen, dropped_before=record.frame.dropped_before)

    def add_json(self, obj: Mapping[str, object]) -> None:
        """Add one frames.jsonl object (the :meth:`FrameRecord.to_json` format)."""
        self.add_values(**logged_values(obj, len(self._frame)))

    def add_values(
        self,
        frame: int,
        e2e_ms: float,
        stages_ms: Mapping[str, float],
        label: str,
        malignancy: float,
        lesion: bool,
        glass_to_glass_ms: float | None = None,
        frozen: bool = False,
        dropped_before: int = 0,
    ) -> None:
        n = len(self._frame)
        self._frozen.append(1 if frozen else 0)
        self._dropped.append(int(dropped_before))
        self._frame.append(int(frame))
        self._e2e.append(float(e2e_ms))
        self._mal.append(float(malignancy))
        self._lesion.append(1 if lesion else 0)
        self._label.append(label)
        if glass_to_glass_ms is not None:
            self._any_g2g = True
        self._g2g.append(math.nan if glass_to_glass_ms is None else float(glass_to_glass_ms))
        for name, ms in stages_ms.items():
            col = self._stages.get(name)
            if col is None:
                col = self._stages[name] = array("d", [math.nan]) * n
            col.append(float(ms))
        for col in self._stages.values():
            if len(col) == n:  # this frame did not have that stage
                col.append(math.nan)

    def build(self) -> FrameSeries:
        return FrameSeries(
            frame=np.array(self._frame, dtype=np.int64),
            e2e_ms=np.array(self._e2e, dtype=np.float64),
            stages_ms={k: np.array(v, dtype=np.float64) for k, v in self._stages.items()},
            label=tuple(self._label),
            malignancy=np.array(self._mal, dtype=np.float64),
            lesion=np.array(self._lesion, dtype=bool),
            glass_to_glass_ms=np.array(self._g2g, dtype=np.float64) if self._any_g2g else None,
            frozen=np.array(self._frozen, dtype=bool) if any(self._frozen) else None,
            dropped_before=np.array(self._dropped, dtype=np.int64) if any(self._dropped) else None,
        )


def logged_values(obj: Mapping[str, object], index: int = 0) -> dict[str, Any]:
    """One frames.jsonl object (the :meth:`FrameRecord.to_json` format) as :meth:`SeriesBuilder.add_values`'
    arguments (``index``: its frame number, when it has none)."""
    stages = obj.get("stages_ms")
    return {
        "frame": int(_num(obj.get("frame"), index)),
        "e2e_ms": _num(obj.get("e2e_ms")),
        "stages_ms": {str(k): _num(v) for k, v in stages.items()} if isinstance(stages, dict) else {},
        "label": str(obj.get("label", "")),
        "malignancy": _num(obj.get("malignancy")),
        "lesion": bool(obj.get("lesion", False)),
        "glass_to_glass_ms": None if obj.get("glass_to_glass_ms") is None else _num(obj.get("glass_to_glass_ms")),
        "frozen": obj.get("frozen") is True,
        "dropped_before": int(_num(obj.get("dropped_before"), 0.0)),
    }


def _num(v: object, default: float = math.nan) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else default
