"""The one place a ``--source`` string becomes a :class:`FrameSource`.

Auto-detection, in order:

* ``demo`` → the bundled demo clip;
* an integer (``0``) or ``/dev/video*`` → capture device;
* a folder → image folder; an image file (.png, .jpg, ...) → a one-image folder;
* ``*.dcm`` / ``*.dicom``, or any file with the DICOM magic → DICOM;
* any other file → video (whatever OpenCV's FFmpeg reads).

A ``kind:`` prefix forces the kind: ``video:``, ``folder:``, ``dicom:``, ``capture:``, ``demo:``
(``demo:SEED`` picks the speckle seed). ``replay:clip.mp4`` runs a video file through the capture
code path, as a live device at the file's fps, looping like a device that never ends (the capture
device's in-package fake: rehearse a grabber setup and its drops without one). A path that exists as typed is never
split at ``:``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from edge_bus.errors import SourceError
from edge_bus.sources.base import FrameSource
from edge_bus.sources.capture import CaptureSource
from edge_bus.sources.demo import DemoSource
from edge_bus.sources.dicom import DICOM_SUFFIXES, DicomSource, is_dicom_file
from edge_bus.sources.folder import IMAGE_SUFFIXES, FolderSource
from edge_bus.sources.replay_capture import ReplayCapture
from edge_bus.sources.video import VideoSource
from edge_bus.sources.wrappers import CheckedSource, LimitedSource, LoopingSource, check_max_frames

__all__ = ["SOURCE_KINDS", "detect_kind", "open_source", "wrap_source"]

SOURCE_KINDS: tuple[str, ...] = ("video", "folder", "dicom", "capture", "demo", "replay")
_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9_-]+):(.*)$")  # 2+ letters: "C:\x" stays a Windows path
_EXAMPLES = {"video": "clip.mp4", "folder": "images/", "dicom": "cine.dcm", "capture": "/dev/video0",
             "replay": "clip.mp4"}
_SPEC_HINT = "pass a video file, an image folder, a .dcm file, a device (0 or /dev/video0) or 'demo'"


def _split(spec: str) -> tuple[str | None, str]:
    if Path(spec).exists():
        return None, spec
    match = _PREFIX.match(spec)
    if match is None:
        return None, spec
    kind, rest = match.group(1).lower(), match.group(2)
    if kind not in SOURCE_KINDS:
        raise SourceError(f"unknown source kind '{kind}:' in '{spec}' — valid kinds: {', '.join(SOURCE_KINDS)}")
    # the shell expands ~ only at the start of a word: folder:~/scans reached here as it was typed
    return kind, (os.path.expanduser(rest) if rest.startswith("~") else rest)


def detect_kind(target: str) -> str:
    """The kind auto-detection picks for ``target`` (no prefix); raises if the path doesn't exist."""
    if target.lower() == "demo":
        return "demo"
    if target.isdigit() or target.startswith("/dev/video"):
        return "capture"
    path = Path(target)
    if not path.exists():
        raise SourceError(f"cannot open source '{target}': no such file or folder — check the path, or {_SPEC_HINT}")
    if path.is_dir():
        return "folder"
    _refuse_special(target)  # before is_dicom_file reads it: opening a pipe waits for a writer
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "folder"
    if suffix in DICOM_SUFFIXES or is_dicom_file(path):
        return "dicom"
    return "video"


def _refuse_special(target: str) -> None:
    """A named pipe, socket or device node is not a file: opening a pipe blocks until something writes
    to it, where no signal reaches the run."""
    if not Path(target).is_file():
        raise SourceError(f"cannot open source '{target}': not a regular file (a pipe, socket or device) — "
                          "pass a video file, a folder or a .dcm file; a capture device as 0 or /dev/videoN")


def _opener(
    kind: str, target: str, capture_size: tuple[int, int] | None, capture_fps: float | None,
    capture_format: str | None = None,
) -> Callable[[], FrameSource]:
    if kind == "demo":
        seed_text = "" if target.lower() == "demo" else target
        if seed_text and not seed_text.isdigit():
            raise SourceError(f"demo takes an optional integer seed (demo:3), got 'demo:{seed_text}' — e.g. demo:0")
        seed = int(seed_text or 0)
        return lambda: DemoSource(seed=seed)
    if not target:
        raise SourceError(f"'{kind}:' needs a path after the colon — e.g. {kind}:{_EXAMPLES[kind]}")
    if kind == "capture":
        return lambda: CaptureSource(target, size=capture_size, fps=capture_fps, pixel_format=capture_format)
    if kind == "replay":  # the capture path, fed by the in-package fake grabber
        if Path(target).exists() and not Path(target).is_dir():
            _refuse_special(target)  # a pipe read "file is empty", or blocked
        return lambda: CaptureSource(f"replay:{target}", size=capture_size, fps=capture_fps,
                                     pixel_format=capture_format, opener=lambda _name: ReplayCapture(target))
    if not Path(target).exists():
        raise SourceError(f"cannot open {kind} source '{target}': no such file or folder — check the path")
    if not Path(target).is_dir():
        _refuse_special(target)
    openers: dict[str, Callable[[], FrameSource]] = {
        "video": lambda: VideoSource(target),
        "folder": lambda: FolderSource(target),
        "dicom": lambda: DicomSource(target),
    }
    return openers[kind]



def open_source(
    spec: str | os.PathLike[str],
    *,
    loop: bool = False,
    max_frames: int | None = None,
    capture_size: tuple[int, int] | None = None,
    capture_fps: float | None = None,
    capture_format: str | None = None,
) -> FrameSource:
    """Open the source ``spec`` names (see the module doc), wrapped for ``loop`` / ``max_frames``.

    ``capture_size`` (width, height), ``capture_fps`` and ``capture_format`` (a V4L2 pixel format,
    e.g. ``MJPG``) are requests to a capture device and ignored by other kinds. Raises
    :class:`SourceError` with a one-line message on any problem.
    """
    spec = os.fspath(spec).strip() if isinstance(spec, str | os.PathLike) else spec
    if not isinstance(spec, str):
        raise SourceError(f"--source must be a string or a path, got {type(spec).__name__} — {_SPEC_HINT}")
    if not spec:
        raise SourceError(f"--source is empty — {_SPEC_HINT}")
    if max_frames is not None:
        max_frames = check_max_frames(max_frames)  # before a capture device is opened
    kind, target = _split(spec)
    if kind is None:
        kind = detect_kind(target)
    open_one = _opener(kind, target, capture_size, capture_fps, capture_format)
    source: FrameSource = open_one()
    if loop:
        source = LoopingSource(open_one, first=source)
    if max_frames is not None:
        source = LimitedSource(source, max_frames)
    return source


def wrap_source(source: FrameSource, *, loop: bool = False, max_frames: int | None = None) -> FrameSource:
    """A source of your own (any :class:`FrameSource`), with ``max_frames`` applied as for
    :func:`open_source`. ``loop`` needs a source edge-bus can open again, so it is refused here."""
    if not isinstance(source, FrameSource):
        raise SourceError(f"source must be a FrameSource (edge_bus.sources.FrameSource), got {type(source).__name__}")
    if loop:
        raise SourceError("loop needs a source edge-bus opens itself (a --source string); "
                          "loop inside your own FrameSource instead")
    if max_frames is not None:
        max_frames = check_max_frames(max_frames)
    checked = CheckedSource(source)
    return LimitedSource(checked, max_frames) if max_frames is not None else checked
