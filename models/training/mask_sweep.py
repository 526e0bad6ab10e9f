"""Does mask post-processing limit Dice? Validation only (BUSI fold 1, BUS-BRA kFold 1), shipped INT8 IR.

    python -m models.training.mask_sweep [--data ../shared/data] [--out models/training/results/mask_sweep.md]

Sweeps the mask probability threshold and the connected-component filter of
``edge_bus.postprocess`` (components kept when at least ``min_component`` of the largest; 0 keeps
all, 1 only the largest) on the ungated mask, as ``edge-bus eval`` scores it, and counts the lesion
images whose mask comes out empty at the shipped setting (a whole lesion missed, Dice 0), with their
peak pixel probability and whether that peak lies inside the true lesion (could a fallback that
keeps the region around the peak recover them?).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge_bus.engines import EngineConfig, create_engine
from edge_bus.metrics import dice
from edge_bus.postprocess import PostprocessConfig, keep_main_components
from edge_bus.preprocess import Preprocessor
from edge_bus.zoo import resolve_model
from models.training.data import protocol_splits
from models.training.script import run_script, section_parser, write_section

THRESHOLDS = (0.3, 0.4, 0.5, 0.6)
MIN_COMPONENTS = (0.0, 0.2, 1.0)


@dataclass
class EmptyMasks:
    """Lesion images whose mask is empty at the shipped threshold."""

    peaks: list[float] = field(default_factory=list)  # highest pixel probability of each
    peak_inside: int = 0  # how many of them have that peak inside the true lesion

    def describe(self) -> str:
        if not self.peaks:
            return "0 with an empty mask at the shipped threshold"
        return (f"{len(self.peaks)} with an empty mask at the shipped threshold (peak pixel probability "
                f"{min(self.peaks):.3f}–{max(self.peaks):.3f}; peak inside the lesion in {self.peak_inside})")


def sweep(split: str, data: Path) -> tuple[dict[tuple[float, float], float], int, EmptyMasks]:
    """Mean Dice per (threshold, min_component), the number of lesion images, and the empty masks."""
    manifest = resolve_model(None)
    engine = create_engine(manifest, EngineConfig(backend="openvino", precision="int8", hint="LATENCY"))
    items = [it for it in protocol_splits(data)[split] if it.label != "normal"]
    scores: dict[tuple[float, float], list[float]] = {(t, c): [] for t in THRESHOLDS for c in MIN_COMPONENTS}
    empty = EmptyMasks()
    try:
        for item in items:
            gray, truth = item.load()
            tensor, meta = Preprocessor(manifest.input).preprocess(gray)
            logits = engine.infer(tensor).mask_logits
            roi = meta.roi
            z = cv2.resize(logits.reshape(logits.shape[-2:]).astype(np.float32), (roi.w, roi.h),
                           interpolation=cv2.INTER_LINEAR)
            for t in THRESHOLDS:
                crop = z >= np.log(t / (1.0 - t))
                if t == manifest.mask_threshold and not crop.any():
                    empty.peaks.append(float(1.0 / (1.0 + np.exp(-z.max()))))
                    py, px = np.unravel_index(int(np.argmax(z)), z.shape)
                    empty.peak_inside += bool(truth[roi.y + py, roi.x + px])
                for c in MIN_COMPONENTS:
                    kept = keep_main_components(crop, c) if crop.any() else crop
                    full = np.zeros(truth.shape, dtype=bool)
                    full[roi.y : roi.y + roi.h, roi.x : roi.x + roi.w] = kept
                    scores[(t, c)].append(dice(full, truth))
    finally:
        engine.close()
    return {k: float(np.mean(v)) for k, v in scores.items()}, len(items), empty


def sweep_table(data: Path) -> str:
    """The sweep as markdown, one table per validation split."""
    shipped = (resolve_model(None).mask_threshold, PostprocessConfig().min_component)
    lines = ["<!-- python -m models.training.mask_sweep (shipped INT8 IR; bold = the shipped setting) -->"]
    for split in ("val_busi", "val_busbra"):
        print(f"mask sweep: {split}", file=sys.stderr, flush=True)
        means, n, empty = sweep(split, data)
        lines.append(f"\n{split}: {n} lesion images, {empty.describe()}")
        lines.append("| mask threshold | " + " | ".join(f"min_component {c}" for c in MIN_COMPONENTS) + " |")
        lines.append("|---|" + "---|" * len(MIN_COMPONENTS))
        for t in THRESHOLDS:
            cells = [f"**{means[(t, c)]:.4f}**" if (t, c) == shipped else f"{means[(t, c)]:.4f}"
                     for c in MIN_COMPONENTS]
            lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = section_parser(__doc__).parse_args(argv)
    write_section(sweep_table(args.data), args.out)


if __name__ == "__main__":
    run_script(main)
