"""``edge-bus eval``: run a model over a labelled dataset through the runtime path and score it.

Each image goes through exactly what a live frame goes through (scan-area detection,
preprocess, engine, postprocess); the mask is compared at full image resolution.

Metrics (lesion = benign or malignant image):
* ``dice``, ``iou``: mean over lesion images (ungated mask: segmentation quality alone);
* ``auc``: benign vs malignant ROC AUC of P(malignant | lesion), over lesion images;
* ``operating_points``: accuracy / SEN / SPE of malignant vs benign at each manifest threshold;
* ``normal_fp_rate``: share of normal images where a lesion is detected;
* ``lesion_recall``: share of lesion images where a lesion is detected (the rest are called normal);
* ``crop_fp_rate``: share of lesion-free crops of the lesion images (normal tissue from every
  scanner in the data, :mod:`edge_bus.negatives`; ``crops`` per image, 0 = none) where a lesion is
  detected: the "no lesion" answer checked on scanners that gave no normal images;
* ``accuracy_3class``: normal / benign / malignant accuracy at the default operating point
  (only where normals are present).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from edge_bus import __version__
from edge_bus.datasets import CLASSES, LabeledImage, busbra_mask, read_dataset
from edge_bus.engines import Engine, EngineConfig, create_engine
from edge_bus.errors import ConfigError, DataError, SourceError
from edge_bus.eval_report import case_picture, crop_picture, write_eval_html
from edge_bus.metrics import BinaryRates, dice, iou, rates_at, roc_auc
from edge_bus.metrics import round_or_none as _r  # NaN → null
from edge_bus.negatives import lesion_free_crops
from edge_bus.postprocess import PostprocessConfig, Postprocessor, class_probs
from edge_bus.preprocess import MIN_FRAME_SIDE, Preprocessor, detect_scan_area
from edge_bus.sinks.files import atomic_write_text, check_report_paths
from edge_bus.telemetry.hardware import kernel_class
from edge_bus.types import ROI, Prediction
from edge_bus.zoo import Manifest, resolve_model

T = TypeVar("T")


@dataclass(frozen=True)
class ImageResult:
    name: str
    label: str
    lesion_prob: float
    malignancy: float
    predicted: str
    dice: float | None
    iou: float | None
    device: str | None = None  # the scanner, where the dataset names it
    crop_lesion_probs: tuple[float, ...] = ()  # P(lesion) of each lesion-free crop scored (lesion images)


@dataclass(frozen=True)
class GroupScores:
    """The scores of one group of images (one scanner): how many, Dice over its lesion images, AUC, and
    the presence answer on its lesion images and on their lesion-free crops."""

    n_images: int
    n_lesion: int
    dice: float | None
    auc: float | None
    lesion_recall: float | None = None
    n_crops: int = 0
    crop_fp_rate: float | None = None

    def to_json(self) -> dict[str, object]:
        return {"n_images": self.n_images, "n_lesion": self.n_lesion, "dice": _r(self.dice), "auc": _r(self.auc),
                "lesion_recall": _r(self.lesion_recall), "n_crops": self.n_crops,
                "crop_fp_rate": _r(self.crop_fp_rate)}


@dataclass(frozen=True)
class EvalReport:
    model: str
    backend: str
    precision: str
    data: str
    n_images: int
    counts: dict[str, int]
    dice: float | None
    iou: float | None
    auc: float | None
    normal_fp_rate: float | None
    accuracy_3class: float | None
    operating_points: dict[str, BinaryRates]
    lesion_recall: float | None = None
    n_crops: int = 0
    crop_fp_rate: float | None = None
    results: list[ImageResult] = field(default_factory=list, repr=False)
    by_device: dict[str, GroupScores] = field(default_factory=dict)  # where the images come from 2+ scanners
    lesion_threshold: float | None = None  # P(lesion) for "a lesion is found": normals flagged, lesions found
    #: where OpenVINO's INT8 kernels here are not the class the thresholds were chosen with (their
    #: numbers differ a little): what the manifest says about it; None elsewhere
    kernel_note: str | None = None
    #: the operating point the 3-class calls (confusion matrix, 3-class accuracy, the gallery's ✗) are made at
    default_operating_point: str = ""

    def to_json(self, with_images: bool = False) -> dict[str, object]:
        out: dict[str, object] = {
            "model": self.model, "backend": self.backend, "precision": self.precision, "data": self.data,
            "n_images": self.n_images, "counts": self.counts,
            "dice": _r(self.dice), "iou": _r(self.iou), "auc": _r(self.auc),
            "normal_fp_rate": _r(self.normal_fp_rate), "accuracy_3class": _r(self.accuracy_3class),
            "lesion_recall": _r(self.lesion_recall), "n_crops": self.n_crops, "crop_fp_rate": _r(self.crop_fp_rate),
            "operating_points": {k: v.to_json() for k, v in self.operating_points.items()},
            "default_operating_point": self.default_operating_point,
            "by_device": {k: v.to_json() for k, v in self.by_device.items()},
            "lesion_threshold": self.lesion_threshold, "kernel_note": self.kernel_note,
            "edge_bus_version": __version__, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        if with_images:
            out["images"] = [asdict(r) for r in self.results]
        return out


@dataclass(frozen=True)
class ScoredImage:
    """One image through the runtime path: its result, and what it was scored from (for a picture)."""

    result: ImageResult
    gray: np.ndarray
    truth: np.ndarray  # bool, at the image's size
    prediction: Prediction


def score_image(item: LabeledImage, engine: Engine, post: Postprocessor, crops: int = 0) -> ScoredImage:
    """``item`` as a live frame would go (scan area, preprocess, engine, postprocess), scored at full
    resolution; a lesion image's ``crops`` lesion-free crops too (:func:`score_lesion_free_crops`)."""
    gray, truth = item.load()
    if item.label != "normal" and not truth.any():  # scored as Dice 0, and its crops cut through the lesion
        raise DataError(f"{item.image} is a {item.label} image whose mask is empty "
                        f"({', '.join(m.name for m in item.masks)} marks no lesion pixel): Dice needs every "
                        "lesion's mask — fix the mask, or move the image out of the folder")
    if item.label != "normal" and truth.all():  # a white mask, or one whose lesion is only in its alpha
        raise DataError(f"{item.image} is a {item.label} image whose mask marks every pixel "
                        f"({', '.join(m.name for m in item.masks)}): Dice against it read 0.04 for a good "
                        "segmentation — fix the mask (white lesion on black), or move the image out of the folder")
    pre = Preprocessor(post.manifest.input)  # still images: detect the scan area per image
    try:
        tensor, meta = pre.preprocess(gray)
    except SourceError as exc:  # e.g. an image under MIN_FRAME_SIDE: say which one, as a data problem
        raise DataError(f"{item.image}: {exc}") from None
    pred = post.postprocess(engine.infer(tensor), meta)
    lesion_img = item.label != "normal"
    crop_probs = (score_lesion_free_crops(gray, truth, meta.roi, engine, post, crops, item.image.name)
                  if lesion_img else ())
    result = ImageResult(
        name=item.image.name, label=item.label, lesion_prob=pred.probs["benign"] + pred.probs["malignant"],
        malignancy=pred.malignancy, predicted=pred.label,
        dice=dice(pred.mask, truth) if lesion_img else None, iou=iou(pred.mask, truth) if lesion_img else None,
        device=item.device, crop_lesion_probs=crop_probs,
    )
    return ScoredImage(result, gray, truth, pred)


def score_lesion_free_crops(gray: np.ndarray, truth: np.ndarray, roi: ROI, engine: Engine, post: Postprocessor,
                            n: int, name: str) -> tuple[float, ...]:
    """P(lesion) of up to ``n`` squares of the image's scan area ``roi`` that miss its lesion
    (:mod:`edge_bus.negatives`; drawn from ``name``, so the same squares every run), each prepared as
    a live frame whose scan area is the whole square. Fewer when the lesion leaves no room."""
    probs = []
    for crop in lesion_free_crops(gray, truth, roi, name, n):
        if min(crop.shape[:2]) < MIN_FRAME_SIDE:
            break
        h, w = crop.shape[:2]
        tensor, meta = Preprocessor(post.manifest.input, roi=ROI(0, 0, w, h)).preprocess(crop)
        pred = post.postprocess(engine.infer(tensor), meta)
        probs.append(pred.probs["benign"] + pred.probs["malignant"])
    return tuple(probs)


def scoring_postprocessor(manifest: Manifest) -> Postprocessor:
    """The manifest's default operating point, its mask not gated by the presence answer (Dice scores
    the segmentation alone)."""
    return Postprocessor(manifest, PostprocessConfig(gate_mask=False))


def run_images(manifest: Manifest, engine: Engine, items: Sequence[LabeledImage],
               progress: Callable[[int, int], None] | None = None, crops: int = 0) -> list[ImageResult]:
    post = scoring_postprocessor(manifest)
    results = []
    for i, item in enumerate(items):
        results.append(score_image(item, engine, post, crops).result)
        if progress:
            progress(i + 1, len(items))
    return results


@dataclass(frozen=True)
class Case:
    """One image shown in the HTML report: its result and its picture."""

    result: ImageResult
    picture: bytes  # JPEG


@dataclass(frozen=True)
class CropCase:
    """A lesion-free crop shown in the HTML report: the image it was cut from, which of its crops
    (0-based), its P(lesion), and its picture (JPEG)."""

    image: str
    index: int
    lesion_prob: float
    picture: bytes


@dataclass(frozen=True)
class EvalGallery:
    """The images the HTML report shows: the lesion images with the lowest Dice, the images whose
    class is wrong and the lesion-free crops called lesion, the most confident first (``n_wrong``,
    ``n_flagged_crops``: how many in all)."""

    lowest_dice: list[Case]
    wrong_class: list[Case]
    n_wrong: int
    flagged_crops: list[CropCase] = field(default_factory=list)
    n_flagged_crops: int = 0


GALLERY_SIZE = 12
"""Images per gallery of the HTML report."""


def _confidence_in_call(r: ImageResult) -> float:
    """The probability the model gave the class it called."""
    return class_probs(r.lesion_prob, r.malignancy).get(r.predicted, 0.0)


def pick_gallery(items: Sequence[LabeledImage], results: Sequence[ImageResult], engine: Engine, manifest: Manifest,
                 size: int = GALLERY_SIZE) -> EvalGallery:
    """The report's pictures: each chosen image is scored again, as before, to draw its masks."""
    post = scoring_postprocessor(manifest)
    lesion = sorted((i for i, r in enumerate(results) if r.dice is not None), key=lambda i: (results[i].dice, i))
    wrong = [i for i, r in enumerate(results) if r.predicted != r.label]
    wrong.sort(key=lambda i: -_confidence_in_call(results[i]))

    def cases(indices: list[int]) -> list[Case]:
        return [Case(results[i], case_picture(score_image(items[i], engine, post))) for i in indices[:size]]

    flagged = sorted(((-p, i, k) for i, r in enumerate(results) for k, p in enumerate(r.crop_lesion_probs)
                      if p >= manifest.lesion_threshold))
    crops = [CropCase(results[i].name, k, -neg_p, crop_picture(cut_crop(items[i], k)))
             for neg_p, i, k in flagged[:size]]
    return EvalGallery(lowest_dice=cases(lesion), wrong_class=cases(wrong), n_wrong=len(wrong),
                       flagged_crops=crops, n_flagged_crops=len(flagged))


def cut_crop(item: LabeledImage, index: int) -> np.ndarray:
    """The ``index``-th lesion-free crop of ``item``, as :func:`score_lesion_free_crops` cut it."""
    gray, truth = item.load()
    roi = detect_scan_area(gray)  # the scan area score_image's Preprocessor found (its first frame)
    return lesion_free_crops(gray, truth, roi, item.image.name, index + 1)[index]


UNNAMED_DEVICE = "(scanner not named)"


def group_scores(results: Sequence[ImageResult], lesion_threshold: float) -> GroupScores:
    """Dice (mean over the lesion images), benign/malignant AUC, and the share of lesion images and of
    lesion-free crops with P(lesion) >= ``lesion_threshold`` (a lesion detected), of ``results``."""
    lesion = [r for r in results if r.label != "normal"]
    crops = [p for r in lesion for p in r.crop_lesion_probs]
    return GroupScores(
        n_images=len(results), n_lesion=len(lesion),
        dice=float(np.mean([r.dice for r in lesion])) if lesion else None,
        auc=roc_auc(np.array([r.malignancy for r in lesion]), np.array([r.label == "malignant" for r in lesion]))
        if lesion else None,
        lesion_recall=float(np.mean([r.lesion_prob >= lesion_threshold for r in lesion])) if lesion else None,
        n_crops=len(crops), crop_fp_rate=float(np.mean(np.array(crops) >= lesion_threshold)) if crops else None)


def by_device(results: Sequence[ImageResult], lesion_threshold: float) -> dict[str, GroupScores]:
    """Scores per scanner, the most images first, when the images come from more than one (else empty):
    a model that holds on one scanner need not hold on another."""
    groups: dict[str, list[ImageResult]] = {}
    for r in results:
        groups.setdefault(r.device or UNNAMED_DEVICE, []).append(r)
    if len(groups) < 2:
        return {}
    return {name: group_scores(rs, lesion_threshold)
            for name, rs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))}


def summarize(manifest: Manifest, results: Sequence[ImageResult], backend: str, precision: str,
              data: str) -> EvalReport:
    lesion = [r for r in results if r.label != "normal"]
    normals = [r for r in results if r.label == "normal"]
    scores = np.array([r.malignancy for r in lesion])
    positive = np.array([r.label == "malignant" for r in lesion])
    ops = {name: rates_at(scores, positive, op.threshold) for name, op in manifest.operating_points.items()}
    counts = {c: sum(r.label == c for r in results) for c in CLASSES}
    overall = group_scores(results, manifest.lesion_threshold)
    return EvalReport(
        model=manifest.name, backend=backend, precision=precision, data=data, n_images=len(results), counts=counts,
        dice=overall.dice, iou=float(np.mean([r.iou for r in lesion])) if lesion else None, auc=overall.auc,
        normal_fp_rate=(float(np.mean([r.lesion_prob >= manifest.lesion_threshold for r in normals]))
                        if normals else None),
        accuracy_3class=float(np.mean([r.predicted == r.label for r in results])) if normals else None,
        operating_points=ops, lesion_recall=overall.lesion_recall, n_crops=overall.n_crops,
        crop_fp_rate=overall.crop_fp_rate, results=list(results),
        by_device=by_device(results, manifest.lesion_threshold), lesion_threshold=manifest.lesion_threshold,
        kernel_note=manifest.cpu_class_note(kernel_class()) if backend == "openvino" and "int8" in precision else None,
        default_operating_point=manifest.default_operating_point,
    )


def require_masks(items: Sequence[LabeledImage]) -> None:
    """A :class:`DataError` naming the first lesion image without a mask file: scored against an empty
    mask it read as Dice 0 and pulled the mean down, with no word said."""
    for item in items:
        if item.image.is_dir():
            raise DataError(f"{item.image} is a folder, not an image — rename or move it out of the dataset")
        if not item.image.is_file():  # listed in bus_data.csv, missing from Images/; or a broken link
            raise DataError(f"{item.image} does not exist " + (
                "(it is listed in the dataset's index) — restore it, or remove its row" if item.source == "busbra"
                else "(a broken link?) — restore it, or remove it from the folder"))
        if item.label != "normal" and not item.masks:
            expected = (busbra_mask(item.image.parent.parent, item.image.stem) if item.source == "busbra"
                        else item.image.with_name(f"{item.image.stem}_mask.png"))
            raise DataError(f"{item.image} is a {item.label} image without a mask file ({expected}): Dice needs "
                            "every lesion's mask — restore it, or move the image out of the folder")


EVAL_CROPS = 2
"""Lesion-free crops scored per lesion image by default (``edge-bus eval --crops``)."""
MAX_EVAL_CROPS = 16


def spread(items: Sequence[T], n: int) -> list[T]:
    """``n`` of ``items``, evenly spaced over the whole list. Datasets list class folders one after
    another: the first n were one class, and a whole-number stride then [:n] cut off the last class."""
    picks = np.unique(np.linspace(0, len(items) - 1, num=min(n, len(items))).round().astype(int))
    return [items[i] for i in picks] if len(items) else []


def evaluate(data: Path, folds_csv: Path | None = None, fold: int | None = None, model: str | None = None,
             backend: str = "openvino", precision: str = "int8", json_path: Path | None = None,
             limit: int | None = None, progress: Callable[[int, int], None] | None = None,
             stride: int = 1, html_path: Path | None = None, crops: int = EVAL_CROPS) -> EvalReport:
    """Score ``model`` on a BUSI- or BUS-BRA-layout folder (optionally one fold; ``stride`` keeps every
    n-th image; ``limit`` keeps n images spread evenly over the list, so every class is in it;
    ``crops`` lesion-free crops of each lesion image, 0 for none).
    ``json_path``: the metrics and per-image results; ``html_path``: a page with the ROC curve, the
    Dice distribution and pictures of the worst images (:mod:`edge_bus.eval_report`)."""
    for name, value in (("fold", fold), ("limit", limit), ("stride", stride), ("crops", crops)):
        if value is not None and (not isinstance(value, int | np.integer) or isinstance(value, bool)):
            raise ConfigError(f"{name} must be a whole number, got {value!r}")  # fold "0" read as no images
    if fold is not None and folds_csv is None:
        raise ConfigError("--fold needs --folds (the folds CSV that says which images are in it)")
    if folds_csv is not None and fold is None:  # it was read, then every image scored: the CSV silently did nothing
        raise ConfigError("--folds needs --fold (which fold of it to score); leave both out for every image")
    if stride < 1:
        raise ConfigError(f"stride must be at least 1 (every n-th image), got {stride}")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    if not 0 <= crops <= MAX_EVAL_CROPS:
        raise ConfigError(f"--crops must be 0 to {MAX_EVAL_CROPS} (lesion-free crops per lesion image), got {crops}")
    check_report_paths(json_path, html_path)  # fail before minutes of scoring, as bench and doctor do
    engine_config = EngineConfig(backend=backend, precision=precision, hint="LATENCY")  # checked first
    manifest = resolve_model(model)
    items = read_dataset(Path(data), folds_csv, [fold] if fold is not None else None)[::stride]
    if limit:
        items = spread(items, limit)
    require_masks(items)
    engine = create_engine(manifest, engine_config)
    try:
        results = run_images(manifest, engine, items, progress, crops)
        gallery = pick_gallery(items, results, engine, manifest) if html_path is not None else None
    finally:
        engine.close()
    desc = f"{data}" + (f" fold {fold}" if fold is not None else "")
    report = summarize(manifest, results, backend, engine.precision, desc)
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(report.to_json(with_images=True), indent=2),
                          hint="choose another --json path")
    if html_path is not None and gallery is not None:
        write_eval_html(html_path, report, gallery)
    return report
