"""The "no lesion" answer on normal tissue from every scanner: the model card's presence section.

BUSI's normal images come from one hospital, so the share of them flagged says little about another
scanner. This scores, with the shipped INT8 IRs through ``edge-bus eval``'s own code, the share of
normal images flagged, of lesion images found, and of lesion-free crops of the lesion images flagged
(:mod:`edge_bus.negatives`), on the test fold and, per scanner, on the validation images.

    python -m models.training.presence_check --data ../shared/data --out models/training/results/presence.md

The numbers depend on the class of INT8 kernels that runs; ``reproduce.sh`` caps them to AVX2 as for
every other number in the card, and the section says which class ran.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from edge_bus.evaluation import EVAL_CROPS, EvalReport, GroupScores, evaluate
from edge_bus.telemetry.hardware import kernel_class
from edge_bus.zoo import resolve_model
from models.training.script import run_script, section_parser, write_section

__all__ = ["presence_section"]


def _rate(x: float | None, n: int) -> str:
    return "–" if x is None or n == 0 else f"{x:.3f} ({n})"


def _row(model: str, data: str, g: GroupScores | EvalReport, n_lesion: int, normals: str) -> str:
    return f"| {model} | {data} | {normals} | {_rate(g.lesion_recall, n_lesion)} | {_rate(g.crop_fp_rate, g.n_crops)} |"


def _lesion_images(report: EvalReport) -> int:
    return report.counts["benign"] + report.counts["malignant"]


def presence_section(data: Path, models: list[str], crops: int = EVAL_CROPS, limit: int | None = None) -> str:
    """The markdown section: one table for the test fold, one for validation by scanner (``limit``: only
    that many images of each, spread over it, for a quick look)."""
    busi = data / "busi"
    bra = data / "busbra"
    test_rows, val_rows = [], []
    for name in models:
        thr = resolve_model(name).lesion_threshold
        print(f"presence: {name} on BUSI fold 0, fold 1 and BUS-BRA kFold 1", file=sys.stderr, flush=True)
        test = evaluate(busi / "Dataset_BUSI_with_GT", busi / "folds.csv", 0, model=name, crops=crops, limit=limit)
        val_busi = evaluate(busi / "Dataset_BUSI_with_GT", busi / "folds.csv", 1, model=name, crops=crops,
                            limit=limit)
        val_bra = evaluate(bra, bra / "5-fold-cv.csv", 1, model=name, crops=crops, limit=limit)
        test_rows.append(_row(f"{name} (lesion threshold {thr:.4f})", "BUSI fold 0", test, _lesion_images(test),
                              _rate(test.normal_fp_rate, test.counts["normal"])))
        val_rows.append(_row(name, "BUSI fold 1", val_busi, _lesion_images(val_busi),
                             _rate(val_busi.normal_fp_rate, val_busi.counts["normal"])))
        for scanner, g in val_bra.by_device.items():
            val_rows.append(_row(name, f"BUS-BRA kFold 1, {scanner}", g, g.n_lesion, "–"))
    head = ["| model | data | normal images flagged (n) | lesion images found (n) | lesion-free crops flagged (n) |",
            "|---|---|---|---|---|"]
    return "\n".join([
        '## The "no lesion" answer on normal tissue from every scanner\n',
        textwrap.fill("Only BUSI has normal images, all from one hospital. Beside them, `edge-bus eval` scores "
        f"{crops} lesion-free crops of each lesion image (`--crops`): squares of the scan area, 35–60% of its "
        "shorter side, clear of the lesion grown by 3% of that side, drawn from the image's name so every run "
        "scores the same ones, each prepared as a live frame. They are normal tissue from the scanner of "
        "that image, including the four scanners of BUS-BRA, which gave no normal image. Flagged: P(lesion) at "
        "or above the model's lesion threshold (chosen on BUSI fold 1's normal and lesion images; crops are never "
        "used to choose it). Found: the same, on the lesion images; the rest are called normal. INT8 IR, "
        f"OpenVINO, {kernel_class()} kernels (`python -m models.training.presence_check`).",
                      width=100, break_on_hyphens=False) + "\n",
        "Test (BUSI fold 0):\n", *head, *test_rows, "",
        "Validation, by scanner (these images select the model; the lesion threshold comes from BUSI fold 1):\n",
        *head, *val_rows, "",
    ])


def main() -> None:
    p = section_parser(__doc__, models=True)
    p.add_argument("--crops", type=int, default=EVAL_CROPS, help="lesion-free crops per lesion image")
    args = p.parse_args()
    write_section(presence_section(args.data, args.models, args.crops), args.out)


if __name__ == "__main__":
    run_script(main)
