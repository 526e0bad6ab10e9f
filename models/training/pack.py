"""A portable copy of the training cache, for training on a machine without ``../shared/data``.

    python -m models.training.pack --data ../shared/data --out .gpu/pack

Writes ``train_256.pack.npz``, ``val_busi_256.pack.npz`` and ``val_busbra_256.pack.npz``: the cached
splits of :mod:`models.training.data` (the scan-area crops the training reads, not the raw images),
each image WebP-lossless (checked bit for bit on writing), each mask bit-packed, each image's fold
kept. 102 MB against 330 MB for the plain cache. ``train.py --pack DIR``
trains from it; the lesion-free crops come from the cached images then (``--crop-source cache``), and
the full-resolution validation crops (``--val-crops``) need the raw data, so they are off.

``--splits train val_busi test`` packs what the cross-validation of :mod:`models.training.cv` reads:
every BUSI image, the test fold (BUSI fold 0) included, which no shipped model trains on; it splits
them by the kept folds (``folds``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np

from models.training.data import CACHE_SIZE, CachedSplit, load_split, protocol_splits
from models.training.script import run_script

PACKED_SPLITS = ("train", "val_busi", "val_busbra")


def pack_path(folder: Path, name: str, size: int = CACHE_SIZE) -> Path:
    return folder / f"{name}_{size}.pack.npz"


def encode_split(split: CachedSplit, folds: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The arrays of one packed split (with each image's fold, where given); raises if WebP does not
    give an image back bit for bit."""
    blobs = []
    for i, img in enumerate(split.images):
        ok, buf = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 101])  # > 100: lossless
        if not ok or not np.array_equal(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE), img):
            raise RuntimeError(f"image {i} ({split.names[i]}) does not survive WebP lossless")
        blobs.append(buf.ravel())
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    extra = {} if folds is None else {"folds": np.asarray(folds, dtype=np.int64)}
    return {**extra, "webp": np.concatenate(blobs), "offsets": offsets, "shape": np.array(split.masks.shape),
            "masks": np.packbits(split.masks.astype(bool), axis=None), "labels": split.labels,
            "sources": split.sources, "names": split.names}


def decode_split(z: np.lib.npyio.NpzFile) -> CachedSplit:
    shape = tuple(int(s) for s in z["shape"])
    webp, offsets = z["webp"], z["offsets"]
    images = np.stack([cv2.imdecode(webp[offsets[i] : offsets[i + 1]], cv2.IMREAD_GRAYSCALE)
                       for i in range(len(offsets) - 1)])
    masks = np.unpackbits(z["masks"], count=int(np.prod(shape))).reshape(shape)
    return CachedSplit(images, masks, z["labels"], z["sources"], z["names"])


def read_pack(folder: Path, name: str, size: int = CACHE_SIZE) -> CachedSplit:
    path = pack_path(folder, name, size)
    if not path.is_file():
        raise SystemExit(f"--pack {folder}: no {path.name} (make it with python -m models.training.pack)")
    with np.load(path, allow_pickle=False) as z:
        return decode_split(z)


def read_pack_folds(folder: Path, name: str, size: int = CACHE_SIZE) -> np.ndarray:
    """Each image's fold in a packed split (BUSI's folds.csv, BUS-BRA's kFold)."""
    with np.load(pack_path(folder, name, size), allow_pickle=False) as z:
        if "folds" not in z.files:
            raise SystemExit(f"--pack {folder}: {name} has no folds (packed before they were kept): pack it again")
        return np.asarray(z["folds"])


def write_pack(data_root: Path, out: Path, size: int = CACHE_SIZE,
               splits: tuple[str, ...] = PACKED_SPLITS) -> list[Path]:
    items = protocol_splits(data_root)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in splits:
        path = pack_path(out, name, size)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        folds = np.array([it.fold for it in items[name]])
        np.savez(tmp, **encode_split(load_split(name, items[name], size), folds))
        os.replace(tmp, path)
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB", flush=True)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--out", required=True)
    p.add_argument("--cache-size", type=int, default=CACHE_SIZE)
    p.add_argument("--splits", nargs="+", default=list(PACKED_SPLITS), choices=(*PACKED_SPLITS, "test"),
                   help="the splits to pack; the test fold only for the cross-validation")
    args = p.parse_args(argv)
    write_pack(Path(args.data), Path(args.out), args.cache_size, tuple(args.splits))


if __name__ == "__main__":
    run_script(main)
