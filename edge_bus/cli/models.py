"""``edge-bus models``: list, inspect and quantise models (all through manifests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from edge_bus.cli.common import console, run_or_exit
from edge_bus.zoo import Manifest, list_models, resolve_model

app = typer.Typer(help="List, inspect and quantise models. A model is a folder with a manifest.json.",
                  no_args_is_help=True)


@app.command("list")
def list_cmd() -> None:
    """List the shipped models with their test metrics."""
    table = Table("name", "version", "architecture", "input", "test Dice (INT8)", "test AUC (INT8)", "files ok")
    for m in run_or_exit(list_models):
        test = m.raw.get("metrics", {}).get("test_busi_fold0", {}).get("int8", {})
        try:
            m.verify()
            ok = "yes"
        except Exception as exc:  # ModelError: show, don't stop the listing
            ok = f"NO: {exc}"
        table.add_row(m.name, m.version, str(m.raw.get("architecture", "?")),
                      f"{m.input.height}x{m.input.width}", str(test.get("dice", "-")), str(test.get("auc", "-")), ok)
    console.print(table)


def _info(spec: str) -> Manifest:
    m = resolve_model(spec)
    m.verify()
    return m


@app.command("info")
def info_cmd(
    name: Annotated[str, typer.Argument(help="Model name, folder or manifest.json")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole manifest as JSON.")] = False,
) -> None:
    """Show a model's manifest: input contract, outputs, thresholds, metrics; checks every file's sha256."""
    m = run_or_exit(_info, name)
    if as_json:
        console.print_json(json.dumps(m.raw))
        return
    console.print(f"[bold]{m.name}[/] {m.version} — {m.raw.get('architecture', '?')} "
                  f"({m.raw.get('encoder', '?')}) in {m.folder}")
    console.print(f"input  {m.input_name} [1, {m.input.channels}, {m.input.height}, {m.input.width}] gray, "
                  f"(pixel/255 - {m.input.mean}) / {m.input.std}")
    console.print(f"output {m.mask_output}: mask logits; {m.class_output}: {m.head}")
    console.print(f"lesion threshold P(lesion) >= {m.lesion_threshold:.3f}")
    table = Table("operating point", "malignancy threshold", "val SEN", "val SPE")
    for op in m.operating_points.values():
        table.add_row(op.name + (" (default)" if op.name == m.default_operating_point else ""),
                      f"{op.threshold:.4f}", str(op.val_sensitivity), str(op.val_specificity))
    console.print(table)
    for key, metrics in m.raw.get("metrics", {}).get("test_busi_fold0", {}).items():
        console.print(f"test BUSI fold 0 {key}: Dice {metrics.get('dice')} AUC {metrics.get('auc')} "
                      f"normal flagged {metrics.get('normal_fp_rate')} 3-class acc {metrics.get('accuracy_3class')}")
    console.print("files: " + ", ".join(f"{f} (sha256 ok)" for f in m.files.values()))


@app.command("quantize")
def quantize_cmd(
    onnx: Annotated[Path, typer.Option(
        help="Your two-output ONNX model (mask logits, class logits), input [1,1,H,W].")],
    calib: Annotated[Path, typer.Option(help="A folder of representative images (training images only).")],
    out: Annotated[Path, typer.Option(help="Output model folder.")],
    name: Annotated[str | None, typer.Option(help="Model name in the manifest [default: the ONNX file's name].",
                                                show_default=False)] = None,
    mean: Annotated[float, typer.Option(help="Input normalisation mean (pixel/255 scale).")] = 0.449,
    std: Annotated[float, typer.Option(help="Input normalisation std.")] = 0.226,
    limit: Annotated[int, typer.Option(help="At most this many calibration images.")] = 300,
) -> None:
    """Turn your own two-output ONNX model into an INT8 IR + manifest that edge-bus runs."""
    from edge_bus.quantize import quantize_model

    path = run_or_exit(quantize_model, onnx, calib, out, name=name, mean=mean, std=std, limit=limit)
    console.print(f"wrote {path} — run it with: edge-bus stream --model {out}")
