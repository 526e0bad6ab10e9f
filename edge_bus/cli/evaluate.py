"""``edge-bus eval``: score a model on a labelled dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from edge_bus.cli.common import console, err_console, run_or_exit
from edge_bus.eval_report import crops_text, metric_text
from edge_bus.evaluation import EVAL_CROPS, EvalReport, evaluate


def eval_cmd(
    data: Annotated[Path, typer.Option(help="A BUSI-layout folder (class folders with X.png + X_mask*.png) or a "
                                       "BUS-BRA-layout folder (Images/, Masks/, bus_data.csv). Every benign "
                                       "or malignant image needs its mask.")],
    folds: Annotated[Path | None, typer.Option(help="Folds CSV (BUSI folds.csv or BUS-BRA 5-fold-cv.csv).",
                                                  show_default=False)] = None,
    fold: Annotated[int | None, typer.Option(help="Keep only this fold.", show_default=False)] = None,
    model: Annotated[str | None, typer.Option(help="Model name, folder or manifest \\[default: emt_net].",
                                                 show_default=False)] = None,
    backend: Annotated[str, typer.Option(help="openvino or onnxruntime.")] = "openvino",
    precision: Annotated[str, typer.Option(help="int8, fp32 or default.")] = "int8",
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Write the metrics (and per-image results) here (its folder is created).",
        show_default=False)] = None,
    limit: Annotated[int | None, typer.Option(help="Only N images, spread over the data (every class).",
                                                   show_default=False)] = None,
    html: Annotated[Path | None, typer.Option(
        help="Write a page to look at: the ROC curve with the operating points, the normal/benign/malignant "
             "confusion table, scores per scanner, the Dice distribution, and pictures of the lesion images with the "
             "lowest Dice and of the images given the wrong class.",
        show_default=False)] = None,
    crops: Annotated[int, typer.Option(
        help="Lesion-free crops scored per lesion image (0-16): squares of the scan area that miss the lesion, "
             "normal tissue from every scanner in the data, to check the 'no lesion' answer where a dataset "
             "has no normal images (BUS-BRA). 0: none.")] = EVAL_CROPS,
) -> None:
    """Dice/IoU, benign-vs-malignant AUC, SEN/SPE per operating point, normal-image and lesion-free-crop false
    positives."""
    with Progress(console=err_console, transient=True, disable=not err_console.is_terminal) as progress:
        task = progress.add_task("evaluating", total=None)
        report = run_or_exit(evaluate, data, folds, fold, model, backend, precision, json_out, limit,
                             lambda i, n: progress.update(task, completed=i, total=n), html_path=html, crops=crops)
    print_report(report)
    if html is not None:
        console.print(f"report: {html}", markup=False)
    if report.kernel_note:  # OpenVINO INT8 only: ONNX Runtime's and the FP32 results don't depend on it
        console.print(f"note: {report.kernel_note}", style="yellow", markup=False)


def print_report(r: EvalReport) -> None:
    f = metric_text
    console.print(f"[bold]{r.model}[/] ({r.backend}, {r.precision}) on {escape(r.data)}: "
                  f"{r.n_images} images ({', '.join(f'{n} {c}' for c, n in r.counts.items())})")
    t = Table("Dice", "IoU", "AUC (B vs M)", "normals flagged", "lesions found", "crops flagged", "3-class acc")
    t.add_row(f(r.dice), f(r.iou), f(r.auc), f(r.normal_fp_rate), f(r.lesion_recall),
              crops_text(r.crop_fp_rate, r.n_crops), f(r.accuracy_3class))
    console.print(t)
    if r.n_crops:
        console.print(f"crops flagged: of {r.n_crops} lesion-free crops of the lesion images (normal tissue), "
                      "the share called lesion", style="dim", markup=False)
    ops = Table("operating point", "threshold", "accuracy", "sensitivity", "specificity")
    for name, o in r.operating_points.items():
        ops.add_row(name, f"{o.threshold:.4f}", f(o.accuracy), f(o.sensitivity), f(o.specificity))
    console.print(ops)
    if r.by_device:
        scanners = Table("scanner", "images", "lesion images", "Dice", "AUC (B vs M)", "lesions found",
                         "crops flagged")
        for name, g in r.by_device.items():
            scanners.add_row(escape(name), str(g.n_images), str(g.n_lesion), f(g.dice), f(g.auc), f(g.lesion_recall),
                             crops_text(g.crop_fp_rate, g.n_crops))
        console.print(scanners)
