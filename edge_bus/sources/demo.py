"""The bundled demo clip: a probe sweep synthesised from a few BUS-BRA images, with truth masks.

Works on a fresh install (the images ship in ``edge_bus/assets/demo``, see its CITATION.md).
The clip is 9 s at 30 fps (270 frames) of 320x320 BGR uint8 frames: the virtual probe dwells on
a benign lesion, slides over lesion-free tissue, dwells on two malignant lesions in turn, with
tremor, slight zoom and rotation, gain drift and speckle noise. Everything is a pure function of
the frame index and ``seed``: the same frames every run, in any order (``render(i)``).

Truth per frame: :meth:`DemoSource.truth` gives the lesion mask (bool HxW, the bundled masks
through the same geometric transform as the image) and a label — ``"normal"`` when no lesion is
in view, else the pathology of the lesion in view (``"malignant"`` wins if two were). A lesion
sliver smaller than :data:`MIN_VISIBLE_PX` pixels at the frame edge counts as not in view and is
left out of the mask.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from edge_bus.sources._common import make_frame
from edge_bus.sources.base import FrameSource, SourceInfo
from edge_bus.sources.demo_scene import ProbePose, Scene, clip_duration_s, load_scene, probe_path
from edge_bus.types import Frame

__all__ = ["DEMO_FPS", "DEMO_SIZE", "MIN_VISIBLE_PX", "DemoSource", "DemoTruth"]

DEMO_FPS = 30.0
DEMO_SIZE = 320
MIN_VISIBLE_PX = 30
SPECKLE = 0.12  # multiplicative noise amplitude (std)
SPECKLE_GRAIN_PX = 0.8  # blur sigma: speckle is a little larger than one pixel


@dataclass(frozen=True)
class DemoTruth:
    """What is really in demo frame ``index``: ``mask`` (bool HxW), ``label`` (normal / benign /
    malignant) and the BUS-BRA ids of the lesions in view."""

    index: int
    label: str
    mask: np.ndarray
    lesion_ids: tuple[str, ...]

    @property
    def lesion(self) -> bool:
        return bool(self.lesion_ids)


def _affine(pose: ProbePose, size: int) -> np.ndarray:
    """Canvas → frame: rotate and scale about the window centre, then centre it in the frame."""
    m = cv2.getRotationMatrix2D((pose.cx, pose.cy), pose.angle_deg, size / pose.side)
    m[0, 2] += size / 2.0 - pose.cx
    m[1, 2] += size / 2.0 - pose.cy
    return m


class DemoSource(FrameSource):
    """The demo clip as a frame source (``kind="demo"``); ``seed`` changes only the speckle."""

    def __init__(self, *, seed: int = 0) -> None:
        self._scene: Scene = load_scene()
        self._seed = int(seed)
        n = round(clip_duration_s(self._scene) * DEMO_FPS)
        self._poses = probe_path(self._scene, n, DEMO_FPS)
        self._index = 0
        self._closed = False
        self._info = SourceInfo(
            kind="demo", name="demo (BUS-BRA " + ", ".join(self._scene.ids) + ")",
            width=DEMO_SIZE, height=DEMO_SIZE, fps=DEMO_FPS, frame_count=n,
        )
        rows = (np.arange(DEMO_SIZE, dtype=np.float32) + 0.5) / DEMO_SIZE - 0.5
        self._depth = rows[:, None]

    @property
    def info(self) -> SourceInfo:
        return self._info

    def __len__(self) -> int:
        return len(self._poses)

    def _check(self, index: int) -> ProbePose:
        if not 0 <= index < len(self._poses):
            raise IndexError(f"demo frame {index} out of range 0..{len(self._poses) - 1}")
        return self._poses[index]

    def render(self, index: int) -> np.ndarray:
        """Pixels of frame ``index`` (BGR uint8 320x320), identical on every call."""
        pose = self._check(index)
        view = cv2.warpAffine(
            self._scene.canvas, _affine(pose, DEMO_SIZE), (DEMO_SIZE, DEMO_SIZE),
            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101,
        )
        rng = np.random.default_rng([self._seed, index])
        white = rng.standard_normal((DEMO_SIZE, DEMO_SIZE), dtype=np.float32)
        noise = cv2.GaussianBlur(white, (0, 0), SPECKLE_GRAIN_PX)
        noise *= np.float32(SPECKLE / max(float(noise.std()), 1e-6))
        gain = np.float32(pose.gain) * (1.0 + np.float32(pose.tgc_tilt) * self._depth)
        pixels = view * gain * (1.0 + noise)
        gray = np.clip(pixels + 0.5, 0, 255).astype(np.uint8)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)

    def truth(self, index: int) -> DemoTruth:
        """The truth mask and label of frame ``index``."""
        pose = self._check(index)
        ids = cv2.warpAffine(
            self._scene.lesion_map, _affine(pose, DEMO_SIZE), (DEMO_SIZE, DEMO_SIZE),
            flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101,
        )
        counts = np.bincount(ids.ravel(), minlength=len(self._scene.ids) + 1)
        visible = [k for k in range(1, len(counts)) if counts[k] >= MIN_VISIBLE_PX]
        mask = np.isin(ids, visible) if visible else np.zeros(ids.shape, dtype=bool)
        labels = {self._scene.labels[k - 1] for k in visible}
        label = "malignant" if "malignant" in labels else "benign" if "benign" in labels else "normal"
        return DemoTruth(index, label, mask, tuple(self._scene.ids[k - 1] for k in visible))

    def truth_mask(self, index: int) -> np.ndarray:
        """Bool HxW lesion mask of frame ``index`` (all False when no lesion is in view)."""
        return self.truth(index).mask

    def truth_label(self, index: int) -> str:
        """``normal``, ``benign`` or ``malignant`` for frame ``index``."""
        return self.truth(index).label

    def truths(self) -> Iterator[DemoTruth]:
        """Truth for every frame, in order."""
        return (self.truth(i) for i in range(len(self._poses)))

    def __next__(self) -> Frame:
        i = self._index
        if self._closed or i >= len(self._poses):
            raise StopIteration
        pixels = self.render(i)
        self._index += 1
        return make_frame(i, pixels, i / DEMO_FPS)

    def close(self) -> None:
        self._closed = True
