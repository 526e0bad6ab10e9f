"""5-fold cross-validation on BUSI (issue #2's bonus where a GPU is lent): how far the shipped recipe's
BUSI numbers move with the fold they are measured on, which one 157-image test fold cannot say.

    python -m models.training.cv --pack DIR --fold K --epochs 30 --out DIR [train.py options]

Fold K: train on BUSI's other four folds plus the shipped training images of BUS-BRA (kFold 2-5),
score BUSI fold K with train.py's validation (224 px) after every epoch, and keep them all in
``history.jsonl``. The number to report is the **last** epoch's: choosing an epoch on fold K would
choose on the images it is scored on. These models are measurements, never shipped: four of the five
train on the test fold (BUSI fold 0), which is why the pack must hold it (``python -m
models.training.pack --splits train val_busi test``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from models.training.data import CachedSplit
from models.training.pack import read_pack, read_pack_folds
from models.training.script import run_script
from models.training.train import TrainingData, fit, parse_args

CV_SPLITS = ("train", "val_busi", "test")  # every BUSI image, and BUS-BRA's training folds
BUSI_FOLDS = (0, 1, 2, 3, 4)


def cv_data(parts: dict[str, tuple[CachedSplit, np.ndarray]], fold: int) -> TrainingData:
    """BUSI fold ``fold`` held out (scored as ``val_busi``); everything else in ``parts`` trains."""
    if fold not in BUSI_FOLDS:
        raise SystemExit(f"--fold {fold}: BUSI has folds {', '.join(map(str, BUSI_FOLDS))}")
    train, held = [], []
    for split, folds in parts.values():
        out = (split.sources == "busi") & (folds == fold)
        held.append(split.take(out))
        train.append(split.take(~out))
    return TrainingData(CachedSplit.concat(train), {"val_busi": CachedSplit.concat(held)})


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fold", type=int, required=True, help="the BUSI fold held out (0-4)")
    known, rest = p.parse_known_args(argv)
    args = parse_args(rest)
    if not args.pack:
        raise SystemExit("--pack DIR is needed: the cross-validation reads a pack with the test fold in it")
    parts = {name: (read_pack(Path(args.pack), name, args.cache_size),
                    read_pack_folds(Path(args.pack), name, args.cache_size)) for name in CV_SPLITS}
    data = cv_data(parts, known.fold)
    print(f"fold {known.fold}: train={len(data.train)} held out={len(data.val['val_busi'])}", flush=True)
    fit(args, data)


if __name__ == "__main__":
    run_script(main)
