"""overlay.mp4: the rendered overlays as a video (cv2.VideoWriter, 'mp4v'; MJPG .avi as a fallback).

``close()`` is idempotent and releases the writer, which writes the mp4 index: the file is then
playable. It also runs at interpreter exit (``weakref.finalize``) if the caller forgot. A process
killed with SIGKILL leaves an mp4 without its index (OpenCV can't write fragmented mp4).

OpenCV's writer does not report write errors, and FFmpeg's writes stop for good at the first one
that fails (the index is then never written: the file does not play), so free space is checked
before every frame (``check_every``; one ``statvfs``, a few µs); below ``min_free_mb`` the writer is
closed (the file stays playable) and :class:`OutputError` is raised.

``background=True`` encodes on a worker thread (cv2 releases the GIL; mp4v costs a few ms per
640x480 frame): ``write`` then only enqueues, blocking when ``queue_size`` frames are waiting.
Errors from the worker surface at the next ``write`` or at ``close``.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import weakref
from pathlib import Path

import cv2
import numpy as np

from edge_bus.errors import OutputError
from edge_bus.imaging import opencv_path, shown_path, to_bgr
from edge_bus.sinks.files import ensure_parent, free_bytes, output_error

__all__ = ["VideoSink"]

_CODECS = (("mp4v", None), ("MJPG", ".avi"))  # (fourcc, forced suffix)
_STOP = None


VIDEO_MIN_FREE_MB = 64.0
"""The overlay video stops when less than this is free (room for its index and the run's reports)."""


class VideoSink:
    """Writes BGR frames of ``size`` = (width, height) to ``path`` at ``fps`` (<= 0 or NaN: 30).

    ``self.path`` is the file actually written (``.avi`` when only the MJPG fallback worked) and
    ``self.fourcc`` the codec. Frames of another size are fitted in, their aspect kept (:func:`letterbox`: a
    folder of stills of several shapes was squeezed to the first's); gray frames are converted. An odd
    width or height gets one black column or row (``self.video_size``): OpenCV's writer silently
    drops the last column and row of an odd-sized frame (321x241 came out 320x240).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        size: tuple[int, int],
        *,
        min_free_mb: float = VIDEO_MIN_FREE_MB,
        check_every: int = 1,
        background: bool = False,
        queue_size: int = 16,
    ) -> None:
        width, height = (int(v) for v in size)
        if width <= 0 or height <= 0:
            raise ValueError(f"VideoSink size must be positive (width, height), got {size}")
        self.size = (width, height)
        self.video_size = (width + width % 2, height + height % 2)  # what the file holds
        self.fps = float(fps) if fps and math.isfinite(fps) and fps > 0 else 30.0
        self.frames = 0
        self.playable = True  # False once close() found the finished file unplayable
        self._min_free = min_free_mb * 1e6  # MB: 10^6 bytes, as printed
        self._check_every = max(1, check_every)
        self._error: OutputError | None = None  # set: no more frames are encoded
        self._reported = False  # the error has been raised once (by write or close)
        self._closed = False
        requested = ensure_parent(path)
        self._check_space(requested)
        self.path, self.fourcc, self._writer = self._open(requested)
        self._queue: queue.Queue[np.ndarray | None] | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._queue = queue.Queue(maxsize=max(1, queue_size))
            self._thread = threading.Thread(target=self._worker, name="edge-bus-video", daemon=True)
            self._thread.start()
        # runs once: at close(), or at interpreter exit if the caller never closed (the thread holds self)
        self._finalizer = weakref.finalize(self, _shutdown, self._writer, self._queue, self._thread)

    # ------------------------------------------------------------------ opening
    def _open(self, requested: Path) -> tuple[Path, str, cv2.VideoWriter]:
        for fourcc, suffix in _CODECS:
            path = requested.with_suffix(suffix) if suffix else requested
            try:  # a plain open gives a precise reason (permission, read-only, full) that cv2 would hide
                with open(path, "wb"):
                    pass
            except OSError as exc:
                raise output_error(path, exc, "choose a writable --out folder or use --no-video") from None
            text = opencv_path(path)
            if text is None:  # OpenCV crashed the process on such a name
                path.unlink(missing_ok=True)
                raise OutputError(f"can't write {shown_path(path)}: its path is not UTF-8 text, which OpenCV's video "
                                  "writer can't take — choose another --out, or use --no-video")
            writer = cv2.VideoWriter(text, cv2.VideoWriter.fourcc(*fourcc), self.fps, self.video_size, True)
            if writer.isOpened():
                return path, fourcc, writer
            writer.release()
            path.unlink(missing_ok=True)
        raise OutputError(
            f"can't open a video writer for {requested} (this OpenCV has no mp4v/MJPG encoder) — use --no-video"
        )

    def _check_space(self, path: Path) -> None:
        free = free_bytes(path.parent)
        if free is not None and free < self._min_free:
            raise OutputError(f"disk full writing {path.name}: {free / 1e6:.0f} MB free, the video needs "
                              f"{self._min_free / 1e6:.0f} MB — free space or use --no-video")

    # ------------------------------------------------------------------ writing
    def write(self, bgr: np.ndarray) -> None:
        """Add one frame (BGR uint8, or anything :func:`edge_bus.imaging.to_bgr` accepts)."""
        if self._error is not None:
            self._reported = True
            raise self._error
        if self._closed:
            raise ValueError(f"write to a closed VideoSink ({self.path})")
        if self._queue is None:
            try:
                self._encode(bgr)
            except OutputError:
                self._reported = True
                raise
        else:
            self._queue.put(bgr)

    def _encode(self, img: np.ndarray) -> None:
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            img = to_bgr(img)
        if (img.shape[1], img.shape[0]) != self.size:
            img = letterbox(img, self.size)
        if self.video_size != self.size:
            img = cv2.copyMakeBorder(img, 0, self.video_size[1] - self.size[1], 0, self.video_size[0] - self.size[0],
                                     cv2.BORDER_CONSTANT, value=(0, 0, 0))
        self._writer.write(img)
        self.frames += 1
        if self.frames % self._check_every == 0:
            self._check_running()

    def _check_running(self) -> None:
        free = free_bytes(self.path.parent)
        if free is None:
            return
        if free < self._min_free:
            self._writer.release()  # writes the index while there is still a little room
            self._error = OutputError(f"disk full writing {self.path.name}: stopped with {free / 1e6:.0f} MB free "
                                      f"(it keeps {self._min_free / 1e6:.0f} MB) — free space or use --no-video")
        elif not self.path.exists():
            self._writer.release()
            self._error = OutputError(f"{self.path} disappeared while writing — check the --out folder")
        if self._error is not None:
            raise self._error

    def _worker(self) -> None:
        assert self._queue is not None
        while True:
            img = self._queue.get()
            if img is _STOP:
                return
            if self._error is None:
                try:
                    self._encode(img)
                except OutputError:
                    pass  # kept in self._error; the next write() or close() raises it
                except Exception as exc:  # a worker must not die silently
                    self._error = OutputError(f"writing {self.path} failed: {exc} — use --no-video")

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Finish the file (idempotent). Raises an :class:`OutputError` that ``write`` has not raised yet."""
        if self._closed:
            return
        self._closed = True
        self._finalizer()  # drains the worker, then releases the writer (exactly once)
        if self._error is not None:
            if not self._reported:
                self._reported = True
                raise self._error
            return
        if self.frames == 0:  # an mp4 without frames plays nowhere: leave no file rather than a broken one
            self.path.unlink(missing_ok=True)
            return
        if not self.path.exists() or self.path.stat().st_size == 0:
            raise OutputError(f"{self.path} was not written — check free space and the --out folder")
        if not playable(self.path):
            self.playable = False
            raise OutputError(f"{self.path} was written but does not play (its index is missing: the disk may have "
                              "filled between two free-space checks) — free space and run again")

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VideoSink({str(self.path)!r}, fourcc={self.fourcc!r}, frames={self.frames}, closed={self._closed})"


def letterbox(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``img`` scaled to fit ``size`` = (width, height) with its aspect kept, centred on black."""
    w, h = size
    scale = min(w / img.shape[1], h / img.shape[0])
    fw, fh = max(1, min(w, round(img.shape[1] * scale))), max(1, min(h, round(img.shape[0] * scale)))
    fitted = cv2.resize(img, (fw, fh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x, y = (w - fw) // 2, (h - fh) // 2
    return cv2.copyMakeBorder(fitted, y, h - fh - y, x, w - fw - x, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def playable(path: Path) -> bool:
    """Whether OpenCV opens ``path`` and decodes its first frame (an mp4 whose index was never
    written, e.g. on a full disk, does not open)."""
    text = opencv_path(path)
    if text is None:  # can't be asked: OpenCV crashed on such a name
        return True
    cap = cv2.VideoCapture(text)
    try:
        return bool(cap.isOpened() and cap.read()[0])
    finally:
        cap.release()


def _shutdown(
    writer: cv2.VideoWriter, q: queue.Queue[np.ndarray | None] | None, thread: threading.Thread | None
) -> None:
    """Let the worker finish the queued frames, then release the writer (which writes the mp4 index)."""
    if q is not None and thread is not None and thread.is_alive():
        q.put(_STOP)
        thread.join()
    writer.release()
