"""The capture device's in-package fake: a frame grabber that replays a video file.

:class:`ReplayCapture` has the part of ``cv2.VideoCapture``'s interface that
:class:`~edge_bus.sources.capture.CaptureSource` uses (``isOpened``, ``set``, ``get``, ``grab``,
``retrieve``, ``release``), so ``--source replay:clip.mp4`` runs the capture code path (1-frame
buffer, grab timestamps, the live drop policy, a device that stops delivering) with no grabber
plugged in, as pyserial's ``loop://`` runs a serial link with no port. Frame ``i`` is "acquired" at
``i / fps`` after opening, on the clock, whether or not anyone grabs it: ``grab()`` waits for the
next acquisition and hands over the newest one, and frames not grabbed in time are gone.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from edge_bus.errors import SourceError
from edge_bus.imaging import opencv_settings_note
from edge_bus.sources._common import check_readable_file, open_or_none, opencv_file, plausible_fps, quiet_opencv
from edge_bus.sources.capture import fourcc_text

__all__ = ["ReplayCapture"]


class ReplayCapture:
    """Replays ``path`` as a live device at its own fps (``fps`` overrides it), looping at the end.

    ``stop_after``: after this many frames handed over, every grab fails (an unplugged cable).
    A requested ``CAP_PROP_FRAME_WIDTH`` / ``HEIGHT`` resizes the frames, as a device's mode would.
    ``formats``: the pixel formats it offers (``CAP_PROP_FOURCC``), each with the highest fps it gives
    in it (None: any), the first being the one it starts in; by default YUYV and MJPG, unlimited.
    ``{"YUYV": 5.0, "MJPG": 30.0}`` is a USB 2 grabber at 1920×1080.
    """

    def __init__(self, path: str | Path, *, fps: float | None = None, stop_after: int | None = None,
                 formats: Mapping[str, float | None] | None = None) -> None:
        self.path = Path(path)
        check_readable_file(self.path, "video", "give a video file to replay as a capture device")
        opencv_file(self.path, "video")  # before open_or_none, which takes any failure for "can't read it"
        file = open_or_none(lambda: _open_file(self.path))
        if file is None:
            raise SourceError(f"cannot replay '{self.path}' as a capture device: OpenCV cannot read it as video"
                              f"{opencv_settings_note()}")
        self._file: cv2.VideoCapture | None = file
        file_fps = float(file.get(cv2.CAP_PROP_FPS))
        self._fps = fps or plausible_fps(file_fps) or 30.0
        self._size = (int(file.get(cv2.CAP_PROP_FRAME_WIDTH)), int(file.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self._requested: dict[int, float] = {}
        self._formats = dict(formats) if formats else {"YUYV": None, "MJPG": None}
        self._format = next(iter(self._formats))
        self._stop_after = stop_after
        self._t0 = time.perf_counter()
        self._next = 0  # index of the next acquisition not yet handed over
        self._position = 0  # frames read from the file so far (it loops)
        self._grabbed: np.ndarray | None = None
        self.handed_over = 0
        self.missed = 0  # acquisitions nobody grabbed in time (a grabber overwrites its one buffer)

    def isOpened(self) -> bool:  # noqa: N802 - cv2.VideoCapture's name
        return self._file is not None

    def set(self, prop: int, value: float) -> bool:
        if prop == cv2.CAP_PROP_FOURCC:  # a format it does not offer is refused, as V4L2 does
            text = fourcc_text(value)
            if text not in self._formats:
                return False
            self._format = text
            return True
        self._requested[prop] = float(value)
        if prop == cv2.CAP_PROP_FPS and value > 0:
            self._fps = float(value)
        return True

    @property
    def fps(self) -> float:
        """The rate it delivers at: the one asked for, or less where its pixel format can't give it."""
        limit = self._formats[self._format]
        return min(self._fps, limit) if limit else self._fps

    def get(self, prop: int) -> float:
        if prop == cv2.CAP_PROP_FPS:
            return self.fps
        if prop == cv2.CAP_PROP_FOURCC:
            return float(cv2.VideoWriter.fourcc(*self._format.ljust(4)))
        if prop == cv2.CAP_PROP_FRAME_WIDTH:
            return self._requested.get(prop, float(self._size[0]))
        if prop == cv2.CAP_PROP_FRAME_HEIGHT:
            return self._requested.get(prop, float(self._size[1]))
        return self._requested.get(prop, 0.0)

    def grab(self) -> bool:
        """Wait for the next acquisition and take the newest frame; False once stopped or released."""
        if self._file is None or (self._stop_after is not None and self.handed_over >= self._stop_after):
            return False
        now = time.perf_counter() - self._t0
        fps = self.fps
        due = int(now * fps)  # the newest acquisition so far
        if due < self._next:  # none since the last grab: wait for the next one
            time.sleep(max(0.0, self._next / fps - now))
            due = self._next
        self.missed += due - self._next
        while self._position <= due:  # skipped acquisitions are read past (still decoded, as a device would)
            ok, img = self._file.read()
            if not ok:  # the end of the file: replay from the start
                ok, img = self._rewind()
                if not ok:
                    return False
            self._position += 1
            self._grabbed = img
        self._next = due + 1
        self.handed_over += 1
        return True

    def _rewind(self) -> tuple[bool, np.ndarray]:
        """The file's first frame again. OpenCV can't seek back in a one-frame file, so it is opened
        anew when seeking fails; a file with no frame at all is a SourceError (it read as a capture
        device that "stopped delivering frames after 0 frames — check its cable")."""
        assert self._file is not None
        self._file.set(cv2.CAP_PROP_POS_FRAMES, 0)
        ok, img = self._file.read()
        if not ok:
            self._file.release()
            self._file = open_or_none(lambda: _open_file(self.path))
            if self._file is not None:
                ok, img = self._file.read()
        if not ok and self._position == 0:
            raise SourceError(f"cannot replay '{self.path}': it holds no frame that can be decoded — give another "
                              "video file")
        return ok, np.asarray(img)

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        img = self._grabbed
        if img is None:
            return False, None
        w = int(self._requested.get(cv2.CAP_PROP_FRAME_WIDTH, 0))
        h = int(self._requested.get(cv2.CAP_PROP_FRAME_HEIGHT, 0))
        if w > 0 and h > 0 and (w, h) != (img.shape[1], img.shape[0]):
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        return True, img

    def release(self) -> None:
        if self._file is not None:
            self._file.release()
            self._file = None


def _open_file(path: Path) -> cv2.VideoCapture:
    with quiet_opencv():
        return cv2.VideoCapture(opencv_file(path, "video"))
