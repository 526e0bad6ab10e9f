"""Write the measured tables of the model card (``models/README.md``) from the exported manifests,
the training histories and the Wp sweep, so every number in the card is one a script measured.

    python -m models.training.model_card --models emt_net hgm_net --out models/README.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from models.training.script import run_script
from models.training.walltime import wall_time_text

HEADER = Path(__file__).with_name("model_card_header.md")
TARGETS = {"dice": 0.82, "auc": 0.93, "sensitive_sen": 0.94, "sensitive_spe": 0.85, "normal_fp_rate": 0.10}


def _f(x: Any, pct: bool = False) -> str:
    if x is None:
        return "–"
    return f"{100 * x:.1f}" if pct else f"{x:.3f}"


def metrics_table(manifests: dict[str, dict[str, Any]]) -> str:
    rows = ["| model | precision | Dice | IoU | AUC (B vs M) | normals flagged | 3-class acc | "
            "sensitive SEN / SPE | balanced SEN / SPE | specific SEN / SPE | images |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in manifests.items():
        for key, label in (("fp32", "FP32 (ONNX Runtime)"), ("int8", "INT8 (OpenVINO)"),
                           ("ort_int8", "INT8 QDQ (ONNX Runtime)")):
            t = m.get("metrics", {}).get("test_busi_fold0", {}).get(key)
            if t is None:
                continue
            ops = t["operating_points"]
            cells = [f"{_f(ops[o]['sensitivity'])} / {_f(ops[o]['specificity'])}"
                     for o in ("sensitive", "balanced", "specific")]
            rows.append(f"| {name} | {label} | {_f(t['dice'])} | {_f(t['iou'])} | {_f(t['auc'])} | "
                        f"{_f(t['normal_fp_rate'])} | {_f(t['accuracy_3class'])} | " + " | ".join(cells)
                        + f" | {t['n_images']} |")
    return "\n".join(rows)


def accuracy_table(manifests: dict[str, dict[str, Any]]) -> str:
    rows = ["| model | precision | operating point | threshold (from BUSI fold 1) | val SEN / SPE (BUSI fold 1) | "
            "test ACC | test SEN | test SPE |", "|---|---|---|---|---|---|---|---|"]
    for name, m in manifests.items():
        ops_val = m["thresholds"]["operating_points"]
        for key in ("fp32", "int8"):
            t = m.get("metrics", {}).get("test_busi_fold0", {}).get(key)
            if t is None:
                continue
            for op, r in t["operating_points"].items():
                v = ops_val[op]
                rows.append(f"| {name} | {key.upper()} | {op} | {v['threshold']:.4f} | "
                            f"{_f(v['val_sensitivity'])} / {_f(v['val_specificity'])} | {_f(r['accuracy'])} | "
                            f"{_f(r['sensitivity'])} | {_f(r['specificity'])} |")
    return "\n".join(rows)


def training_table(manifests: dict[str, dict[str, Any]]) -> str:
    rows = ["| model | epochs to the shipped weights | training wall time | Wp | INT8 val drop (Dice / AUC) | "
            "lesion threshold | quantisation |", "|---|---|---|---|---|---|---|"]
    for name, m in manifests.items():
        tr, q = m["training"], m.get("quantization", {})
        drop = q.get("val_drop", {})
        shown = f"{drop.get('dice', 0):+.4f} / {drop.get('auc', 0):+.4f}"
        after = q.get("val_drop_after_control")
        if after:  # plain PTQ lost more than 0.5 pt: accuracy control took over
            shown = f"{after['dice']:+.4f} / {after['auc']:+.4f} (plain PTQ: {shown})"
        rows.append(f"| {name} | {tr['epochs_total']} | {wall_time_text(tr)} | "
                    f"{tr['pos_weight']} | {shown} | "
                    f"{m['thresholds']['lesion']:.4f} | {q.get('method', '?')} |")
    return "\n".join(rows)


def wp_table(wp: dict[str, Any] | None, how: str = "") -> str:
    """A Wp sweep's table (``python -m models.training.wp_sweep``, either mode), with what it was run on."""
    if wp is None:
        return f"_This Wp sweep has not been run (`python -m models.training.wp_sweep{how}`)._"
    rows = ["| Wp | SEN | SPE | ACC | AUC |", "|---|---|---|---|---|"]
    rows += [f"| {r['wp']:g} | {_f(r['sensitivity'])} | {_f(r['specificity'])} | {_f(r['accuracy'])} | "
             f"{_f(r['auc'])} |" for r in wp["rows"]]
    source = (f"the whole network fine-tuned {wp['finetune_epochs']} epochs per Wp from "
              if wp.get("mode") == "finetune" else "encoder features from ")
    return "\n".join(rows) + (f"\n\n{wp['n_val']} validation lesion images ({wp['validation']}); threshold 0.5; "
                              f"{source}`{wp.get('checkpoint', '?')}`; {wp['wall_s'] / 60:.0f} min.")


def targets_table(m: dict[str, Any]) -> str:
    t = m["metrics"]["test_busi_fold0"]["int8"]
    f = m["metrics"]["test_busi_fold0"]["fp32"]
    s = t["operating_points"]["sensitive"]
    rows = ["| target (BUSI fold 0, INT8) | goal | measured | met |", "|---|---|---|---|",
            f"| Dice on lesion images | ≥ 0.82 | {_f(t['dice'])} | {'yes' if t['dice'] >= 0.82 else 'no'} |",
            f"| benign/malignant AUC | ≥ 0.93 | {_f(t['auc'])} | {'yes' if t['auc'] >= 0.93 else 'no'} |",
            f"| `sensitive`: SEN ≥ 0.94 with SPE ≥ 0.85 | 0.94 / 0.85 | {_f(s['sensitivity'])} / "
            f"{_f(s['specificity'])} | "
            f"{'yes' if s['sensitivity'] >= 0.94 and s['specificity'] >= 0.85 else 'no'} |",
            f"| normal images flagged as lesion | ≤ 0.10 | {_f(t['normal_fp_rate'])} | "
            f"{'yes' if t['normal_fp_rate'] <= 0.10 else 'no'} |",
            f"| INT8 within 0.5 pt of FP32 (Dice, AUC): the loss, FP32 − INT8 | ≤ 0.005 | "
            f"{f['dice'] - t['dice']:+.4f}, {f['auc'] - t['auc']:+.4f} | "
            f"{'yes' if f['dice'] - t['dice'] <= 0.005 and f['auc'] - t['auc'] <= 0.005 else 'no'} |"]
    where = m.get("measured_on") or {}
    if where:
        rows += ["", f"Measured on {where.get('cpu_model', '?')} with OpenVINO {where.get('openvino', '?')} and its "
                     f"{where.get('isa', '?')} INT8 kernels (`measured_on` in the manifest; see \"The same INT8 IR "
                     "on another CPU\")."]
    return "\n".join(rows)


def comparison_text(manifests: dict[str, dict[str, Any]]) -> str:
    """Our numbers in the papers' terms, one line per model, from the manifests' test metrics."""
    lines = []
    for name, m in manifests.items():
        t = m["metrics"]["test_busi_fold0"]["int8"]
        op = m["thresholds"].get("default_operating_point", "balanced")
        r = t["operating_points"][op]
        lines.append(f"* `{name}` (INT8, BUSI fold 0, {t['n_images']} images): Dice {_f(t['dice'])}; benign vs "
                     f"malignant at `{op}` ACC {_f(r['accuracy'])}, SEN {_f(r['sensitivity'])}, SPE "
                     f"{_f(r['specificity'])}; 3-class accuracy {_f(t['accuracy_3class'])}.")
    return "\n".join(lines)


_BOOT_ROWS = (("dice", "Dice on lesion images", 0.82, True), ("auc", "benign/malignant AUC", 0.93, True),
              ("sensitive_sen", "`sensitive` SEN", 0.94, True), ("sensitive_spe", "`sensitive` SPE", 0.85, True),
              ("normal_fp_rate", "normal images flagged", 0.10, False))


def bootstrap_table(bs: dict[str, Any] | None) -> str:
    if bs is None:
        return "_The bootstrap has not been run (`python -m models.training.bootstrap`)._"
    rows = [f"| {bs['model']}, {bs['reps']} resamples | FP32 (95% interval) | INT8 (95% interval) | goal | "
            "goal vs the INT8 interval |", "|---|---|---|---|---|"]

    def where(goal: float, low: float, high: float, higher: bool) -> str:
        if low <= goal <= high:
            return "inside: within chance"
        short = high < goal if higher else low > goal
        return "outside: short of it" if short else "outside: met"

    for key, label, goal, higher in _BOOT_ROWS:
        f, t = bs["fp32"][key], bs["int8"][key]
        rows.append(f"| {label} | {_f(f['value'])} ({_f(f['low'])}–{_f(f['high'])}) | {_f(t['value'])} "
                    f"({_f(t['low'])}–{_f(t['high'])}) | {'≥' if higher else '≤'} {goal:g} | "
                    f"{where(goal, t['low'], t['high'], higher)} |")
    for key, label in (("dice", "Dice"), ("auc", "AUC")):
        g = bs["fp32_minus_int8"][key]
        rows.append(f"| FP32 − INT8 {label} (paired) | | {g['value']:+.4f} ({g['low']:+.4f} to {g['high']:+.4f}) | "
                    f"≤ 0.005 | {where(0.005, g['low'], g['high'], higher=False)} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["emt_net", "hgm_net"])
    p.add_argument("--root", type=Path, default=Path("models"))
    p.add_argument("--wp", type=Path, default=Path("models/training/results/wp_sweep.json"))
    p.add_argument("--wp-finetune", type=Path, default=Path("models/training/results/wp_finetune.json"),
                   help="the sweep that fine-tunes the whole network per Wp (wp_sweep --finetune-epochs)")
    p.add_argument("--extra", type=Path, default=Path("models/training/results/extra.md"))
    p.add_argument("--bootstrap", type=Path, default=Path("models/training/results/bootstrap.json"))
    p.add_argument("--presence", type=Path, default=Path("models/training/results/presence.md"),
                   help="the presence section (python -m models.training.presence_check)")
    p.add_argument("--duplicates", type=Path, default=Path("models/training/results/near_duplicates.md"),
                   help="the near-duplicates section (python -m models.training.near_duplicates)")
    p.add_argument("--out", type=Path, default=Path("models/README.md"))
    args = p.parse_args(argv)
    manifests = {n: json.loads((args.root / n / "manifest.json").read_text()) for n in args.models
                 if (args.root / n / "manifest.json").is_file()}
    wp, wp_ft = (json.loads(f.read_text()) if f.is_file() else None for f in (args.wp, args.wp_finetune))
    first = next(iter(manifests.values()))
    body = HEADER.read_text().format(
        targets=targets_table(first), metrics=metrics_table(manifests), accuracy=accuracy_table(manifests),
        training=training_table(manifests), wp=wp_table(wp), wp_finetune=wp_table(wp_ft, " --finetune-epochs 2"),
        comparison=comparison_text(manifests),
        bootstrap=bootstrap_table(json.loads(args.bootstrap.read_text()) if args.bootstrap.is_file() else None),
        extra=args.extra.read_text() if args.extra.is_file() else "",
        presence=args.presence.read_text() if args.presence.is_file() else "",
        duplicates=args.duplicates.read_text() if args.duplicates.is_file() else "")
    args.out.write_text(body)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_script(main)
