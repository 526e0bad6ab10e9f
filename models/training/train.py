"""Train a multitask lesion model on the real data (CPU is fine; a GPU is used when present).

    python -m models.training.train --model emt_net --epochs 12 --out models/training/checkpoints/emt_net

On a machine without ``../shared/data`` (a rented GPU), ``--pack DIR`` reads the splits from a portable
copy of the training cache made by ``python -m models.training.pack``.

Writes ``best.pt`` (selected on validation: Dice + benign/malignant AUC + presence AUC),
``last.pt`` and ``history.jsonl`` (one line per epoch, with wall time) into ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from edge_bus.metrics import dice, roc_auc
from models.training.data import (
    CACHE_SIZE,
    CachedSplit,
    augment,
    full_resolution_crops,
    lesion_free_crop,
    load_split,
    protocol_splits,
)
from models.training.encoders import ENCODERS
from models.training.loss import DICE_MODES, distillation_loss, multitask_loss
from models.training.networks import DECODER_WIDTHS, MODELS, create_model, load_checkpoint, upsample_to
from models.training.pack import read_pack
from models.training.script import run_script
from models.training.walltime import add_wall, device_kind

INPUT_MEAN = 0.449
INPUT_STD = 0.226


def to_tensor(batch_u8: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(batch_u8.astype(np.float32) / 255.0)[:, None]
    return ((x - INPUT_MEAN) / INPUT_STD).contiguous(memory_format=torch.channels_last)


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def pick_device(name: str) -> torch.device:
    """``auto``: the GPU when torch sees one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: torch sees no GPU here (--device cpu)")
    return torch.device(name)


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray, size: int, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Mask logits [N, size, size] and class logits [N, 2] for cached uint8 images."""
    model.eval()
    masks, logits = [], []
    for i in range(0, len(images), batch):
        chunk = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images[i : i + batch]])
        m, c = model(to_tensor(chunk).to(model_device(model)))
        masks.append(upsample_to(m, (size, size))[:, 0].cpu().numpy())
        logits.append(c.cpu().numpy())
    return np.concatenate(masks), np.concatenate(logits)


def validate(model: torch.nn.Module, splits: dict[str, CachedSplit], size: int,
             crops: np.ndarray | None = None) -> dict[str, float]:
    """Validation metrics; the pooled ``score`` selects. With ``crops`` (full-resolution lesion-free crops
    of the validation images, :func:`full_resolution_crops`), also ``crops_flagged`` (the share with
    P(lesion) > 0.5) and ``auc_presence_crops`` (the validation lesion images against them), logged only."""
    out: dict[str, float] = {}
    dices, mal_s, mal_y, pres_s, pres_y, lesion_presence = [], [], [], [], [], []
    for name, split in splits.items():
        mask_logits, logits = predict(model, split.images, size)
        lesion_presence.append(logits[split.labels > 0, 0])
        start = len(dices)
        for j in range(len(split)):
            if split.labels[j] > 0:
                truth = cv2.resize(split.masks[j], (size, size), interpolation=cv2.INTER_NEAREST)
                dices.append(dice(mask_logits[j] > 0, truth > 0))
                mal_s.append(logits[j, 1])
                mal_y.append(split.labels[j] == 2)
            if name == "val_busi":
                pres_s.append(logits[j, 0])
                pres_y.append(split.labels[j] > 0)
        site = name.removeprefix("val_")  # per-site numbers, logged only: selection uses the pooled score
        out[f"dice_{site}"] = float(np.mean(dices[start:]))
        out[f"auc_{site}"] = roc_auc(np.array(mal_s[start:]), np.array(mal_y[start:]))
        if name == "val_busi":
            normals = split.labels == 0
            out["busi_normal_flagged"] = float((logits[normals, 0] > 0).mean())
    out["dice"] = float(np.mean(dices))
    out["auc_malignant"] = roc_auc(np.array(mal_s), np.array(mal_y))
    out["auc_presence_busi"] = roc_auc(np.array(pres_s), np.array(pres_y))
    out["score"] = out["dice"] + out["auc_malignant"] + 0.5 * out["auc_presence_busi"]
    if crops is not None and len(crops):
        crop_presence = predict(model, crops, size)[1][:, 0]
        found = np.concatenate(lesion_presence)
        out["crops_flagged"] = float((crop_presence > 0).mean())
        out["auc_presence_crops"] = roc_auc(np.concatenate([found, crop_presence]),
                                            np.r_[np.ones(len(found)), np.zeros(len(crop_presence))])
    return out


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """Exponential moving average of the weights (``decay`` per step); batch-norm statistics are copied."""
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
            p_ema.mul_(decay).add_(p.detach(), alpha=1.0 - decay)
        for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)


def set_train_mode(model: torch.nn.Module, train_only: str = "", freeze_bn: bool = False) -> None:
    """Train mode for what trains: with ``train_only``, the other top-level modules stay in eval (they
    keep their batch-norm statistics and skip dropout); with ``freeze_bn``, every batch norm normalises
    by its running statistics, as in eval (a folded network's are the identity plus a bias, exact only
    so)."""
    model.train()
    for name, module in model.named_children():
        if train_only and name != train_only:
            module.eval()
    if freeze_bn:
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()


def epoch_order(split: CachedSplit, busi_weight: float, rng: np.random.Generator) -> np.ndarray:
    """One epoch's image order: a permutation, or with ``busi_weight`` ≠ 1 as many draws with
    replacement, each BUSI image ``busi_weight`` times as likely as a BUS-BRA one (the test site is
    BUSI, a quarter of the training images)."""
    if busi_weight == 1.0:
        return rng.permutation(len(split))
    w = np.where(split.sources == "busi", busi_weight, 1.0)
    return rng.choice(len(split), size=len(split), replace=True, p=w / w.sum())


def make_batch(split: CachedSplit, idx: list[int], neg_src: list[int], rng: np.random.Generator,
               size: int, crop_pool: np.ndarray | None = None) -> tuple[torch.Tensor, ...]:
    """Augmented images of ``idx`` and, as negatives, a lesion-free crop for each of ``neg_src``: cut
    from that cached image, or with ``crop_pool`` (``--crop-source full``) one drawn from the pool."""
    imgs, masks, pres, mal = [], [], [], []
    for i in idx:
        im, m = augment(split.images[i], split.masks[i], rng, size)
        imgs.append(im)
        masks.append(m)
        pres.append(float(split.labels[i] > 0))
        mal.append(float(split.labels[i] == 2))
    for i in neg_src:
        crop = (crop_pool[int(rng.integers(len(crop_pool)))] if crop_pool is not None and len(crop_pool)
                else lesion_free_crop(split.images[i], split.masks[i], rng, CACHE_CROP))
        if crop is None:
            continue
        im, m = augment(crop, np.zeros_like(crop), rng, size)
        imgs.append(im)
        masks.append(m)
        pres.append(0.0)
        mal.append(0.0)
    mask_t = torch.from_numpy(np.stack(masks).astype(np.float32))[:, None]
    return to_tensor(np.stack(imgs)), mask_t, torch.tensor(pres), torch.tensor(mal)


CACHE_CROP = 256


def load_teacher(path: str | None, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The network of a train.py checkpoint, in eval mode and without gradients, for ``--distill``."""
    if not path:
        raise SystemExit("--distill needs --teacher CHECKPOINT (a train.py or models.training.folded checkpoint)")
    teacher, ckpt = load_checkpoint(Path(path))
    for param in teacher.parameters():
        param.requires_grad_(False)
    print(f"distilling from {path} ({ckpt['model']}, {ckpt['encoder']})", flush=True)
    return teacher.to(device, memory_format=torch.channels_last).eval()


@dataclass
class TrainingData:
    """What one training run reads: the training split, the validation splits by name (``val_busi``
    also scores presence), and optionally the full-resolution crop pool and validation crops."""

    train: CachedSplit
    val: dict[str, CachedSplit]
    crop_pool: np.ndarray | None = None
    val_crops: np.ndarray | None = None


def train(args: argparse.Namespace) -> Path:
    """Train on the protocol's splits (from ``--data`` or ``--pack``); the path of the best checkpoint."""
    pick_device(args.device)  # --device cuda without a GPU: refused before minutes of data loading
    t0 = time.time()
    data = load_training_data(args)
    print(f"data ready in {time.time() - t0:.0f}s: train={len(data.train)} "
          f"val={sum(len(v) for v in data.val.values())}"
          + (f" crop pool={len(data.crop_pool)}" if data.crop_pool is not None else "")
          + (f" val crops={len(data.val_crops)}" if data.val_crops is not None else ""), flush=True)
    return fit(args, data)


def load_training_data(args: argparse.Namespace) -> TrainingData:
    """The protocol's splits from ``--pack`` (the cached crops only) or from ``--data``."""
    if args.pack:  # no raw images: no full-resolution crops either
        if args.crop_source == "full" or args.val_crops:
            raise SystemExit("--pack holds the cached crops only: use --crop-source cache --val-crops 0")
        train_split = read_pack(Path(args.pack), "train", args.cache_size)
        val = {name: read_pack(Path(args.pack), name, args.cache_size) for name in ("val_busi", "val_busbra")}
        return TrainingData(train_split, val)
    items = protocol_splits(Path(args.data))  # a wrong --data fails here, before --out is made
    train_split = load_split("train", items["train"], args.cache_size)
    val = {name: load_split(name, items[name], args.cache_size) for name in ("val_busi", "val_busbra")}
    crop_pool = (full_resolution_crops(items["train"], args.crops_per_image, CACHE_CROP)
                 if args.crop_source == "full" else None)
    val_crops = (full_resolution_crops(items["val_busi"] + items["val_busbra"], args.val_crops, args.size)
                 if args.val_crops else None)
    return TrainingData(train_split, val, crop_pool, val_crops)


def fit(args: argparse.Namespace, data: TrainingData) -> Path:
    """Train on ``data`` with the options of ``args``; ``best.pt``, ``last.pt`` and ``history.jsonl`` in
    ``args.out``. Returns the path of ``best.pt``."""
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    device = pick_device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    print(f"training on {device}", flush=True)
    train_split, val, crop_pool, val_crops = data.train, data.val, data.crop_pool, data.val_crops
    out.mkdir(parents=True, exist_ok=True)

    widths = tuple(int(w) for w in args.decoder_widths.split(","))
    model = create_model(args.model, encoder=args.encoder, mask_stride=args.mask_stride, decoder_widths=widths)
    model = model.to(memory_format=torch.channels_last)
    prior_wall_s, prior_epochs = 0.0, 0
    prior_by_device: dict[str, float] = {}  # the init's training time, per device kind (a GPU, then the CPU)
    if args.init:
        init = torch.load(args.init, map_location="cpu", weights_only=False)
        if init.get("encoder", args.encoder) != args.encoder:  # its tensors would be dropped as "new", silently
            raise SystemExit(f"--init {args.init} has the {init['encoder']} encoder; this run builds "
                             f"{args.encoder} (--encoder {init['encoder']})")
        state = init["state_dict"]
        if init.get("mask_stride", 1) != args.mask_stride:  # a new mask head: drop the old one's tensors
            state = {k: v for k, v in state.items() if not k.startswith(("decoder.final.", "decoder.mask_head."))}
            print(f"mask stride {init.get('mask_stride', 1)} → {args.mask_stride}: the mask head starts new",
                  flush=True)
        own = model.state_dict()  # tensors of another shape (a decoder of other widths) start new
        resized = [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
        state = {k: v for k, v in state.items() if k not in resized}
        if resized:
            print(f"{len(resized)} tensors of another shape start new (e.g. {resized[0]})", flush=True)
        result = model.load_state_dict(state, strict=False)
        prior_wall_s = float(init.get("train_wall_s", 0.0))
        prior_epochs = int(init.get("epochs_total", init.get("epoch", 0)))
        prior_by_device = dict(init.get("wall_s_by_device") or ({device_kind(init.get("device", "cpu")): prior_wall_s}
                                                               if prior_wall_s else {}))
        print(f"initialised from {args.init} (epoch {init.get('epoch')} of {init.get('model')}); "
              f"new tensors: {len(result.missing_keys)}, unused: {len(result.unexpected_keys)}", flush=True)
        if result.unexpected_keys:
            raise SystemExit(f"--init checkpoint has tensors this model lacks: {result.unexpected_keys[:5]}")
    if args.train_only:  # e.g. a new mask head on a trained network: everything else stays as it was
        children = [name for name, _ in model.named_children()]
        if args.train_only not in children:
            raise SystemExit(f"--train-only {args.train_only!r}: valid modules: {', '.join(children)}")
        for name, param in model.named_parameters():
            param.requires_grad_(name.startswith(args.train_only + "."))
        print(f"training only {args.train_only}: {sum(p.numel() for p in model.parameters() if p.requires_grad):,} "
              f"of {sum(p.numel() for p in model.parameters()):,} parameters", flush=True)
    model = model.to(device)
    enc_params = [p for p in model.encoder.parameters() if p.requires_grad]
    enc_ids = {id(p) for p in enc_params}
    other = [p for p in model.parameters() if id(p) not in enc_ids and p.requires_grad]
    groups = [g for g in ({"params": enc_params, "lr": args.lr * 0.5}, {"params": other, "lr": args.lr}) if g["params"]]
    opt = torch.optim.AdamW(groups, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(train_split) / args.batch)
    total = steps_per_epoch * args.epochs
    warm = max(1, steps_per_epoch // 2)  # a split of fewer than two batches: no zero division
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))

    teacher = load_teacher(args.teacher, device) if args.distill > 0 else None
    lesion_idx = [i for i in range(len(train_split)) if train_split.labels[i] > 0]
    ema = copy.deepcopy(model) if args.ema > 0 else None
    best = -1.0
    history = out / "history.jsonl"
    history.write_text("")
    if args.init and args.validate_init:  # the starting point, by the same code: epoch 0 of the history
        rec = {"epoch": 0, **{k: round(v, 4) for k, v in validate(model, val, args.size, val_crops).items()}}
        print(json.dumps(rec), flush=True)
        history.write_text(json.dumps(rec) + "\n")
    train_start = time.time()
    for epoch in range(args.epochs):
        set_train_mode(model, args.train_only, args.freeze_bn)
        order = epoch_order(train_split, args.busi_weight, rng)
        n_neg = max(1, int(args.batch * args.neg_fraction))
        e0, losses = time.time(), []
        for step in range(args.max_steps or steps_per_epoch):
            idx = [int(i) for i in order[step * args.batch : (step + 1) * args.batch]]
            negs = [int(i) for i in rng.choice(lesion_idx, n_neg)]
            x, mask, pres, mal = (t.to(device, non_blocking=True)
                                  for t in make_batch(train_split, idx, negs, rng, args.size, crop_pool))
            mask_logits, class_logits = model(x)
            coarse = getattr(model, "last_coarse", None)
            loss, parts = multitask_loss(mask_logits, class_logits, mask, pres, mal, pos_weight=args.wp,
                                         clf_weight=args.wclf, coarse_logits=coarse, pixel_bce=args.pixel_bce,
                                         dice=args.dice)
            if teacher is not None:
                with torch.no_grad():
                    t_mask, t_class = teacher(x)
                l_kd, kd_parts = distillation_loss(mask_logits, class_logits, t_mask, t_class, pres)
                loss = loss + args.distill * l_kd
                parts.update(kd_parts)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:  # a short warm-up so the first steps' random weights fade fast
                done = sched.last_epoch  # optimizer steps taken so far (the scheduler counts them)
                ema_update(ema, model, min(args.ema, done / (9 + done)))
            losses.append(float(loss.detach()))
            if step % 20 == 0:
                print(f"  epoch {epoch + 1} step {step}/{steps_per_epoch} loss {np.mean(losses[-20:]):.4f} "
                      f"{ {k: round(v, 3) for k, v in parts.items()} } {time.time() - e0:.0f}s", flush=True)
        kept = ema if ema is not None else model  # what is validated and saved
        metrics = validate(kept, val, args.size, val_crops)
        rec = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "epoch_s": round(time.time() - e0, 1),
               "wall_s": round(time.time() - train_start, 1), **{k: round(v, 4) for k, v in metrics.items()}}
        print(json.dumps(rec), flush=True)
        with open(history, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        trained_s = time.time() - train_start  # this run's own training time, in both records below
        ckpt = {"model": args.model, "encoder": args.encoder, "size": args.size, "wp": args.wp, "wclf": args.wclf,
                "lr": args.lr, "batch": args.batch,
                "mask_stride": args.mask_stride, "train_only": args.train_only or None,
                "busi_weight": args.busi_weight, "cache_size": args.cache_size,
                "ema": args.ema or None, "device": str(device), "pixel_bce": args.pixel_bce or None, "dice": args.dice,
                "decoder_widths": list(widths), "freeze_bn": args.freeze_bn or None,
                "crop_source": args.crop_source,
                "teacher": args.teacher if teacher is not None else None, "distill": args.distill or None,
                "state_dict": {k: v.cpu() for k, v in kept.state_dict().items()}, "epoch": epoch + 1, "val": metrics,
                "epochs_total": prior_epochs + epoch + 1,
                "train_wall_s": prior_wall_s + trained_s,
                "wall_s_by_device": add_wall(prior_by_device, device_kind(device), trained_s),
                "input_mean": INPUT_MEAN,
                "input_std": INPUT_STD, "init": str(args.init) if args.init else None,
                "history": [json.loads(line) for line in history.read_text().splitlines()]}
        torch.save(ckpt, out / "last.pt")
        if metrics["score"] > best:
            best = metrics["score"]
            torch.save(ckpt, out / "best.pt")
        if args.stop_epoch and epoch + 1 >= args.stop_epoch:
            print(f"stopping after epoch {epoch + 1} (--stop-epoch)", flush=True)
            break
        if args.max_minutes and (time.time() - train_start) / 60 > args.max_minutes:
            print(f"stopping: time budget of {args.max_minutes} min reached", flush=True)
            break
    return out / "best.pt"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="emt_net", choices=sorted(MODELS))
    p.add_argument("--encoder", default="efficientnet_lite0", choices=sorted(ENCODERS))
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--cache-size", type=int, default=CACHE_SIZE,
                   help="side of the cached scan-area crops the augmentation cuts --size inputs from; keep it "
                   "above --size so scale crops keep their detail (256 for 224 px)")
    p.add_argument("--mask-stride", type=int, default=2, choices=(1, 2),
                   help="mask logits at input resolution (1, LinkNet's head) or half (2, faster in INT8)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--wp", type=float, default=3.0, help="positive weight of the malignancy WBCE")
    p.add_argument("--wclf", type=float, default=1.5, help="weight of the classification loss")
    p.add_argument("--neg-fraction", type=float, default=0.2, help="lesion-free crops per batch, as a fraction")
    p.add_argument("--crop-source", default="cache", choices=("cache", "full"), help="where the lesion-free crops "
                   "come from: cut from the cached 256 px image and scaled up (blurred; the shipped models), or "
                   "cut from the full-resolution scan area and scaled down as a live frame is (a pool made at the "
                   "start, --crops-per-image of each training lesion image)")
    p.add_argument("--crops-per-image", type=int, default=4, help="--crop-source full: crops cut from each "
                   "training lesion image")
    p.add_argument("--val-crops", type=int, default=2, help="full-resolution lesion-free crops of each validation "
                   "lesion image, for the logged crops_flagged and auc_presence_crops (0: none)")
    p.add_argument("--busi-weight", type=float, default=1.0, help="sample each BUSI training image this many "
                   "times as often as a BUS-BRA one (1: a plain permutation)")
    p.add_argument("--ema", type=float, default=0.0, help="validate and save an exponential moving average of "
                   "the weights with this decay per step (0: off)")
    p.add_argument("--pixel-bce", type=float, default=0.0, help="add this weight times a per-pixel BCE of the mask "
                   "to the EMT-NET loss (0: the paper's loss)")
    p.add_argument("--decoder-widths", default=",".join(map(str, DECODER_WIDTHS)),
                   help="the LinkNet decoder's widths at strides 16, 8, 4, 2")
    p.add_argument("--dice", default="batch", choices=DICE_MODES, help="the mask's Dice loss: over the whole batch "
                   "(the paper's) or half that and half the mean of each lesion image's own")
    p.add_argument("--distill", type=float, default=0.0, help="add this weight times a distillation loss from "
                   "--teacher (BCE of presence, malignancy and mask logits against the teacher's probabilities "
                   "on the same batch; 0: off)")
    p.add_argument("--teacher", default=None, help="the checkpoint to distil from (--distill)")
    p.add_argument("--freeze-bn", action="store_true", help="keep every batch norm in eval mode while training "
                   "(running statistics, learnt scale and shift): needed to train the encoder of a folded network "
                   "(models.training.folded), whose batch norms are the identity plus a bias")
    p.add_argument("--validate-init", action="store_true", help="validate the --init weights first (epoch 0 of "
                   "the history): the fine-tune's starting point, measured the same way")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="auto", help="where to train: auto (the GPU when torch sees one), cpu, "
                   "cuda, cuda:1, ...")
    p.add_argument("--pack", default=None, help="read the splits from this portable cache (python -m "
                   "models.training.pack) instead of --data: for a machine without the raw data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", default=None, help="start from this checkpoint's weights (strict=False: an HGM-Net "
                   "can start from an EMT-NET; its Stage 1 and gates are then new)")
    p.add_argument("--train-only", default="", help="train only this top-level module (e.g. decoder); the "
                   "rest keeps its --init weights and batch-norm statistics")
    p.add_argument("--max-steps", type=int, default=0, help="steps per epoch (0: all; for smoke tests)")
    p.add_argument("--stop-epoch", type=int, default=0, help="stop after this epoch (the schedule still "
                   "spans --epochs)")
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop after the epoch that passes this")
    return p.parse_args(argv)


if __name__ == "__main__":
    run_script(lambda: train(parse_args()))
