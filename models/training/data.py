"""The fixed data protocol, a tensor cache, and augmentation.

Protocol (so numbers compare across runs):
* test  = BUSI fold 0 — never trained, selected or calibrated on;
* val   = BUSI fold 1 + BUS-BRA kFold 1 (5-fold-cv.csv) — model selection;
  operating-point thresholds use BUSI fold 1 alone;
* train = everything else in BUSI and BUS-BRA.

Images are cropped to the scan area exactly as the runtime does (``detect_scan_area``), squashed
to ``CACHE_SIZE`` square and cached as uint8 in ``models/training/cache/``. A cached split is used
only when its key matches: the images (paths, mask files, labels, folds, file sizes), the size and
the code that prepares them; otherwise it is rebuilt (a count check alone had reused a split after
folds.csv changed, so validation images could be trained on).
"""

from __future__ import annotations

import hashlib
import inspect
import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_bus.datasets import CLASSES, LabeledImage, read_busbra, read_busi, read_gray
from edge_bus.imaging import to_uint8
from edge_bus.negatives import lesion_free_crops, lesion_free_square
from edge_bus.preprocess import detect_scan_area

CACHE_SIZE = 256
CACHE_DIR = Path(__file__).parent / "cache"


def protocol_splits(data_root: Path) -> dict[str, list[LabeledImage]]:
    busi = read_busi(data_root / "busi" / "Dataset_BUSI_with_GT", data_root / "busi" / "folds.csv")
    bra = read_busbra(data_root / "busbra", data_root / "busbra" / "5-fold-cv.csv")
    return {
        "train": [i for i in busi if i.fold not in (0, 1)] + [i for i in bra if i.fold != 1],
        "val_busi": [i for i in busi if i.fold == 1],
        "val_busbra": [i for i in bra if i.fold == 1],
        "test": [i for i in busi if i.fold == 0],
    }


@dataclass
class CachedSplit:
    images: np.ndarray  # uint8 [N, S, S]
    masks: np.ndarray  # uint8 {0,1} [N, S, S]
    labels: np.ndarray  # int64 index into CLASSES
    sources: np.ndarray  # str
    names: np.ndarray  # str

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, keep: np.ndarray) -> CachedSplit:
        """The images where ``keep`` (a bool mask or indices) selects, in order."""
        return CachedSplit(self.images[keep], self.masks[keep], self.labels[keep], self.sources[keep],
                           self.names[keep])

    @staticmethod
    def concat(splits: list[CachedSplit]) -> CachedSplit:
        return CachedSplit(*(np.concatenate([getattr(s, f) for s in splits])
                             for f in ("images", "masks", "labels", "sources", "names")))


def prepare_item(item: LabeledImage, size: int = CACHE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    gray, mask = item.load()
    roi = detect_scan_area(gray)
    gray = gray[roi.y : roi.y + roi.h, roi.x : roi.x + roi.w]
    mask = mask[roi.y : roi.y + roi.h, roi.x : roi.x + roi.w]
    img = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
    m = cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    return img, m


def cache_key(items: list[LabeledImage], size: int) -> str:
    """What a cached split was built from: every image (path, masks, label, fold, file size), the size and
    the preparation code (``prepare_item``, ``detect_scan_area`` and how an image and its masks are read)."""
    h = hashlib.sha256(f"size={size}\n".encode())
    for code in (prepare_item, detect_scan_area, LabeledImage.load, read_gray, to_uint8):
        h.update(inspect.getsource(code).encode())
    for it in items:
        files = (it.image, *it.masks)
        sizes = ",".join(str(f.stat().st_size) if f.is_file() else "-" for f in files)
        masks = "|".join(str(m.name) for m in it.masks)
        h.update(f"{it.image.resolve()}|{masks}|{it.label}|{it.fold}|{sizes}\n".encode())
    return h.hexdigest()


def _read_cache(path: Path, key: str) -> CachedSplit | None:
    """The cached split at ``path`` if it was built from the same images and code, else None."""
    if not path.is_file():
        return None
    try:
        # opened here: np.load leaves its own file handle open when the archive is broken
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            if "key" not in z.files or str(z["key"]) != key:
                print(f"cache {path.name}: built from other images or code, rebuilding", file=sys.stderr)
                return None
            return CachedSplit(z["images"], z["masks"], z["labels"], z["sources"], z["names"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:  # a half-written file from a killed run
        print(f"cache {path}: unreadable ({type(exc).__name__}: {exc}), rebuilding", file=sys.stderr)
        return None


def load_split(name: str, items: list[LabeledImage], size: int = CACHE_SIZE) -> CachedSplit:
    path = CACHE_DIR / f"{name}_{size}.npz"
    key = cache_key(items, size)
    cached = _read_cache(path, key)
    if cached is not None:
        return cached
    print(f"caching {name}: {len(items)} images at {size} px in {path}", file=sys.stderr, flush=True)
    pairs = [prepare_item(it, size) for it in items]
    split = CachedSplit(
        images=np.stack([p[0] for p in pairs]),
        masks=np.stack([p[1] for p in pairs]),
        labels=np.array([CLASSES.index(it.label) for it in items], dtype=np.int64),
        sources=np.array([it.source for it in items]),
        names=np.array([str(it.image.name) for it in items]),
    )
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")  # complete or absent, never half a file
    np.savez(tmp, images=split.images, masks=split.masks, labels=split.labels,
             sources=split.sources, names=split.names, key=np.array(key))
    os.replace(tmp, path)
    return split


def lesion_free_crop(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                     out: int) -> np.ndarray | None:
    """A crop of a lesion image that leaves the lesion (dilated by 8 px) out: normal tissue."""
    square = lesion_free_square(mask, rng, margin_px=8)
    if square is None:
        return None
    crop = img[square.y : square.y + square.h, square.x : square.x + square.w]
    return cv2.resize(crop, (out, out), interpolation=cv2.INTER_LINEAR)


def full_resolution_crops(items: list[LabeledImage], per_image: int, out: int) -> np.ndarray:
    """uint8 [N, out, out]: up to ``per_image`` lesion-free crops of each lesion image in ``items``, cut
    from its full-resolution scan area as ``edge-bus eval --crops`` cuts them
    (:func:`edge_bus.negatives.lesion_free_crops`, the same squares for the same image) and resized with
    INTER_AREA, as a live frame is. :func:`lesion_free_crop` cuts its crops from the cached images
    instead, 256 px for the whole scan area, and scales them up 1.7-2.8×: blurred as no live frame is,
    which the shipped network learnt to call normal while it flags the same squares cut sharp."""
    crops = []
    for item in items:
        if item.label == "normal":
            continue
        gray, truth = item.load()
        for crop in lesion_free_crops(gray, truth, detect_scan_area(gray), item.image.name, per_image):
            crops.append(cv2.resize(crop, (out, out), interpolation=cv2.INTER_AREA))
    return np.stack(crops) if crops else np.zeros((0, out, out), np.uint8)


def augment(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Random scale/crop, flip, small rotation, gain/gamma and speckle noise."""
    s = img.shape[0]
    scale = rng.uniform(0.75, 1.0)
    aspect = rng.uniform(0.85, 1.18)
    cw = int(min(s, s * scale * np.sqrt(aspect)))
    ch = int(min(s, s * scale / np.sqrt(aspect)))
    x0 = int(rng.integers(0, s - cw + 1))
    y0 = int(rng.integers(0, s - ch + 1))
    angle = rng.uniform(-10, 10)
    # one affine: crop window → out x out, with rotation about the centre
    src_c = np.array([x0 + cw / 2, y0 + ch / 2])
    rot = cv2.getRotationMatrix2D((float(src_c[0]), float(src_c[1])), angle, 1.0)
    sx, sy = out / cw, out / ch
    m = np.array([[sx, 0, out / 2 - sx * src_c[0]], [0, sy, out / 2 - sy * src_c[1]]]) @ np.vstack([rot, [0, 0, 1]])
    img_o = cv2.warpAffine(img, m, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mask_o = cv2.warpAffine(mask, m, (out, out), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
    if rng.random() < 0.5:
        img_o, mask_o = img_o[:, ::-1], mask_o[:, ::-1]
    f = img_o.astype(np.float32) / 255.0
    f = np.power(f, rng.uniform(0.7, 1.4)) * rng.uniform(0.75, 1.25)
    if rng.random() < 0.5:
        f = f * rng.normal(1.0, rng.uniform(0.03, 0.15), size=f.shape).astype(np.float32)
    f = np.clip(f, 0, 1)
    return (f * 255).astype(np.uint8), np.ascontiguousarray(mask_o)
