"""Video files: anything OpenCV's FFmpeg backend reads (AVI, MP4, MOV, MKV...).

Frames are BGR uint8 HxWx3. ``t_source`` is the container's timestamp of the frame
(``CAP_PROP_POS_MSEC``), or ``index / fps`` when the container has none. A file that declares no
frame rate, or one outside :data:`PLAUSIBLE_FPS` (a broken header: 0.001 fps made ``--realtime``
wait 1000 s for each frame, and OpenCV's video writer refuses under 1 fps), reports fps 0 (unknown),
and its frames are ``index /`` :data:`UNKNOWN_FPS_RATE` seconds apart: its timestamps share the
broken time base.

A file that breaks off mid-way (truncated copy, corrupt frame) raises
:class:`~edge_bus.errors.SourceEndedEarly` from ``__next__`` once every good frame has been
yielded, if fewer frames were decoded than the container declares. AVI and MP4/MOV store the exact
count, so one frame short is an error; other containers (MKV, WebM...) only let FFmpeg estimate
it from the duration, so a small tolerance applies there.

A frame lost in the middle of a file cannot be located: FFmpeg's demuxer renumbers what follows
(OpenCV's position and timestamps run on without a gap), so the frames after it are logged one
frame early. The error says so. FFmpeg's own per-frame decoder messages are silenced
(``OPENCV_FFMPEG_LOGLEVEL``, see :mod:`edge_bus.sources._common`): edge-bus reports the damage itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import cv2

from edge_bus.errors import SourceEndedEarly, SourceError
from edge_bus.imaging import opencv_settings_note, to_bgr
from edge_bus.sources._common import (
    PLAUSIBLE_FPS,
    check_readable_file,
    make_frame,
    open_or_none,
    opencv_file,
    plausible_fps,
    quiet_opencv,
)
from edge_bus.sources.base import FrameSource, SourceInfo
from edge_bus.types import Frame

__all__ = ["PLAUSIBLE_FPS", "UNKNOWN_FPS_RATE", "VideoSource", "frame_count_tolerance"]


UNKNOWN_FPS_RATE = 30.0
"""The rate a video file's frames are timed at when it declares none (or an implausible one)."""

#: containers whose header holds the exact frame count (AVI: dwTotalFrames/idx1, MP4/MOV: stsz)
EXACT_COUNT_SUFFIXES = (".avi", ".mp4", ".mov", ".m4v")


def frame_count_tolerance(declared: int, suffix: str = "") -> int:
    """How many frames short of the declared count still counts as a complete file."""
    if suffix.lower() in EXACT_COUNT_SUFFIXES:
        return 0
    return max(2, round(0.01 * declared))


def _open_file(path: Path) -> cv2.VideoCapture:
    with quiet_opencv():
        return cv2.VideoCapture(opencv_file(path, "video"), cv2.CAP_FFMPEG)


class VideoSource(FrameSource):
    """Decode a video file frame by frame.

    ``tolerance``: frames the decoded count may fall short of the container's declared count
    before it is reported as :class:`SourceEndedEarly` (default :func:`frame_count_tolerance`).
    """

    def __init__(self, path: str | Path, *, tolerance: int | None = None) -> None:
        self._path = Path(path)
        check_readable_file(self._path, "video", f"use --source folder:{self._path} to read an image folder")
        opencv_file(self._path, "video")  # before open_or_none, which takes any failure for "can't read it"
        cap = open_or_none(lambda: _open_file(self._path))
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) if cap is not None else 0
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) if cap is not None else 0
        if cap is None or width <= 0 or height <= 0:
            if cap is not None:
                cap.release()
            raise SourceError(
                f"cannot open video '{self._path}': not a video OpenCV's FFmpeg can read{opencv_settings_note()} "
                "— convert it to MP4 (H.264) or AVI (MJPG), e.g. with ffmpeg"
            )
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self._cap: cv2.VideoCapture | None = cap
        self._fps = plausible_fps(fps)
        self._declared = declared if declared > 0 else None
        self._tolerance = frame_count_tolerance(declared, self._path.suffix) if tolerance is None else tolerance
        self._index = 0
        self._last_t = -1.0
        self._info = SourceInfo(
            kind="video", name=self._path.name, width=width, height=height,
            fps=self._fps, frame_count=self._declared,
        )

    @property
    def info(self) -> SourceInfo:
        return self._info

    @property
    def path(self) -> Path:
        return self._path

    def __next__(self) -> Frame:
        cap = self._cap
        if cap is None:
            raise StopIteration
        try:
            ok, img = cap.read()
        except cv2.error:
            ok, img = False, None
        if not ok or img is None:
            self._end()
        t = float(cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0 if self._fps else -1.0
        if not t > self._last_t:  # no container timestamps (or not increasing): use the nominal rate
            t = max(self._index / (self._fps or UNKNOWN_FPS_RATE), self._last_t + 1e-6)
        self._last_t = t
        frame = make_frame(self._index, to_bgr(img), t)
        self._index += 1
        return frame

    def _end(self) -> NoReturn:
        """Release the file; raise SourceEndedEarly if it ended well short of its declared length."""
        read = self._index
        self.close()
        if read == 0:  # a "successful" run of 0 frames, exit 0, said nothing useful
            raise SourceError(f"video '{self._path.name}' holds no frame that can be decoded — check the file, or "
                              "export it again")
        declared = self._declared
        if declared is not None and read < declared - self._tolerance:
            raise SourceEndedEarly(
                f"video '{self._path.name}' is damaged: {read} of the {declared} frames it declares could be "
                f"decoded (cut short, or frames lost mid-way, after which the log runs one frame early per lost "
                "frame) — copy or export it again"
            )
        raise StopIteration

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
