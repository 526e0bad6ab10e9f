"""Site calibration: choose a model's thresholds on a site's own labelled images.

Thresholds tuned on one hospital's images do not carry over to another's scanner (the model card
shows BUS-BRA-tuned thresholds failing on BUSI), and a model made with ``edge-bus models quantize``
starts with placeholder thresholds of 0.5. :func:`calibrate` runs a model over labelled images
through :func:`edge_bus.evaluation.evaluate` (what ``edge-bus eval`` runs) and chooses there:

* the operating points on P(malignant | lesion), over the lesion images: ``sensitive`` (SEN ≥ 0.94,
  best SPE), ``balanced`` (max Youden J), ``specific`` (SPE ≥ 0.94, best SEN);
* the lesion threshold on P(lesion) (max Youden J of lesion vs normal images), when normal images
  are present; otherwise the model's own is kept, and the manifest says so.

It writes a copy of the model folder whose manifest carries the new thresholds, the SEN/SPE they
gave on these images and a ``site_calibration`` record (data, images, backend), and golden
references of its own for ``edge-bus doctor`` (the demo clip's labels under the new thresholds, one
per INT8 kernel class this CPU can run). The images used are then calibration data: score the
calibrated model on other images.

The shipped models' thresholds were chosen by this same function (:func:`choose_thresholds`) on
BUSI fold 1.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_bus.checks import number_or_none
from edge_bus.errors import DataError, OutputError
from edge_bus.evaluation import ImageResult, evaluate
from edge_bus.golden import GOLDEN_ROLE
from edge_bus.golden_cli import record_references
from edge_bus.metrics import choose_operating_points
from edge_bus.model_folder import check_model_out, staged_model_folder
from edge_bus.quantize import write_manifest
from edge_bus.telemetry.hardware import measured_on
from edge_bus.zoo import Manifest, resolve_model

__all__ = ["CalibrationResult", "ThresholdChange", "calibrate", "choose_thresholds"]


def choose_thresholds(results: Sequence[ImageResult], data: str, keep_lesion: float | None = None,
                      target: float = 0.94) -> dict[str, Any]:
    """The manifest's ``thresholds`` section from per-image results on calibration images.

    Needs benign and malignant images; without normal images the lesion threshold is
    ``keep_lesion`` (:class:`DataError` if that is None too)."""
    lesion = [r for r in results if r.label != "normal"]
    malignant = np.array([r.label == "malignant" for r in lesion], dtype=bool)  # bool when empty too
    if not malignant.any() or malignant.all():
        raise DataError(f"calibration needs benign and malignant images; {data} has "
                        f"{int(malignant.sum())} malignant and {int((~malignant).sum())} benign")
    ops = choose_operating_points(np.array([r.malignancy for r in lesion]), malignant, target)
    if any(r.label == "normal" for r in results):
        presence = choose_operating_points(np.array([r.lesion_prob for r in results]),
                                           np.array([r.label != "normal" for r in results]), target)["balanced"]
        lesion_threshold = round(presence.threshold, 6)
        lesion_val: dict[str, Any] = {"lesion_recall": round(presence.sensitivity, 4),
                                      "normal_flagged": round(1 - presence.specificity, 4), "data": data}
    elif keep_lesion is not None:
        lesion_threshold = keep_lesion
        lesion_val = {"data": f"kept from the model: {data} has no normal images"}
    else:
        raise DataError(f"{data} has no normal images to choose the lesion threshold on")
    return {
        "mask": 0.5,
        "lesion": lesion_threshold,
        "lesion_val": lesion_val,
        "default_operating_point": "balanced",
        "operating_points": {k: {"threshold": round(v.threshold, 6), "val_sensitivity": round(v.sensitivity, 4),
                                 "val_specificity": round(v.specificity, 4), "data": data}
                             for k, v in ops.items()},
    }


@dataclass(frozen=True)
class ThresholdChange:
    """One threshold before and after calibration, and what it gives on the calibration images
    (``evidence``: SEN / SPE for an operating point, lesion recall / normals flagged for the lesion one)."""

    name: str
    probability: str  # the probability it cuts: "P(lesion)" or "P(malignant)"
    before: float | None
    after: float
    evidence: str


@dataclass(frozen=True)
class CalibrationResult:
    """What :func:`calibrate` chose and wrote: ``thresholds`` is the new manifest section,
    ``previous`` the model's; :attr:`changes` lists them side by side."""

    model: str
    out_dir: Path
    data: str
    n_images: int
    counts: dict[str, int]
    thresholds: dict[str, Any]
    previous: dict[str, Any]
    references: tuple[str, ...] = ()  # the golden references written for doctor, a line each

    @property
    def changes(self) -> tuple[ThresholdChange, ...]:
        """The lesion threshold, then each operating point: before, after, and the evidence here."""
        lv = self.thresholds["lesion_val"]
        here = (f"lesion recall {lv['lesion_recall']} / normals flagged {lv['normal_flagged']}"
                if "lesion_recall" in lv else str(lv["data"]))
        old_ops = self.previous.get("operating_points", {})
        rows = [ThresholdChange("lesion", "P(lesion)", number_or_none(self.previous.get("lesion")),
                                float(self.thresholds["lesion"]), here)]
        for op, v in self.thresholds["operating_points"].items():
            rows.append(ThresholdChange(op, "P(malignant)", number_or_none(old_ops.get(op, {}).get("threshold")),
                                        float(v["threshold"]), f"{v['val_sensitivity']} / {v['val_specificity']}"))
        return tuple(rows)


def calibrate(model: str | None, data: Path, out: Path, folds_csv: Path | None = None, fold: int | None = None,
              backend: str = "openvino", precision: str = "int8", name: str | None = None,
              progress: Callable[[int, int], None] | None = None, overwrite: bool = False) -> CalibrationResult:
    """Choose ``model``'s thresholds on the labelled images in ``data`` (optionally one fold) and
    write the calibrated copy of the model to ``out`` (see the module doc): a new or empty folder, or
    one holding a model with ``overwrite``, replaced whole only when the copy is complete."""
    manifest = resolve_model(model)
    manifest.verify()
    out = Path(out)
    if out.resolve() == manifest.folder.resolve():
        raise OutputError(f"--out {out} is the model's own folder: calibrate into a new folder")
    check_model_out(out, overwrite)  # found before scoring every image, not after
    report = evaluate(Path(data), folds_csv, fold, str(manifest.folder), backend, precision, progress=progress,
                      crops=0)  # the lesion threshold is chosen on normal images, not on crops
    results = report.results
    thresholds = choose_thresholds(results, report.data, keep_lesion=manifest.lesion_threshold)
    with staged_model_folder(out, overwrite) as staging:
        _write_copy(manifest, staging, thresholds, {
            "data": report.data, "images": report.n_images, "counts": report.counts, "backend": backend,
            "precision": report.precision,
            "from_model": {"name": manifest.name, "version": manifest.version, "folder": str(manifest.folder)},
            "date": _dt.date.today().isoformat(),
        }, name)
        # the labels of the original's golden references came from its thresholds: the copy gets its own
        references = tuple(line.replace(str(staging), str(out)) for line in record_references(str(staging)))
    return CalibrationResult(model=name or manifest.name, out_dir=out, data=report.data, n_images=report.n_images,
                             counts=report.counts, thresholds=thresholds,
                             previous=dict(manifest.raw.get("thresholds", {})), references=references)


def _write_copy(manifest: Manifest, out: Path, thresholds: dict[str, Any], record: dict[str, Any],
                name: str | None) -> Path:
    raw = json.loads(json.dumps(manifest.raw))  # a deep copy
    raw["thresholds"] = thresholds
    # the thresholds were chosen on this CPU, with its class of INT8 kernels (the test metrics copied
    # along keep the original's; the original's record moves under site_calibration)
    record = {**record, "from_measured_on": raw.get("measured_on")}
    raw["measured_on"] = measured_on()
    raw["site_calibration"] = record
    if name:
        raw["name"] = name
    # the golden references record labels under the old thresholds: left behind (calibrate records new ones)
    raw["files"] = {role: f for role, f in manifest.files.items() if not role.startswith(GOLDEN_ROLE)}
    try:
        for fname in raw["files"].values():
            (out / fname).parent.mkdir(parents=True, exist_ok=True)  # a file in a subfolder of the model's
            shutil.copy2(manifest.folder / fname, out / fname)
        return write_manifest(out, raw)
    except OSError as exc:
        raise OutputError(f"cannot write the calibrated model to {out}: {exc.strerror or exc}") from None
