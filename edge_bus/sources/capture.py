"""Live capture devices (V4L2 on Linux: a USB frame grabber or the scanner's video out).

Frames are BGR uint8 HxWx3; ``t_source`` is seconds since the device was opened. ``live=True``:
frames arrive in real time whether or not the consumer keeps up. The driver queue is kept to one
buffer (``CAP_PROP_BUFFERSIZE=1``) so a slow consumer sees the newest frame, not a backlog; the
pipeline applies the drop policy.

The pixel format: OpenCV's V4L2 backend picks uncompressed YUYV before MJPG when a device offers
both, and a USB 2 frame grabber gives 1920×1080 in YUYV at only 5–10 fps (the bus can't carry
more uncompressed), in MJPG at 30–60. ``pixel_format`` (``--capture-format MJPG``) asks for one;
``info.pixel_format`` says what the device delivers, and a device slower than the fps asked for is
logged with that hint.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import cv2

from edge_bus.checks import is_pixel_format
from edge_bus.errors import SourceError
from edge_bus.imaging import to_bgr
from edge_bus.sources._common import make_frame, natural_key, open_or_none, quiet_opencv
from edge_bus.sources.base import FrameSource, SourceInfo
from edge_bus.types import Frame

__all__ = ["CaptureLike", "CaptureSource", "device_path", "fourcc_text", "list_capture_devices"]

log = logging.getLogger(__name__)

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


def fourcc_text(code: float) -> str:
    """A pixel format code as ``CAP_PROP_FOURCC`` gives it (a float) → its characters, e.g. ``MJPG``;
    "" when the backend does not say."""
    n = int(code) if code == code and code > 0 else 0  # NaN and negatives: unknown
    text = "".join(chr((n >> (8 * i)) & 0xFF) for i in range(4)).strip()
    return text if n and text.isprintable() else ""


def _check_format(pixel_format: str) -> None:
    if not is_pixel_format(pixel_format):
        raise SourceError(f"capture format must be a four-character pixel format such as MJPG, YUYV or NV12, "
                          f"got {pixel_format!r}")


def _open_capture(target: str | int) -> cv2.VideoCapture:
    """Open the device with V4L2 on Linux, OpenCV's default backend elsewhere."""
    with quiet_opencv():
        if _LINUX:
            return cv2.VideoCapture(target, cv2.CAP_V4L2)
        return cv2.VideoCapture(target)


class CaptureSource(FrameSource):
    """Read a capture device. ``size`` (width, height) and ``fps`` are requests: the device may
    pick the nearest mode it supports, and ``info`` reports what it actually delivers.
    ``pixel_format``: the V4L2 pixel format to ask for (``MJPG``, ``YUYV``, ...); a device that
    does not deliver it is a :class:`SourceError`.

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
        pixel_format: str | None = None,
        max_failures: int = 3,
        opener: Callable[[str | int], CaptureLike] | None = None,
    ) -> None:
        target = device_path(device) if opener is None else str(device)
        self._name = str(target)
        if size is not None and (len(size) != 2 or min(size) <= 0):
            raise SourceError(f"capture size must be two positive numbers WIDTHxHEIGHT, got {size} — e.g. 640x480")
        if fps is not None and fps <= 0:
            raise SourceError(f"capture fps must be > 0, got {fps} — e.g. 30")
        if pixel_format:
            _check_format(pixel_format)
        if isinstance(target, str) and opener is None:
            self._check_node(target)
        cap = open_or_none(lambda: (opener or _open_capture)(target))
        if cap is None:
            raise SourceError(
                f"cannot open capture device {self._name} — is another program using it? close it and retry"
            )
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if pixel_format:  # before the size: V4L2 sets the format and the size in one request
            cap.set(cv2.CAP_PROP_FOURCC, float(cv2.VideoWriter.fourcc(*pixel_format)))
        if size is not None:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(size[0]))
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(size[1]))
        if fps is not None:
            cap.set(cv2.CAP_PROP_FPS, float(fps))
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        actual_fps = float(cap.get(cv2.CAP_PROP_FPS))
        if width <= 0 or height <= 0:
            width, height = size if size is not None else (0, 0)
        delivered = fourcc_text(cap.get(cv2.CAP_PROP_FOURCC))
        if pixel_format and delivered and delivered != pixel_format.strip():
            cap.release()
            case = (f"; formats are case-sensitive: {pixel_format.upper()}"
                    if pixel_format != pixel_format.upper() else "")
            raise SourceError(f"capture device {self._name} does not deliver {pixel_format} (it gives "
                              f"{delivered}{case}) — `v4l2-ctl --list-formats-ext -d {self._name}` lists what it can; "
                              "drop --capture-format for its default")
        if fps and 0 < actual_fps < 0.9 * fps:
            hint = (" — USB 2 grabbers give high resolutions at full frame rate only in MJPG: --capture-format MJPG"
                    if delivered != "MJPG" else " — the device has no faster mode at this size; ask for a smaller one")
            log.warning("capture device %s delivers %g fps at %dx%d%s, not the %g asked%s", self._name, actual_fps,
                        width, height, f" in {delivered}" if delivered else "", fps, hint)
        self._cap: CaptureLike | None = cap
        self._max_failures = max(1, max_failures)
        self._index = 0
        self._t0 = time.perf_counter()
        self._info = SourceInfo(
            kind="capture", name=self._name, width=width, height=height,
            fps=actual_fps if actual_fps > 0 else float(fps or 0.0), frame_count=None, live=True,
            stamped_before_decode=True, pixel_format=delivered,
        )

    def _check_node(self, node: str) -> None:
        if not Path(node).exists():
            found = list_capture_devices()
            have = f" (found: {', '.join(found)})" if found else ""
            raise SourceError(f"no capture device {node}{have} — is it plugged in? {_LIST_HINT}")
        if Path(node).is_file():  # "is another program using it?" misled for a file given as capture:
            raise SourceError(f"{node} is a file, not a capture device — give it as --source {node}, or as "
                              f"replay:{node} to run it through the capture path")
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
