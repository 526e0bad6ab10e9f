"""The sensitivity/specificity knob: Wp ∈ {1, 2, 3, 5}, two ways.

A full multitask training per Wp costs about an hour on 2 CPU cores, so the sweep isolates the
knob: the trained network's encoder is frozen, its bottleneck features (global-average-pooled
head features of each training image, plus two augmented views) are cached, and a fresh
classification head (FC → ReLU → dropout → FC, as in the network) is trained per Wp with the
stable weighted BCE on those features. Every run uses the same seed, data and schedule; only Wp
changes. SEN/SPE are reported on validation (BUSI fold 1 + BUS-BRA kFold 1, lesion images) at
the natural threshold P(malignant) = 0.5, where Wp acts.

With ``--finetune-epochs N`` the whole network trains instead, as in the paper, where Wp acts through
the encoder too: per Wp, N epochs of train.py's EMT-NET loss with the checkpoint's own Dice mode and
sampling (lr 3e-4, batch norms frozen) start from the same trained weights with the same seed; only Wp
changes. The last epoch is scored.

    python -m models.training.wp_sweep --checkpoint models/training/checkpoints/emt_net/best.pt \
        --out models/training/results/wp_sweep.json
    python -m models.training.wp_sweep --checkpoint models/training/checkpoints/emt_net/best.pt \
        --finetune-epochs 2 --out models/training/results/wp_finetune.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from edge_bus.metrics import rates_at, roc_auc
from models.training.data import CachedSplit, augment, load_split, protocol_splits
from models.training.loss import weighted_bce_with_logits
from models.training.networks import load_checkpoint
from models.training.script import run_script
from models.training.train import fit, load_training_data, parse_args, predict, to_tensor


@torch.no_grad()
def pooled_features(model: nn.Module, images: list[np.ndarray], size: int, batch: int = 32) -> torch.Tensor:
    model.eval()
    feats = []
    for i in range(0, len(images), batch):
        x = to_tensor(np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)
                                for im in images[i : i + batch]]))
        h = x
        for stage in model.encoder.stages:
            h = stage(h)
        feats.append(torch.flatten(nn.functional.adaptive_avg_pool2d(model.encoder.head(h), 1), 1))
        done = min(i + batch, len(images))
        if done % (batch * 10) == 0 or done == len(images):  # minutes of encoder passes: show they move
            print(f"  features {done}/{len(images)}", file=sys.stderr, flush=True)
    return torch.cat(feats)


def lesion_views(split: CachedSplit, views: int, rng: np.random.Generator, size: int) -> tuple[list, np.ndarray]:
    imgs, labels = [], []
    for i in np.flatnonzero(split.labels > 0):
        imgs.append(split.images[i])
        labels.append(split.labels[i] == 2)
        for _ in range(views):
            imgs.append(augment(split.images[i], split.masks[i], rng, split.images.shape[1])[0])
            labels.append(split.labels[i] == 2)
    return imgs, np.array(labels)


def validation_lesions(splits: list[CachedSplit]) -> tuple[list, np.ndarray]:
    """The validation splits' lesion images, as they are, and whether each is malignant (both modes)."""
    pairs = [lesion_views(split, 0, np.random.default_rng(0), 0) for split in splits]  # no views: no draws
    return [im for imgs, _ in pairs for im in imgs], np.concatenate([y for _, y in pairs])


def train_head(feats: torch.Tensor, y: torch.Tensor, wp: float, epochs: int = 60, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    head = nn.Sequential(nn.Linear(feats.shape[1], 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, 1))
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        head.train()
        for idx in torch.randperm(len(y), generator=g).split(64):
            loss = 1.5 * weighted_bce_with_logits(head(feats[idx])[:, 0], y[idx], wp)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head.eval()


def finetune_rows(args: argparse.Namespace) -> tuple[list[dict], int, int]:
    """Per Wp, the whole network fine-tuned ``--finetune-epochs`` from ``--checkpoint`` (train.py), then
    its malignancy output scored on the validation lesion images. Rows, validation and training counts."""
    init = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    # the checkpoint's own network and, where it recorded them, its loss and sampling (else train.py's defaults)
    arch = ["--model", init["model"], "--encoder", init["encoder"], "--mask-stride", str(init.get("mask_stride", 1)),
            *(["--decoder-widths", ",".join(map(str, init["decoder_widths"]))] if "decoder_widths" in init else []),
            *(["--dice", init["dice"]] if init.get("dice") else []),
            *(["--busi-weight", str(init["busi_weight"])] if init.get("busi_weight") else [])]
    base = [*arch, "--data", str(args.data), "--init", str(args.checkpoint), "--freeze-bn", "--lr", "3e-4",
            "--epochs", str(args.finetune_epochs), "--val-crops", "0", "--seed", "0",
            *(["--max-steps", str(args.max_steps), "--threads", "1"] if args.max_steps else [])]
    runs = Path(args.runs or tempfile.mkdtemp(prefix="wp_finetune_"))  # one train.py run per Wp
    data = load_training_data(parse_args([*base, "--out", str(runs)]))
    val_imgs, val_y = validation_lesions(list(data.val.values()))
    rows = []
    try:
        for wp in args.wp:
            out = fit(parse_args([*base, "--wp", str(wp), "--out", str(runs / f"wp{wp:g}")]), data)
            model, ckpt = load_checkpoint(out.with_name("last.pt"))  # the same epoch for every Wp: no selection
            logit = predict(model, np.stack(val_imgs), int(ckpt["size"]))[1][:, 1]
            rows.append(score_row(wp, torch.sigmoid(torch.from_numpy(logit)).numpy(), val_y))
    finally:
        if not args.runs:  # their checkpoints were only the means to the rows
            shutil.rmtree(runs, ignore_errors=True)
    return rows, len(val_y), len(data.train)


def score_row(wp: float, prob: np.ndarray, positive: np.ndarray) -> dict:
    r = rates_at(prob, positive, 0.5)
    row = {"wp": wp, "sensitivity": round(r.sensitivity, 4), "specificity": round(r.specificity, 4),
           "accuracy": round(r.accuracy, 4), "auc": round(roc_auc(prob, positive), 4)}
    print(json.dumps(row), flush=True)
    return row


def head_rows(args: argparse.Namespace) -> tuple[list[dict], int, int]:
    """Per Wp, a fresh head on the frozen network's cached features. Rows, validation and training counts."""
    model, ckpt = load_checkpoint(args.checkpoint)
    size = int(ckpt["size"])
    items = protocol_splits(args.data)
    rng = np.random.default_rng(0)
    train_imgs, train_y = lesion_views(load_split("train", items["train"]), args.views, rng, size)
    val_imgs, val_labels = validation_lesions([load_split(name, items[name]) for name in ("val_busi", "val_busbra")])
    f_train = pooled_features(model, train_imgs, size)
    f_val = pooled_features(model, val_imgs, size)
    print(f"features: train {tuple(f_train.shape)} val {tuple(f_val.shape)}", flush=True)
    rows = []
    for wp in args.wp:
        head = train_head(f_train, torch.from_numpy(train_y.astype(np.float32)), wp)
        with torch.no_grad():
            prob = torch.sigmoid(head(f_val)[:, 0]).numpy()
        rows.append(score_row(wp, prob, val_labels))
    return rows, len(val_labels), len(train_y)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--data", default=Path("../shared/data"), type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--views", type=int, default=2, help="augmented views per training image (frozen-head mode)")
    p.add_argument("--wp", type=float, nargs="+", default=[1.0, 2.0, 3.0, 5.0])
    p.add_argument("--finetune-epochs", type=int, default=0, help="fine-tune the whole network this many "
                   "epochs per Wp instead of training a head on frozen features (0: the frozen head)")
    p.add_argument("--max-steps", type=int, default=0, help="fine-tune: steps per epoch (0: all; smoke runs)")
    p.add_argument("--runs", type=Path, default=None, help="fine-tune: keep each Wp's train.py run in DIR/wpW "
                   "(default: a temporary folder, removed at the end)")
    args = p.parse_args(argv)
    t0 = time.time()
    torch.set_num_threads(2)
    rows, n_val, n_train = finetune_rows(args) if args.finetune_epochs else head_rows(args)
    paragraphs = __doc__.split("\n\n")
    result = {"protocol": paragraphs[2 if args.finetune_epochs else 1].replace("\n", " "),
              "mode": "finetune" if args.finetune_epochs else "head", "checkpoint": str(args.checkpoint),
              "finetune_epochs": args.finetune_epochs or None,
              "validation": "BUSI fold 1 + BUS-BRA kFold 1, lesion images", "n_val": int(n_val),
              ("n_train_images" if args.finetune_epochs else "n_train_views"): int(n_train), "threshold": 0.5,
              "rows": rows, "wall_s": round(time.time() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    run_script(main)
