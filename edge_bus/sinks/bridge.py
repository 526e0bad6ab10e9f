"""The controller board as a sink: a RESULT back to the board for every frame it acquired."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge_bus.types import Frame, Prediction

if TYPE_CHECKING:
    from firmware_bridge import HostBridge

__all__ = ["BridgeResultSink"]

_LABEL_CODES = {"normal": 0, "benign": 1, "malignant": 2}


class BridgeResultSink:
    """RESULT per frame (PROTOCOL.md): label 0/1/2, malignancy (0 without a lesion), lesion area in mm²
    (from the frame's pixel spacing, else the probe depth over the frame height), bbox as x0, y0, x1, y1.
    Frames without hardware timestamps (the link was down) have no device counter and send nothing, and
    one board frame gets one RESULT: a second video frame paired with the same FRAME_META (a source
    faster than the board) sends none, which would count twice in the board's run of malignant results."""

    def __init__(self, bridge: HostBridge) -> None:
        self.bridge = bridge
        self._last_device_frame: int | None = None
        self.repeats = 0  # frames not answered because their board frame already was

    def __call__(self, frame: Frame, pred: Prediction) -> None:
        if frame.hw is None:
            return
        if frame.hw.device_frame == self._last_device_frame:
            self.repeats += 1
            return
        self._last_device_frame = frame.hw.device_frame
        h, w = frame.pixels.shape[:2]
        if frame.pixel_spacing_mm is not None:
            px_mm2 = frame.pixel_spacing_mm[0] * frame.pixel_spacing_mm[1]
        else:
            px_mm2 = (frame.hw.depth_mm / h) ** 2 if frame.hw.depth_mm > 0 else 0.0
        area = pred.mask_area * h * w * px_mm2
        box = None if pred.bbox is None else (pred.bbox[0], pred.bbox[1], pred.bbox[0] + pred.bbox[2],
                                              pred.bbox[1] + pred.bbox[3])
        self.bridge.send_result(frame.hw.device_frame, _LABEL_CODES.get(pred.label, 0),
                                pred.malignancy if pred.lesion else 0.0, area, box)
