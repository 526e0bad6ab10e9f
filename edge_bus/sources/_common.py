"""Small helpers the sources share: stamping frames, BGR conversion, natural sort, quiet OpenCV."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TypeVar

import cv2
import numpy as np

from edge_bus.errors import SourceError
from edge_bus.imaging import not_opencv_path, opencv_path
from edge_bus.types import Frame

__all__ = [
    "PLAUSIBLE_FPS", "check_readable_file", "describe_exc", "make_frame", "natural_key", "open_or_none",
    "opencv_file", "plausible_fps", "quiet_opencv",
]

PLAUSIBLE_FPS = (1.0, 1000.0)
"""The frame rates a file's header is believed within (from, up to but not including): 0.001 fps from a
broken header made ``--realtime`` wait 1000 s a frame and the overlay video unopenable."""


def plausible_fps(fps: float) -> float:
    """``fps`` when within :data:`PLAUSIBLE_FPS`, else 0.0 (unknown)."""
    return fps if PLAUSIBLE_FPS[0] <= fps < PLAUSIBLE_FPS[1] else 0.0

# FFmpeg's decoder prints its own lines ("[msmpeg4v2 @ 0x...] cbpy 1 invalid", "moov atom not found") on
# stderr, on top of edge-bus's one-line error and through the progress bar; edge-bus reports damage
# itself. Read when OpenCV first opens a file, so setting it here (before any capture) is enough;
# set OPENCV_FFMPEG_LOGLEVEL yourself (e.g. 16 for errors) to see FFmpeg's messages again.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders ``benign (2).png`` before ``benign (10).png`` (case-insensitive)."""
    parts = _DIGITS.split(name.casefold())
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def describe_exc(exc: BaseException, limit: int = 160) -> str:
    """``Type: message`` squeezed onto one line and shortened, for embedding in a one-line error."""
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def make_frame(
    index: int,
    pixels: np.ndarray,
    t_source: float,
    *,
    pixel_spacing_mm: tuple[float, float] | None = None,
    dropped_before: int = 0,
    t_capture: float | None = None,
    decode_ms: float = 0.0,
    file: str | os.PathLike[str] | None = None,
    cut: bool = False,
) -> Frame:
    """A :class:`Frame` stamped now (``t_capture`` from ``perf_counter`` unless given, ``wall_time``
    from ``time``). ``file``: the image it came from (a path is kept as its text, as frames.jsonl writes it);
    ``cut``: the picture jumps here (:attr:`Frame.cut`)."""
    return Frame(
        index=index,
        pixels=pixels,
        t_source=float(t_source),
        t_capture=time.perf_counter() if t_capture is None else t_capture,
        wall_time=time.time(),
        dropped_before=dropped_before,
        pixel_spacing_mm=pixel_spacing_mm,
        decode_ms=decode_ms,
        file=os.fspath(file) if file is not None else None,
        cut=cut,
    )


def check_readable_file(path: Path, what: str, hint: str) -> None:
    """Raise a one-line :class:`SourceError` unless ``path`` is a readable, non-empty file.

    ``what`` names the thing ("video", "DICOM file"); ``hint`` is appended for a folder given
    where a file was expected.
    """
    if not path.exists():
        raise SourceError(f"cannot open {what} '{path}': file not found — check the path")
    if path.is_dir():
        raise SourceError(f"cannot open {what} '{path}': it is a folder — {hint}")
    if not os.access(path, os.R_OK):
        raise SourceError(f"cannot open {what} '{path}': permission denied — check the file's permissions")
    if path.stat().st_size == 0:
        raise SourceError(f"cannot open {what} '{path}': the file is empty (0 bytes) — copy or export it again")


def opencv_file(path: Path, what: str) -> str:
    """``path`` as OpenCV takes it (:func:`~edge_bus.imaging.opencv_path`), else a one-line
    :class:`SourceError` (OpenCV crashed the process on a name that is not UTF-8)."""
    text = opencv_path(path)
    if text is None:
        raise SourceError(not_opencv_path(what, path))
    return text


@contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own ``[ WARN ]`` lines while probing a file or device (we raise instead)."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


class _Openable(Protocol):
    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's name
    def release(self) -> None: ...


C = TypeVar("C", bound=_Openable)


def open_or_none(open_capture: Callable[[], C]) -> C | None:
    """Call ``open_capture``; the capture if OpenCV opened it, else ``None`` (released, no exception)."""
    try:
        cap = open_capture()
    except cv2.error:
        return None
    if cap.isOpened():
        return cap
    cap.release()
    return None
