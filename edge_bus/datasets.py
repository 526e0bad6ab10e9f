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
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_bus.errors import DataError
from edge_bus.imaging import cut_short_jpeg, opencv_settings_note, read_image, shown_path, to_uint8

log = logging.getLogger(__name__)

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
            m = _imread(path, "mask")  # at its own depth: a 16-bit 0/255 mask read as 0
            if m.shape != gray.shape:
                m = cv2.resize(m, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_NEAREST)
            # lesion where above half the mask's own maximum: 0/255 (BUSI, BUS-BRA: every mask is 0 or
            # 0/255) as before, and a 0/1 mask saved from numpy too, which a cut at 127 read as empty
            mask |= m > float(m.max()) / 2.0
        return gray, mask


def read_gray(path: Path) -> np.ndarray:
    """Read an image file as 8-bit grayscale, raising :class:`DataError` if it can't be read."""
    return to_uint8(_imread(path, "image"))


def _imread(path: Path, what: str) -> np.ndarray:
    """``path`` in grayscale at its own depth, or a :class:`DataError` naming it (OpenCV returns None for
    most bad files, and raises for some: a PNG header claiming 50000x50000 pixels; a JPEG cut short is
    decoded half grey unless refused: :func:`~edge_bus.imaging.read_image`)."""
    img = read_image(path, cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)
    if img is None:
        raise DataError(f"cannot read {what} {shown_path(path)}: "
                        f"{'a JPEG cut short (truncated)' if cut_short_jpeg(path) else 'missing or not an image'}"
                        f"{opencv_settings_note()}")
    return img


def detect_layout(root: Path) -> str:
    """Return ``"busbra"`` or ``"busi"`` for a dataset folder, or raise :class:`DataError` (for one that is
    both: the BUSI half was left out without a word)."""
    busbra = (root / "Images").is_dir() and (root / "bus_data.csv").is_file()
    busi = [c for c in CLASSES if (root / c).is_dir()]
    if busbra and busi:
        raise DataError(f"{root} holds both a BUS-BRA layout (Images/, bus_data.csv) and BUSI class folders "
                        f"({'/, '.join(busi)}/) — give each its own --data folder")
    if busbra:
        return "busbra"
    if busi:
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
        raise DataError(f"dataset folder {root} " + (
            "is a file: give the folder that holds the images" if root.exists()
            else "is a link to nothing (a broken link, or a loop of links)" if root.is_symlink() else "does not exist"))
    layout = detect_layout(root)
    if layout == "busbra":
        return read_busbra(root, folds_csv, folds)
    if (root / "Dataset_BUSI_with_GT").is_dir():
        if folds_csv is None and folds is not None and (root / "folds.csv").is_file():
            folds_csv = root / "folds.csv"  # a fold asked for: the folds.csv beside the images (as BUS-BRA's)
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
            out: dict[str, int] = {}
            for line, row in enumerate(reader, start=2):
                if row[key] in out:  # the last row won, silently: which fold is the image in?
                    raise DataError(f"folds CSV {path} line {line}: {row[key]!r} is listed twice — keep one row")
                out[row[key]] = int(row[fold])
            return out
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
    unlisted: list[str] = []
    orphans: list[str] = []  # masks beside no image: an image missing, or of a type not read (.jpg)
    for label in CLASSES:
        folder = root / label
        if not folder.is_dir():
            continue
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() == ".png" and not f.name.startswith("."))
        masks_of: dict[str, list[Path]] = {}  # image stem -> its X_mask.png, X_mask_1.png, ...
        images: list[Path] = []
        for f in files:  # dot-files (macOS ._X.png metadata) are not images; .PNG is
            stem = MASK_SUFFIX.sub("", f.stem)
            if stem != f.stem:
                masks_of.setdefault(stem, []).append(f)
            else:
                images.append(f)
        stems = {i.stem for i in images}
        orphans += [f"{label}/{m.name}" for stem, found in masks_of.items() if stem not in stems for m in found]
        for img in images:
            key = f"{label}/{img.name}"
            if fold_of and key not in fold_of:
                unlisted.append(key)
                continue
            items.append(LabeledImage(img, tuple(masks_of.get(img.stem, ())), label, fold_of.get(key), "busi"))
    if not items:
        if unlisted and folds_csv is not None:
            raise DataError(f"none of the {len(unlisted)} images under {root} is listed in {folds_csv} (it lists e.g. "
                            f"{next(iter(fold_of))!r}; an image here is {unlisted[0]!r}) — give the folds CSV "
                            "made for this folder")
        raise DataError(f"no BUSI images found under {root}")
    if orphans:
        shown = ", ".join(orphans[:3]) + (f" and {len(orphans) - 3} more" if len(orphans) > 3 else "")
        log.warning("%d mask file(s) under %s have no image beside them, so they are not scored (%s): an image "
                    "missing, or not a .png", len(orphans), root, shown)
    return _fold_filter(items, folds)


def busbra_mask(root: Path, ident: str) -> Path:
    """Where BUS-BRA keeps image ``ident``'s mask: ``bus_0001-l`` → ``Masks/mask_0001-l.png``."""
    return root / "Masks" / f"mask_{ident[4:]}.png"


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
    seen: set[str] = set()
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
                if ident in seen:  # it was scored twice
                    raise DataError(f"{table} line {line}: {ident} is listed twice — keep one row")
                seen.add(ident)
                img = root / "Images" / f"{ident}.png"
                mask = busbra_mask(root, ident)
                items.append(
                    LabeledImage(img, (mask,) if mask.is_file() else (), label, fold_of.get(ident), "busbra",
                                 (row.get("Device") or "").strip() or None)
                )
    except OSError as exc:
        raise DataError(f"cannot read {table}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {table} as a CSV table: {exc}") from None
    if not items:
        raise DataError(f"{table} lists no images — a BUS-BRA layout lists one row (ID, Pathology) per image")
    return _fold_filter(items, folds)


MASK_SUFFIX = re.compile(r"_mask(_\d+)?$", re.IGNORECASE)
"""A BUSI mask's name: the image's, then ``_mask`` or ``_mask_N`` in any case (an image named
``case_mask_review`` is an image; ``X_MASK.png`` is a mask, and was scored as a normal image)."""
