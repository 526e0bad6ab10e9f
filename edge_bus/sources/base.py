"""The one interface every frame source implements.

A source is an iterator of :class:`~edge_bus.types.Frame` with a little metadata. ``live``
sources (capture devices) may drop frames when the consumer is slower than the camera: the
pipeline, not the source, applies the drop policy and counts drops; a source only reports
``dropped_before`` when it itself skipped frames (e.g. a DICOM with missing frames).

Errors: opening raises :class:`~edge_bus.errors.SourceError` with a one-line message that names
the thing and says what to do; a file that breaks off mid-way raises
:class:`~edge_bus.errors.SourceEndedEarly` from ``__next__`` after the last good frame.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

from edge_bus.checks import number_or_none
from edge_bus.types import Frame

_S = TypeVar("_S", bound="FrameSource")


@dataclass(frozen=True)
class SourceInfo:
    """What a source is: ``kind`` (video, folder, capture, dicom, demo), a display ``name``,
    frame size, nominal fps (0 if unknown), frame count (None if unbounded/unknown),
    ``live`` (frames arrive in real time whether or not we keep up),
    ``still`` (independent still images: temporal smoothing is off) and
    ``stamped_before_decode`` (``t_capture`` is taken when the frame is grabbed, before it is decoded,
    as a capture device does: decoding then counts in ``e2e_ms``; other sources stamp after) and
    ``pixel_format`` (what a capture device delivers, e.g. ``YUYV``, ``MJPG``; "" elsewhere)."""

    kind: str
    name: str
    width: int
    height: int
    fps: float
    frame_count: int | None
    live: bool = False
    still: bool = False
    stamped_before_decode: bool = False
    pixel_format: str = ""

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "name": self.name, "width": self.width, "height": self.height,
                                  "fps": self.fps, "frames": self.frame_count, "live": self.live, "still": self.still,
                                  "stamped_before_decode": self.stamped_before_decode}
        if self.pixel_format:
            out["pixel_format"] = self.pixel_format
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> SourceInfo:
        """:meth:`to_json` read back (latency.json's ``source``); a key missing from an older file takes
        its default, a wrong type too."""
        def number(key: str) -> float:
            return number_or_none(obj.get(key)) or 0.0

        frames = obj.get("frames")
        return cls(kind=str(obj.get("kind", "")), name=str(obj.get("name", "")), width=int(number("width")),
                   height=int(number("height")), fps=number("fps"),
                   frame_count=frames if isinstance(frames, int) and not isinstance(frames, bool) else None,
                   live=obj.get("live") is True, still=obj.get("still") is True,
                   stamped_before_decode=obj.get("stamped_before_decode") is True,
                   pixel_format=str(obj.get("pixel_format") or ""))


class FrameSource(ABC):
    """Iterate frames; always ``close()`` (or use as a context manager)."""

    @property
    @abstractmethod
    def info(self) -> SourceInfo: ...

    @abstractmethod
    def __next__(self) -> Frame: ...

    def __iter__(self) -> Iterator[Frame]:
        return self

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the device or file."""

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
