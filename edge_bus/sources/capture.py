"""Live capture devices (V4L2 on Linux: a USB frame grabber or the scanner's video out).

Frames are BGR uint8 HxWx3; ``t_source`` is seconds since the device was opened. ``live=True``:
frames arrive in real time whether or not the consumer keeps up. The driver queue is kept to one
buffer (``CAP_PROP_BUFFERSIZE=1``) so a slow consumer sees the newest frame, not a backlog; the
pipeline applies the drop policy.
"""

from __future__ import annotations

import glob
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import cv2

from edge_bus.errors import SourceError
from edge_bus.imaging import to_bgr
from edge_bus.sources._common import make_frame, natural_key, open_or_none, quiet_opencv
from edge_bus.sources.base import FrameSource, SourceInfo
from edge_bus.types import Frame

__all__ = ["CaptureLike", "CaptureSource", "device_path", "list_capture_devices"]

_LINUX = sys.platform.startswith("linux")
_LIST_HINT = "`v4l2-ctl --list-devices` lists them"


def list_capture_devices() -> list[str]:
    """The V4L2 device nodes present (``/dev/video0``, ...), naturally sorted; empty elsewhere."""
    return sorted(glob.glob("/dev/video*"), key=natural_key)


def device_path(device: str | int) -> str | int:
    """``0`` / ``"0"`` → ``/dev/video0`` on Linux (the index itself elsewhere); a path stays a path."""
    text = str(device).strip()
    if text.isdigit():
        return f"/dev/video{int(text)}" if _LINUX else int(text)
    return text


class CaptureLike(Protocol):
    """The part of ``cv2.VideoCapture`` a :class:`CaptureSource` uses (a fake implements just this)."""

    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's names
    def set(self, prop: int, value: float) -> bool: ...
    def get(self, prop: int) -> float: ...
    def grab(self) -> bool: ...
    def retrieve(self) -> tuple[bool, Any]: ...
    def release(self) -> None: ...


def _open_capture(target: str | int) -> cv2.VideoCapture:
    """Open the device with V4L2 on Linux, OpenCV's default backend elsewhere."""
    with quiet_opencv():
        if _LINUX:
            return cv2.VideoCapture(target, cv2.CAP_V4L2)
        return cv2.VideoCapture(target)


class CaptureSource(FrameSource):
    """Read a capture device. ``size`` (width, height) and ``fps`` are requests: the device may
    pick the nearest mode it supports, and ``info`` reports what it actually delivers.

    ``max_failures``: consecutive failed reads before the device counts as lost. ``opener``: what
    opens ``device`` instead of OpenCV (a :class:`~edge_bus.sources.replay_capture.ReplayCapture`,
    the in-package fake); then ``device`` is only the name shown.
    """

    def __init__(
        self,
        device: str | int,
        *,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        max_failures: int = 3,
        opener: Callable[[str | int], CaptureLike] | None = None,
    ) -> None:
        target = device_path(device) if opener is None else str(device)
        self._name = str(target)
        if size is not None and (len(size) != 2 or min(size) <= 0):
            raise SourceError(f"capture size must be two positive numbers WIDTHxHEIGHT, got {size} — e.g. 640x480")
        if fps is not None and fps <= 0:
            raise SourceError(f"capture fps must be > 0, got {fps} — e.g. 30")
        if isinstance(target, str) and opener is None:
            self._check_node(target)
        cap = open_or_none(lambda: (opener or _open_capture)(target))
        if cap is None:
            raise SourceError(
                f"cannot open capture device {self._name} — is another program using it? close it and retry"
            )
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if size is not None:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(size[0]))
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(size[1]))
        if fps is not None:
            cap.set(cv2.CAP_PROP_FPS, float(fps))
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        actual_fps = float(cap.get(cv2.CAP_PROP_FPS))
        if width <= 0 or height <= 0:
            width, height = size if size is not None else (0, 0)
        self._cap: CaptureLike | None = cap
        self._max_failures = max(1, max_failures)
        self._index = 0
        self._t0 = time.perf_counter()
        self._info = SourceInfo(
            kind="capture", name=self._name, width=width, height=height,
            fps=actual_fps if actual_fps > 0 else float(fps or 0.0), frame_count=None, live=True,
            stamped_before_decode=True,
        )

    def _check_node(self, node: str) -> None:
        if not Path(node).exists():
            found = list_capture_devices()
            have = f" (found: {', '.join(found)})" if found else ""
            raise SourceError(f"no capture device {node}{have} — is it plugged in? {_LIST_HINT}")
        if not os.access(node, os.R_OK | os.W_OK):
            raise SourceError(
                f"capture device {node}: permission denied — add yourself to the 'video' group "
                "(sudo usermod -aG video $USER) and log in again"
            )

    @property
    def info(self) -> SourceInfo:
        return self._info

    def __next__(self) -> Frame:
        cap = self._cap
        if cap is None:
            raise StopIteration
        for _ in range(self._max_failures):
            img = None
            try:
                ok = cap.grab()  # blocks until the device hands over a frame: that is its capture time
                t_grab = time.perf_counter()
                if ok:
                    ok, img = cap.retrieve()  # decode (MJPEG, YUYV → BGR): part of the frame's latency
            except cv2.error:
                ok = False
            if ok and img is not None:
                pixels = to_bgr(img)
                frame = make_frame(self._index, pixels, t_grab - self._t0, t_capture=t_grab,
                                   decode_ms=(time.perf_counter() - t_grab) * 1e3)
                self._index += 1
                return frame
        self.close()
        raise SourceError(
            f"capture device {self._name} stopped delivering frames after {self._index} frames "
            "— check its cable and the scanner's video output, then start again"
        )

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
