"""``edge-bus models``: list, inspect, quantise and calibrate models (all through manifests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from edge_bus.cli.common import console, err_console, run_or_exit
from edge_bus.telemetry.hardware import kernel_class
from edge_bus.zoo import checked_model, model_statuses

app = typer.Typer(help="List, inspect, quantise and calibrate models. A model is a folder with a manifest.json.",
                  no_args_is_help=True)


@app.command("list")
def list_cmd() -> None:
    """List the shipped models with their test metrics."""
    table = Table("name", "version", "architecture", "input", "test Dice (INT8)", "test AUC (INT8)", "files ok")
    table.columns[-1].overflow = "fold"  # a problem's path and file, whole however narrow (… hid which file)
    for r in run_or_exit(model_statuses):
        table.add_row(escape(r.name), escape(r.version), escape(r.architecture), r.input_size, _metric(r.test_dice),
                      _metric(r.test_auc), "yes" if r.problem is None else escape(f"NO: {r.problem}"))
    console.print(table)


def _metric(v: float | None) -> str:
    return "-" if v is None else str(v)


@app.command("info")
def info_cmd(
    name: Annotated[str, typer.Argument(help="Model name, folder or manifest.json")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole manifest as JSON.")] = False,
) -> None:
    """Show a model's manifest: input contract, outputs, thresholds, metrics; checks every file's sha256."""
    m = run_or_exit(checked_model, name)
    if as_json:
        console.print_json(json.dumps(m.raw))
        return
    # every value from the manifest is escaped: a name such as "[/]x" is text, not rich markup
    console.print(f"[bold]{escape(m.name)}[/] " + escape(f"{m.version} — {m.architecture} ({m.encoder}) in {m.folder}"))
    console.print(escape(f"input  {m.input_name} [1, {m.input.channels}, {m.input.height}, {m.input.width}] gray, "
                         f"(pixel/255 - {m.input.mean}) / {m.input.std}"))
    console.print(escape(f"output {m.mask_output}: mask logits; {m.class_output}: {m.head}"))
    evidence = m.lesion_evidence.sentence()
    console.print(f"lesion threshold P(lesion) >= {m.lesion_threshold:.4f}" + (f" ({evidence})" if evidence else ""),
                  markup=False)
    table = Table("operating point", "malignancy threshold", "val SEN", "val SPE")
    for op in m.operating_points.values():
        table.add_row(escape(op.name) + (" (default)" if op.name == m.default_operating_point else ""),
                      f"{op.threshold:.4f}", str(op.val_sensitivity), str(op.val_specificity))
    console.print(table)
    for key, metrics in m.test_metrics.items():
        console.print(f"test BUSI fold 0 {key}: Dice {metrics.dice} AUC {metrics.auc} "
                      f"normal flagged {metrics.normal_fp_rate} 3-class acc {metrics.accuracy_3class}")
    console.print(escape("files: " + ", ".join(f"{f} (sha256 ok)" for f in m.files.values())))
    where = m.measured_on
    if where:
        console.print(escape(f"measured on: {where.get('cpu_model', '?')} ({where.get('isa', '?')} INT8 kernels), "
                             f"OpenVINO {where.get('openvino', '?')}"))
    note = m.cpu_class_note(kernel_class())
    if note:
        console.print(f"note: {note}", style="yellow", markup=False)


@app.command("quantize")
def quantize_cmd(
    onnx: Annotated[Path, typer.Option(
        help="Your ONNX model. Input: one [1,1,H,W] grayscale crop of the scan area (fixed H and W), "
             "normalised as (pixel/255 - mean)/std. Outputs: mask logits [1,1,h,w] (no final sigmoid; any h, w) "
             "and class logits (see --head).")],
    calib: Annotated[Path, typer.Option(help="A folder of representative images (training images only).")],
    out: Annotated[Path, typer.Option(help="Output model folder.")],
    name: Annotated[str | None, typer.Option(help="Model name in the manifest \\[default: the ONNX file's name].",
                                                show_default=False)] = None,
    mean: Annotated[float, typer.Option(help="Input normalisation mean (pixel/255 scale).")] = 0.449,
    std: Annotated[float, typer.Option(help="Input normalisation std.")] = 0.226,
    limit: Annotated[int, typer.Option(help="At most this many calibration images.")] = 300,
    head: Annotated[str, typer.Option(
        help="Class output: presence_malignancy ([1,2] logits: P(lesion), P(malignant | lesion), each through a "
             "sigmoid) or softmax3 ([1,3] logits: normal, benign, malignant).")] = "presence_malignancy",
    mask_output: Annotated[str | None, typer.Option(
        help="Name of the mask output ([1,1,h,w] logits). \\[default: 'mask_logits', else the one 4-D output]",
        show_default=False)] = None,
    class_output: Annotated[str | None, typer.Option(
        help="Name of the class output. \\[default: 'class_logits', else the one 2-D output]",
        show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP)] = False,
) -> None:
    """Turn your own ONNX model into an INT8 IR + manifest that edge-bus runs (OpenVINO; ONNX Runtime
    runs its FP32 ONNX with --backend onnxruntime --precision fp32).

    The model is run once on calibration images to check the contract (see --onnx, --head) first.
    """
    from edge_bus.model_import import quantize_model

    path = run_or_exit(quantize_model, onnx, calib, out, name=name, mean=mean, std=std, limit=limit, head=head,
                       mask_output=mask_output, class_output=class_output, overwrite=overwrite)
    console.print(escape(f"wrote {path} — run it with: edge-bus stream --model {out}"))
    calibrated = out.resolve().parent / f"{out.resolve().name}_calibrated"
    console.print(escape(f"its thresholds are placeholders (0.5): choose them on labelled images with "
                         f"edge-bus models calibrate {out} --data DIR --out {calibrated}"))


@app.command("calibrate")
def calibrate_cmd(
    name: Annotated[str, typer.Argument(help="Model name, folder or manifest.json")],
    data: Annotated[Path, typer.Option(help="Labelled images from the site: a BUSI-layout folder (class folders) "
                                       "or a BUS-BRA-layout folder (Images/, Masks/, bus_data.csv).")],
    out: Annotated[Path, typer.Option(help="Folder for the calibrated copy of the model (files + manifest).")],
    folds: Annotated[Path | None, typer.Option(help="Folds CSV, to calibrate on one fold only.",
                                                  show_default=False)] = None,
    fold: Annotated[int | None, typer.Option(help="The fold to calibrate on.", show_default=False)] = None,
    backend: Annotated[str, typer.Option(help="Engine that scores the images: openvino or onnxruntime.")] = "openvino",
    precision: Annotated[str, typer.Option(help="int8, fp32 or default (calibrate what you will run).")] = "int8",
    new_name: Annotated[str | None, typer.Option("--name", help="Name in the new manifest \\[default: the model's].",
                                                    show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP)] = False,
) -> None:
    """Choose the operating points and the lesion threshold on a site's own labelled images.

    Needs benign and malignant images, each with its lesion mask (the images are scored as edge-bus eval
    scores them, Dice included). Normal images set the lesion threshold; without them the model's is kept.
    Writes a copy of the model to --out: run it with --model OUT, and score it on other images than these.
    """
    from edge_bus.calibrate import calibrate

    with Progress(console=err_console, transient=True, disable=not err_console.is_terminal) as progress:
        task = progress.add_task("scoring", total=None)
        r = run_or_exit(calibrate, name, data, out, folds, fold, backend, precision, new_name,
                        lambda i, n: progress.update(task, completed=i, total=n), overwrite=overwrite)
    console.print(f"[bold]{escape(r.model)}[/] calibrated on {escape(r.data)}: {r.n_images} images {r.counts}")
    table = Table("threshold", "before", "after", "SEN / SPE here")
    for c in r.changes:
        table.add_row(f"{c.name} ({c.probability})", _num(c.before), _num(c.after), escape(c.evidence))
    console.print(table)
    for line in r.references:  # the golden references edge-bus doctor compares with
        console.print(escape(line))
    console.print(escape(f"wrote {r.out_dir / 'manifest.json'} — run it with: edge-bus stream --model {r.out_dir}"))


OVERWRITE_HELP = ("Replace the model already in --out (only when the new one is complete; a folder holding "
                  "anything but a model is never replaced).")


def _num(v: object) -> str:
    return f"{v:.4f}" if isinstance(v, int | float) else "-"
