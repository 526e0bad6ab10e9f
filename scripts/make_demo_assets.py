#!/usr/bin/env python
"""Build ``edge_bus/assets/demo/``: the few BUS-BRA images the bundled demo clip is made from.

    python scripts/make_demo_assets.py [--busbra ../shared/data/busbra] [--out edge_bus/assets/demo]

The picks are fixed (below) so the demo is reproducible; the script checks each one against
BUS-BRA's own tables — in 5-fold-cv.csv kFold 2-5 (never the validation fold 1), a single lesion
that is not too large — copies image + mask (downscaled to <= 320 px if needed, then cropped above
the scanner's burned-in annotation text), and writes ``manifest.json`` and ``CITATION.md``
(citation + BUS-BRA's licence text). The order of the picks is the order the virtual probe visits
them; each pick's free side (no lesion) faces its neighbours so the sweep passes lesion-free tissue.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BUSBRA = REPO.parent / "shared" / "data" / "busbra"
DEFAULT_OUT = REPO / "edge_bus" / "assets" / "demo"
MAX_SIDE = 320
MAX_LESION_FRACTION = 0.12
MAX_TOTAL_BYTES = 500_000
ALLOWED_FOLDS = (2, 3, 4, 5)
DOI = "10.5281/zenodo.7730709"


@dataclass(frozen=True)
class Pick:
    """One BUS-BRA image and how many rows (from the top) to keep: the rows below carry the
    scanner's burned-in text (``MAMA ESQ 3H``, ``D 10.4MM ...``), which a real probe sweep would
    not drag across the screen."""

    id: str
    keep_rows: int
    why: str


PICKS: tuple[Pick, ...] = (
    Pick("bus_0833-s", 228, "benign (fibrocystic changes): round, well-defined dark lesion, upper middle"),
    Pick("bus_0677-s", 228, "malignant (invasive ductal carcinoma): taller-than-wide lesion, posterior shadow"),
    Pick("bus_0747-s", 228, "malignant (invasive ductal carcinoma): dark irregular lesion, left of centre"),
)


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as fh:
        return {row["ID"]: row for row in csv.DictReader(fh)}


def _read(path: Path, flags: int) -> np.ndarray:
    img = cv2.imread(str(path), flags)
    if img is None:
        sys.exit(f"error: cannot read {path} — is --busbra the BUS-BRA folder?")
    return img


def _fit(img: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape
    scale = MAX_SIDE / max(h, w)
    if scale >= 1.0:
        return img, mask
    size = (round(w * scale), round(h * scale))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA), cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)


def build(busbra: Path, out: Path) -> list[dict[str, object]]:
    folds, meta = _rows(busbra / "5-fold-cv.csv"), _rows(busbra / "bus_data.csv")
    out.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, object]] = []
    for pick in PICKS:
        fold, info = int(folds[pick.id]["kFold"]), meta[pick.id]
        if fold not in ALLOWED_FOLDS:
            sys.exit(f"error: {pick.id} is in 5-fold kFold {fold}; the demo may only use folds {ALLOWED_FOLDS}")
        suffix = pick.id.removeprefix("bus_")
        img = _read(busbra / "Images" / f"{pick.id}.png", cv2.IMREAD_GRAYSCALE)
        mask = (_read(busbra / "Masks" / f"mask_{suffix}.png", cv2.IMREAD_GRAYSCALE) > 127).astype(np.uint8) * 255
        img, mask = _fit(img, mask)
        if mask[pick.keep_rows :].any():
            sys.exit(f"error: cropping {pick.id} to {pick.keep_rows} rows would cut its lesion")
        img, mask = img[: pick.keep_rows], mask[: pick.keep_rows]
        n_labels, _ = cv2.connectedComponents(mask)
        fraction = float((mask > 0).mean())
        if n_labels != 2 or not 0 < fraction <= MAX_LESION_FRACTION:
            sys.exit(f"error: {pick.id} needs one lesion covering <= {MAX_LESION_FRACTION:.0%} (has {fraction:.1%})")
        image_name, mask_name = f"{pick.id}.png", f"mask_{suffix}.png"
        cv2.imwrite(str(out / image_name), img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        cv2.imwrite(str(out / mask_name), mask, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        entries.append({
            "id": pick.id, "image": image_name, "mask": mask_name, "label": info["Pathology"],
            "histology": info["Histology"], "birads": info["BIRADS"], "device": info["Device"],
            "kfold_5": fold, "size": [int(img.shape[1]), int(img.shape[0])],
            "crop_rows": pick.keep_rows, "lesion_fraction": round(fraction, 4), "why": pick.why,
        })
    return entries


def write_docs(busbra: Path, out: Path, entries: list[dict[str, object]]) -> None:
    manifest = {
        "dataset": "BUS-BRA",
        "doi": DOI,
        "note": (
            "8-bit grayscale PNGs as distributed in ../shared/data/busbra (longer side <= 320 px), "
            "cropped to their top crop_rows rows to drop burned-in scanner text; masks binarised 0/255. "
            "Order = order the demo's virtual probe visits them. Made by scripts/make_demo_assets.py."
        ),
        "images": entries,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    licence = (busbra / "LICENSE.txt").read_text().strip()
    ids = ", ".join(str(e["id"]) for e in entries)
    (out / "CITATION.md").write_text(
        "# Demo images: BUS-BRA\n\n"
        f"The demo clip is synthesised from these BUS-BRA images and their lesion masks: {ids}.\n\n"
        "Cite:\n\n"
        "> W. Gómez-Flores, M. J. Gregorio-Calas and W. C. de Albuquerque Pereira, \"BUS-BRA: A breast "
        "ultrasound dataset for assessing computer-aided diagnosis systems\", *Medical Physics*, 2024.\n"
        "> Dataset: Zenodo, https://doi.org/" + DOI + "\n\n"
        "## BUS-BRA licence (copied from the dataset's LICENSE.txt)\n\n"
        "```text\n" + licence + "\n```\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--busbra", type=Path, default=DEFAULT_BUSBRA, help="BUS-BRA folder (Images/, Masks/, CSVs)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the demo assets go")
    args = parser.parse_args()
    if not (args.busbra / "bus_data.csv").is_file():
        sys.exit(f"error: {args.busbra} is not a BUS-BRA folder (no bus_data.csv) — pass --busbra")
    entries = build(args.busbra, args.out)
    write_docs(args.busbra, args.out, entries)
    total = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    if total > MAX_TOTAL_BYTES:
        sys.exit(f"error: demo assets are {total} bytes, over the {MAX_TOTAL_BYTES} budget")
    print(f"wrote {len(entries)} images to {args.out} ({total / 1000:.0f} kB)")


if __name__ == "__main__":
    main()
