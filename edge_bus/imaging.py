"""Pixel-format conversion shared by the sources, the renderer and the video sink, and the way files
reach OpenCV."""

from __future__ import annotations

import os

import cv2
import numpy as np

__all__ = ["opencv_path", "read_image", "to_bgr"]


def opencv_path(path: str | os.PathLike[str]) -> str | None:
    """``path`` as the text OpenCV takes (it encodes it in UTF-8): the name's bytes read as UTF-8, whatever
    the locale decoded them as (``LC_ALL=C PYTHONUTF8=0`` turns ``é`` into surrogates); None when they are
    not UTF-8. OpenCV given such a name crashed the process (a segfault, no message, outputs unfinished)."""
    try:
        return os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        return None


def shown_path(path: str | os.PathLike[str]) -> str:
    """``path`` for a message: bytes that are not UTF-8 as ``\\xe9`` escapes, a newline as ``\\n``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace").replace("\n", "\\n")


def not_opencv_path(what: str, path: str | os.PathLike[str]) -> str:
    """The one-line reason a file can't go to OpenCV (:func:`opencv_path` None)."""
    return (f"cannot open {what} '{shown_path(path)}': its path is not UTF-8 text, which OpenCV can't take "
            "— rename it (or the folder it is in)")


#: OpenCV settings edge-bus sets itself (quiet logs) or checks at start (console.py)
_OWN_OPENCV_SETTINGS = frozenset({"OPENCV_LOG_LEVEL", "OPENCV_FFMPEG_LOGLEVEL", "OPENCV_FOR_THREADS_NUM"})


def opencv_settings_note() -> str:
    """`` (OpenCV settings in the environment: NAME=value, ...)`` when any are set, else "": a file OpenCV
    would not read may be refused by them (OPENCV_VIDEOIO_PRIORITY_FFMPEG=0 turns FFmpeg off, and a good AVI
    read "not a video"; OPENCV_IO_MAX_IMAGE_PIXELS=1 made a good PNG "corrupt")."""
    found = sorted(f"{k}={v}" for k, v in os.environ.items()
                   if k.startswith("OPENCV_") and k not in _OWN_OPENCV_SETTINGS)
    return f" (OpenCV settings in the environment, which may be why: {', '.join(found)})" if found else ""


_JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})


def cut_short_jpeg(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a JPEG file (by its suffix) whose last scan has no end-of-image marker after it
    (FF D9, which the compressed data can't hold; data a phone or a scanner appends after it is fine).
    libjpeg decodes a JPEG cut short with the rest grey, saying only "Premature end of JPEG file" on
    stderr: a malignant lesion cut two thirds in read normal."""
    if os.path.splitext(path)[1].lower() not in _JPEG_SUFFIXES or not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    scan = data.rfind(b"\xff\xda")  # the last start of scan (a progressive JPEG has several)
    return scan >= 0 and data.find(b"\xff\xd9", scan) < 0


def read_image(path: str | os.PathLike[str], flags: int) -> np.ndarray | None:
    """``cv2.imread(path, flags)``, or None when it can't be decoded: OpenCV's None and its errors (a PNG
    header claiming 50000x50000 pixels), and a JPEG cut short (:func:`cut_short_jpeg`). A name that is
    not UTF-8 is read by Python and decoded from memory."""
    if cut_short_jpeg(path):
        return None
    text = opencv_path(path)
    try:
        if text is not None:
            return cv2.imread(text, flags)
        return cv2.imdecode(np.fromfile(path, np.uint8), flags)
    except (cv2.error, OSError, ValueError):
        return None


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` as uint8: itself when it is, else scaled min–max to 0–255 (a 16-bit PNG holding 10- or
    12-bit data, read as 8 bits by OpenCV, came out nearly black and was called normal)."""
    if pixels.dtype == np.uint8:
        return pixels
    return cv2.normalize(pixels, np.empty(pixels.shape, np.uint8), 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)


def to_bgr(pixels: np.ndarray, *, copy: bool = False) -> np.ndarray:
    """Gray (HxW, HxWx1), BGR or BGRA pixels → contiguous BGR uint8 HxWx3.

    Other dtypes than uint8 are scaled min–max to 0–255. ``copy``: never return ``pixels`` itself
    (the renderer draws on the result; a frame's own pixels must stay as they were)."""
    img = to_uint8(pixels)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.ndim == 3 and img.shape[2] == 3:
        if copy and img is pixels:
            return img.copy()
        return np.ascontiguousarray(img)
    raise ValueError(f"an image of shape {list(pixels.shape)} is not gray, BGR or BGRA")
