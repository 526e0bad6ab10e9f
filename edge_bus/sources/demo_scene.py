"""The demo clip's scene: a panorama stitched from the bundled BUS-BRA images, and the path a
virtual probe takes over it. Pure functions of the bundled assets: no randomness here.

The images are laid side by side in the manifest's order, each lesion-free side padded by a
mirror image of its own lesion-free tissue (breast tissue is layered roughly horizontally, so a
horizontal mirror continues it) and cross-faded into its neighbour. The probe dwells on each
lesion, slides to the lesion-free tissue between two lesions (no lesion in view), dwells there,
and slides on, with a little tremor, zoom, rotation and gain drift on top.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import cv2
import numpy as np

from edge_bus.errors import SourceError

__all__ = ["DemoImage", "ProbePose", "Scene", "clip_duration_s", "load_demo_images", "load_scene", "probe_path"]

MANIFEST = "manifest.json"
ASSET_HINT = "reinstall edge-bus, or run scripts/make_demo_assets.py in a checkout"
PAD = 40  # mirrored lesion-free tissue added on each side that faces a neighbour (px)
OVERLAP = 64  # cross-fade between neighbours (px)
MARGIN = 8  # keep the mirror this far from a lesion (px)
LESION_DWELL_S = (1.3, 1.3, 1.4)
GAP_DWELL_S = 0.7
MOVE_S = 0.9
ZOOM = 0.04  # relative zoom swing
ROTATION_DEG = 2.0
V_WOBBLE = 2.0  # px


@dataclass(frozen=True)
class DemoImage:
    """One bundled image: gray uint8, its lesion mask (bool), label and BUS-BRA id."""

    id: str
    label: str
    gray: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class Scene:
    """The panorama (float32 gray), its lesion map (0 = none, k = lesion of image k-1) and where
    the probe stops: each lesion's centre column and the middle of each lesion-free gap."""

    canvas: np.ndarray
    lesion_map: np.ndarray
    ids: tuple[str, ...]
    labels: tuple[str, ...]
    lesion_x: tuple[float, ...]
    gap_x: tuple[float, ...]


@dataclass(frozen=True)
class ProbePose:
    """Where the probe looks at one instant: window centre and side (canvas px), in-plane
    rotation, overall gain and a depth-gain tilt (TGC drift)."""

    cx: float
    cy: float
    side: float
    angle_deg: float
    gain: float
    tgc_tilt: float


def _asset_bytes(name: str) -> bytes:
    return (resources.files("edge_bus") / "assets" / "demo" / name).read_bytes()


def _decode(name: str, flags: int) -> np.ndarray:
    try:
        data = _asset_bytes(name)
    except OSError:
        raise SourceError(f"demo asset '{name}' is missing from edge_bus/assets/demo — {ASSET_HINT}") from None
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None:
        raise SourceError(f"demo asset '{name}' in edge_bus/assets/demo is not a readable PNG — {ASSET_HINT}")
    return img


@lru_cache(maxsize=1)
def load_demo_images() -> tuple[DemoImage, ...]:
    """The bundled images, in the order the probe visits them."""
    try:
        raw = _asset_bytes(MANIFEST).decode("utf-8")
        entries = json.loads(raw)["images"]
        specs = [(str(e["id"]), str(e["label"]), str(e["image"]), str(e["mask"])) for e in entries]
    except (OSError, ValueError, KeyError, TypeError):
        raise SourceError(f"demo manifest edge_bus/assets/demo/{MANIFEST} is missing or bad — {ASSET_HINT}") from None
    if len(specs) < 2:
        raise SourceError(f"demo manifest lists {len(specs)} image(s); the demo needs at least 2 — {ASSET_HINT}")
    images = []
    for image_id, label, image_name, mask_name in specs:
        gray = _decode(image_name, cv2.IMREAD_GRAYSCALE)
        mask = _decode(mask_name, cv2.IMREAD_GRAYSCALE) > 127
        if mask.shape != gray.shape or not mask.any():
            raise SourceError(f"demo mask '{mask_name}' doesn't match '{image_name}' or is empty — {ASSET_HINT}")
        images.append(DemoImage(image_id, label, gray, mask))
    return tuple(images)


def _ramp(n: int) -> np.ndarray:
    t = (np.arange(n, dtype=np.float32) + 0.5) / n
    return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)


@lru_cache(maxsize=1)
def load_scene() -> Scene:
    """Stitch the bundled images into the panorama (cached: the arrays are read-only)."""
    images = load_demo_images()
    height = min(img.gray.shape[0] for img in images)
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    for k, img in enumerate(images):
        gray: np.ndarray = img.gray
        mask: np.ndarray = img.mask.astype(np.uint8)
        if gray.shape[0] != height:
            width = round(gray.shape[1] * height / gray.shape[0])
            gray = cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
        cols = np.flatnonzero(mask.any(axis=0))
        left = max(0, min(PAD, int(cols[0]) - MARGIN)) if k > 0 else 0
        right = max(0, min(PAD, gray.shape[1] - 1 - int(cols[-1]) - MARGIN)) if k < len(images) - 1 else 0
        gray = cv2.copyMakeBorder(gray, 0, 0, left, right, cv2.BORDER_REFLECT_101)
        mask = cv2.copyMakeBorder(mask, 0, 0, left, right, cv2.BORDER_REFLECT_101)
        parts.append((gray.astype(np.float32), mask.astype(bool)))
    total = sum(g.shape[1] for g, _ in parts) - OVERLAP * (len(parts) - 1)
    acc = np.zeros((height, total), np.float32)
    weight_sum = np.zeros(total, np.float32)
    lesion_map = np.zeros((height, total), np.uint8)
    lesion_x: list[float] = []
    spans: list[tuple[int, int]] = []
    x = 0
    for k, (gray, mask) in enumerate(parts):
        width = gray.shape[1]
        weight = np.ones(width, np.float32)
        if k > 0:
            weight[:OVERLAP] = _ramp(OVERLAP)
        if k < len(parts) - 1:
            weight[-OVERLAP:] = _ramp(OVERLAP)[::-1]
        acc[:, x : x + width] += gray * weight
        weight_sum[x : x + width] += weight
        view = lesion_map[:, x : x + width]
        view[mask & (weight >= 0.5)] = k + 1
        cols = np.flatnonzero(mask.any(axis=0))
        lesion_x.append(x + float(cols.mean()))
        spans.append((x + int(cols[0]), x + int(cols[-1])))
        x += width - OVERLAP
    canvas = acc / weight_sum
    canvas.setflags(write=False)
    lesion_map.setflags(write=False)
    gap_x = tuple((spans[k][1] + spans[k + 1][0]) / 2.0 for k in range(len(spans) - 1))
    return Scene(
        canvas=canvas, lesion_map=lesion_map, ids=tuple(i.id for i in images),
        labels=tuple(i.label for i in images), lesion_x=tuple(lesion_x), gap_x=gap_x,
    )


def _stops(scene: Scene) -> list[tuple[float, float, float]]:
    """(centre column, drift half-width, dwell seconds) of each stop, left to right."""
    stops: list[tuple[float, float, float]] = []
    for k, x in enumerate(scene.lesion_x):
        stops.append((x, 12.0, LESION_DWELL_S[min(k, len(LESION_DWELL_S) - 1)]))
        if k < len(scene.gap_x):
            stops.append((scene.gap_x[k], 5.0, GAP_DWELL_S))
    return stops


def _track_x(stops: list[tuple[float, float, float]], t: float) -> float:
    """Column the probe is over at time t: a slow drift while dwelling, a smooth slide between."""
    start = 0.0
    for k, (centre, drift, dwell) in enumerate(stops):
        if t < start + dwell or k == len(stops) - 1:
            u = min(max((t - start) / dwell, 0.0), 1.0)
            return centre - drift + 2.0 * drift * u
        start += dwell
        if t < start + MOVE_S:
            nxt = stops[k + 1]
            a, b = centre + drift, nxt[0] - nxt[1]
            u = (t - start) / MOVE_S
            return a + (b - a) * u * u * (3.0 - 2.0 * u)
        start += MOVE_S
    return stops[-1][0]


def clip_duration_s(scene: Scene) -> float:
    """Seconds the probe path takes over ``scene``."""
    stops = _stops(scene)
    return sum(s[2] for s in stops) + MOVE_S * (len(stops) - 1)


def probe_path(scene: Scene, n_frames: int, fps: float) -> tuple[ProbePose, ...]:
    """The probe's pose at each frame, kept inside the panorama."""
    height, width = scene.canvas.shape
    stops = _stops(scene)
    spread = math.cos(math.radians(ROTATION_DEG)) + math.sin(math.radians(ROTATION_DEG))
    side0 = (height - 2.0 - 2.0 * V_WOBBLE) / ((1.0 + ZOOM) * spread)
    poses = []
    for i in range(n_frames):
        t = i / fps
        side = side0 * (1.0 + ZOOM * math.sin(2 * math.pi * t / 4.5))
        angle = ROTATION_DEG * math.sin(2 * math.pi * t / 6.0 + 0.4)
        rad = math.radians(angle)
        half = side / 2.0 * (abs(math.cos(rad)) + abs(math.sin(rad)))
        cx = _track_x(stops, t) + 1.5 * math.sin(2 * math.pi * 1.7 * t) + 1.0 * math.sin(2 * math.pi * 0.9 * t + 1.3)
        cy = height / 2.0 + V_WOBBLE * math.sin(2 * math.pi * 0.35 * t + 0.7)
        poses.append(ProbePose(
            cx=min(max(cx, half), width - half), cy=min(max(cy, half), height - half), side=side, angle_deg=angle,
            gain=0.92 + 0.12 * math.sin(2 * math.pi * t / 7.5 + 0.3),
            tgc_tilt=0.10 * math.sin(2 * math.pi * t / 5.5 + 1.1),
        ))
    return tuple(poses)
