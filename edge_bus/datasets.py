"""Readers for the two labelled breast-ultrasound layouts edge-bus knows.

* BUSI layout: ``<root>/{benign,malignant,normal}/X.png`` with ``X_mask.png`` (and
  ``X_mask_1.png``, ``X_mask_2.png`` for extra lesions, which are unioned) beside it.
  An optional ``folds.csv`` (image, label, fold, dup_group) selects folds.
* BUS-BRA layout: ``<root>/Images/bus_XXXX-s.png``, ``<root>/Masks/mask_XXXX-s.png`` and
  ``<root>/bus_data.csv`` (ID, Pathology, ...). An optional fold CSV (ID, kFold) selects folds.

Nothing here imports torch or a runtime: training and ``edge-bus eval`` share these readers.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_bus.errors import DataError
from edge_bus.imaging import to_uint8

CLASSES: tuple[str, ...] = ("normal", "benign", "malignant")


@dataclass(frozen=True)
class LabeledImage:
    """One image of a labelled dataset, with the mask files to union, its fold and (where the dataset
    names it: BUS-BRA's ``Device`` column) the scanner that made it."""

    image: Path
    masks: tuple[Path, ...]
    label: str
    fold: int | None
    source: str
    device: str | None = None

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the grayscale image (uint8, HxW) and the union of its masks (bool, HxW)."""
        gray = read_gray(self.image)
        mask = np.zeros(gray.shape, dtype=bool)
        for path in self.masks:
            m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)  # a 16-bit 0/255 mask read as 0
            if m is None:
                raise DataError(f"cannot read mask {path}")
            if m.shape != gray.shape:
                m = cv2.resize(m, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_NEAREST)
            mask |= m > 127
        return gray, mask


def read_gray(path: Path) -> np.ndarray:
    """Read an image file as 8-bit grayscale, raising :class:`DataError` if it can't be read."""
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)
    if img is None:
        raise DataError(f"cannot read image {path}: missing or not an image")
    return to_uint8(img)


def detect_layout(root: Path) -> str:
    """Return ``"busbra"`` or ``"busi"`` for a dataset folder, or raise :class:`DataError`."""
    if (root / "Images").is_dir() and (root / "bus_data.csv").is_file():
        return "busbra"
    if any((root / c).is_dir() for c in CLASSES):
        return "busi"
    if (root / "Dataset_BUSI_with_GT").is_dir():
        return "busi"
    raise DataError(
        f"{root} is neither a BUSI layout (benign/, malignant/, normal/ folders) "
        "nor a BUS-BRA layout (Images/, Masks/, bus_data.csv)"
    )


def read_dataset(
    root: Path, folds_csv: Path | None = None, folds: Iterable[int] | None = None
) -> list[LabeledImage]:
    """Read either layout; ``folds`` keeps only those folds (needs a folds CSV)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder {root} " + ("is a file: give the folder that holds the images" if root.exists()
                                                     else "does not exist"))
    layout = detect_layout(root)
    if layout == "busbra":
        return read_busbra(root, folds_csv, folds)
    if (root / "Dataset_BUSI_with_GT").is_dir():
        if folds_csv is None and (root / "folds.csv").is_file():
            folds_csv = root / "folds.csv"
        root = root / "Dataset_BUSI_with_GT"
    return read_busi(root, folds_csv, folds)


def _fold_filter(items: list[LabeledImage], folds: Iterable[int] | None) -> list[LabeledImage]:
    if folds is None:
        return items
    keep = set(folds)
    kept = [it for it in items if it.fold in keep]
    if not kept:
        present = sorted({it.fold for it in items if it.fold is not None})
        raise DataError(f"fold {', '.join(map(str, sorted(keep)))} has no images "
                        f"(the folds CSV has folds {', '.join(map(str, present)) or 'none'} for these images)")
    return kept


def read_folds(path: Path, key: str, fold: str) -> dict[str, int]:
    """``{row[key]: int(row[fold])}`` from a folds CSV, or a :class:`DataError` that says what is wrong."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            if key not in columns or fold not in columns:
                raise DataError(f"folds CSV {path} has columns {', '.join(columns) or 'none'}; this layout needs "
                                f"{key!r} and {fold!r} (BUSI: folds.csv with image,fold; BUS-BRA: 5-fold-cv.csv "
                                "with ID,kFold)")
            return {row[key]: int(row[fold]) for row in reader}
    except OSError as exc:
        raise DataError(f"cannot read folds CSV {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read folds CSV {path} as a CSV table: {exc}") from None
    except TypeError:  # a short row: DictReader fills the missing columns with None
        raise DataError(f"folds CSV {path}: a row has no {fold!r} value") from None
    except ValueError as exc:
        raise DataError(f"folds CSV {path}: a {fold!r} value is not a whole number ({exc})") from None


def read_busi(
    root: Path, folds_csv: Path | None = None, folds: Iterable[int] | None = None
) -> list[LabeledImage]:
    """Read a BUSI-layout folder; masks ``X_mask*.png`` are attached to ``X.png``."""
    fold_of: dict[str, int] = {}
    if folds_csv is not None:
        fold_of = read_folds(folds_csv, "image", "fold")
    elif folds is not None:
        raise DataError("--fold needs --folds CSV for a BUSI layout")
    items: list[LabeledImage] = []
    for label in CLASSES:
        folder = root / label
        if not folder.is_dir():
            continue
        for img in sorted(folder.glob("*.png")):
            if "_mask" in img.stem:
                continue
            masks = tuple(sorted(folder.glob(f"{_glob_escape(img.stem)}_mask*.png")))
            key = f"{label}/{img.name}"
            if fold_of and key not in fold_of:
                continue
            items.append(LabeledImage(img, masks, label, fold_of.get(key), "busi"))
    if not items:
        raise DataError(f"no BUSI images found under {root}")
    return _fold_filter(items, folds)


def read_busbra(
    root: Path, folds_csv: Path | None = None, folds: Iterable[int] | None = None
) -> list[LabeledImage]:
    """Read a BUS-BRA-layout folder (Images/, Masks/, bus_data.csv)."""
    fold_of: dict[str, int] = {}
    if folds_csv is None and folds is not None:
        folds_csv = root / "5-fold-cv.csv"
    if folds_csv is not None:
        fold_of = read_folds(folds_csv, "ID", "kFold")
    items: list[LabeledImage] = []
    table = root / "bus_data.csv"
    try:
        with open(table, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            if "ID" not in columns or "Pathology" not in columns:
                raise DataError(f"{table} has columns {', '.join(columns) or 'none'}; a BUS-BRA layout needs "
                                "'ID' and 'Pathology'")
            for line, row in enumerate(reader, start=2):
                ident, label = (row.get("ID") or "").strip(), (row.get("Pathology") or "").strip().lower()
                if not ident:
                    raise DataError(f"{table} line {line}: no ID")
                if label not in CLASSES:
                    raise DataError(f"unknown pathology {label!r} for {ident} in {table} line {line}; "
                                    f"valid: {', '.join(CLASSES)}")
                img = root / "Images" / f"{ident}.png"
                mask = root / "Masks" / f"mask_{ident[4:]}.png"
                items.append(
                    LabeledImage(img, (mask,) if mask.is_file() else (), label, fold_of.get(ident), "busbra",
                                 (row.get("Device") or "").strip() or None)
                )
    except OSError as exc:
        raise DataError(f"cannot read {table}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {table} as a CSV table: {exc}") from None
    return _fold_filter(items, folds)


def _glob_escape(stem: str) -> str:
    return stem.replace("[", "[[]").replace("*", "[*]").replace("?", "[?]")
