"""Frame sources: video files, image folders, capture devices, DICOM, and the bundled demo clip.

Choose one from a ``--source`` string with :func:`open_source`; every source is a
:class:`FrameSource` (an iterator of :class:`~edge_bus.types.Frame` whose ``pixels`` are BGR
uint8 HxWx3) that raises :class:`~edge_bus.errors.SourceError` with a one-line message.

A source of your own (a frame grabber's SDK, a simulation) subclasses :class:`FrameSource`,
builds its frames with :func:`make_frame` (which stamps the capture times) and goes to
``run_stream(config, source=...)``.
"""

from __future__ import annotations

from edge_bus.sources._common import make_frame
from edge_bus.sources.base import FrameSource, SourceInfo
from edge_bus.sources.capture import CaptureSource, list_capture_devices
from edge_bus.sources.demo import DemoSource, DemoTruth
from edge_bus.sources.dicom import DicomSource
from edge_bus.sources.folder import FolderSource
from edge_bus.sources.registry import SOURCE_KINDS, detect_kind, open_source, wrap_source
from edge_bus.sources.video import VideoSource
from edge_bus.sources.wrappers import LimitedSource, LoopingSource, unwrap

__all__ = [
    "SOURCE_KINDS",
    "CaptureSource",
    "DemoSource",
    "DemoTruth",
    "DicomSource",
    "FolderSource",
    "FrameSource",
    "LimitedSource",
    "LoopingSource",
    "SourceInfo",
    "VideoSource",
    "detect_kind",
    "list_capture_devices",
    "make_frame",
    "open_source",
    "unwrap",
    "wrap_source",
]
