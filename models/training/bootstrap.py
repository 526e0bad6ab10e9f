"""How much the test numbers could move by chance: bootstrap intervals on BUSI fold 0.

    python -m models.training.bootstrap --data ../shared/data --model emt_net \
        --out models/training/results/bootstrap.json

BUSI fold 0 has 157 images (88 benign, 42 malignant, 27 normal): one malignant image more or less
detected moves SEN by 2.4 pt. This scores the shipped model once per backend (FP32 ONNX Runtime,
INT8 OpenVINO) through the runtime path, then resamples the images with replacement, within each
class (so every resample keeps the class counts), ``--reps`` times, and reports the 2.5th and 97.5th
percentiles of each metric. FP32 and INT8 share the resampled indices, so the FP32 − INT8 gaps are
paired. Nothing here selects or tunes anything: it only reports.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edge_bus.engines import EngineConfig, create_engine
from edge_bus.evaluation import ImageResult, run_images
from edge_bus.metrics import rates_at, roc_auc
from edge_bus.zoo import Manifest, resolve_model
from models.training.data import protocol_splits
from models.training.script import run_script

CLASSES = ("normal", "benign", "malignant")
Metric = Callable[[Sequence[ImageResult], Manifest], float]


def _lesion(rs: Sequence[ImageResult]) -> list[ImageResult]:
    return [r for r in rs if r.label != "normal"]


def _auc(rs: Sequence[ImageResult], m: Manifest) -> float:
    les = _lesion(rs)
    return roc_auc(np.array([r.malignancy for r in les]), np.array([r.label == "malignant" for r in les]))


def _at(op: str, field: str) -> Metric:
    def metric(rs: Sequence[ImageResult], m: Manifest) -> float:
        les = _lesion(rs)
        rates = rates_at(np.array([r.malignancy for r in les]), np.array([r.label == "malignant" for r in les]),
                         m.operating_points[op].threshold)
        return float(getattr(rates, field))

    return metric


METRICS: dict[str, Metric] = {
    "dice": lambda rs, m: float(np.mean([r.dice for r in _lesion(rs)])),
    "auc": _auc,
    "sensitive_sen": _at("sensitive", "sensitivity"),
    "sensitive_spe": _at("sensitive", "specificity"),
    "normal_fp_rate": lambda rs, m: float(np.mean([r.lesion_prob >= m.lesion_threshold
                                                   for r in rs if r.label == "normal"])),
}


def resample_indices(labels: Sequence[str], reps: int, seed: int) -> np.ndarray:
    """[reps, n] indices, drawn with replacement within each class (class counts kept)."""
    rng = np.random.default_rng(seed)
    labels_a = np.asarray(labels)
    out = np.empty((reps, len(labels_a)), dtype=np.int64)
    for c in CLASSES:
        where = np.flatnonzero(labels_a == c)
        if where.size:
            out[:, where] = rng.choice(where, size=(reps, where.size), replace=True)
    return out


def interval(values: np.ndarray) -> dict[str, float]:
    lo, hi = np.percentile(values, [2.5, 97.5])
    return {"low": round(float(lo), 4), "high": round(float(hi), 4)}


def bootstrap(results: dict[str, list[ImageResult]], manifest: Manifest, reps: int = 2000,
              seed: int = 0) -> dict[str, object]:
    """Point values and 95% intervals per precision, and paired intervals of FP32 − INT8."""
    first = next(iter(results.values()))
    idx = resample_indices([r.label for r in first], reps, seed)
    out: dict[str, object] = {"reps": reps, "seed": seed, "n_images": len(first),
                              "counts": {c: sum(r.label == c for r in first) for c in CLASSES}}
    draws: dict[str, dict[str, np.ndarray]] = {}
    for prec, rs in results.items():
        assert [r.name for r in rs] == [r.name for r in first], "results must list the same images in order"
        draws[prec] = {k: np.array([f([rs[i] for i in row], manifest) for row in idx]) for k, f in METRICS.items()}
        out[prec] = {k: {"value": round(f(rs, manifest), 4), **interval(draws[prec][k])} for k, f in METRICS.items()}
    if {"fp32", "int8"} <= set(draws):
        out["fp32_minus_int8"] = {
            k: {"value": round(METRICS[k](results["fp32"], manifest) - METRICS[k](results["int8"], manifest), 4),
                **interval(draws["fp32"][k] - draws["int8"][k])}
            for k in ("dice", "auc")
        }
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--model", default="emt_net")
    p.add_argument("--reps", type=int, default=2000)
    p.add_argument("--out", type=Path, default=Path("models/training/results/bootstrap.json"))
    args = p.parse_args(argv)
    manifest = resolve_model(args.model)
    test = protocol_splits(args.data)["test"]
    results = {}
    for prec, backend in (("fp32", "onnxruntime"), ("int8", "openvino")):
        engine = create_engine(manifest, EngineConfig(backend=backend, precision=prec, hint="LATENCY"))
        try:
            results[prec] = run_images(manifest, engine, test)
        finally:
            engine.close()
    report = {"model": manifest.name, "data": "BUSI fold 0 (test)", **bootstrap(results, manifest, args.reps)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    run_script(main)
