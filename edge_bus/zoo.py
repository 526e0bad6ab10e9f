"""The model zoo: manifests, and the registry of shipped models. No torch, no runtime here.

A model is a folder holding its files and a ``manifest.json``: the only way the runtime learns
about a model. The manifest gives the input contract (shape, layout, colour, normalisation),
the two outputs and their meaning, the classes, the operating-point thresholds (chosen on
validation data), the training protocol and test metrics, and the sha256 of every file.

``--model`` takes a shipped model's name (``edge-bus models list``), a model folder, or a path to
a ``manifest.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path, PureWindowsPath
from typing import Any

from edge_bus.checks import number_or_none
from edge_bus.errors import ModelError
from edge_bus.preprocess import InputSpec

#: Shipped models live in ``<repo>/models/<name>/manifest.json``; EDGE_BUS_MODELS overrides.
ZOO_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = "emt_net"
MANIFEST = "manifest.json"
#: class heads a manifest can name, and their number of class logits
HEADS = {"presence_malignancy": 2, "softmax3": 3}


@dataclass(frozen=True)
class OperatingPoint:
    """A malignancy threshold with the validation SEN/SPE it was chosen for."""

    name: str
    threshold: float
    val_sensitivity: float | None = None
    val_specificity: float | None = None


@dataclass(frozen=True)
class LesionThresholdEvidence:
    """What the lesion threshold gave on the images it was chosen on (``thresholds.lesion_val``): the
    share of lesion images where a lesion is found and of normal images flagged; None where absent."""

    data: str | None = None
    lesion_recall: float | None = None
    normal_flagged: float | None = None

    def sentence(self) -> str | None:
        """What the threshold did there, in words ("on BUSI fold 1 it found a lesion in 80.6% of the lesion
        images and flagged 0.0% of the normal ones"); None when the manifest does not say."""
        if self.lesion_recall is None or self.normal_flagged is None:
            return None
        return (f"on {self.data or 'its calibration images'} it found a lesion in {100 * self.lesion_recall:.1f}% of "
                f"the lesion images and flagged {100 * self.normal_flagged:.1f}% of the normal ones")


@dataclass(frozen=True)
class RecordedMetrics:
    """A model's recorded metrics on the test fold (BUSI fold 0) for one precision; None where absent."""

    dice: float | None = None
    auc: float | None = None
    normal_fp_rate: float | None = None
    accuracy_3class: float | None = None


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated manifest. ``folder`` is where its files live."""

    folder: Path
    name: str
    version: str
    input_name: str
    input: InputSpec
    mask_output: str
    class_output: str
    head: str
    classes: tuple[str, ...]
    lesion_threshold: float
    mask_threshold: float
    operating_points: dict[str, OperatingPoint]
    default_operating_point: str
    files: dict[str, str]  # role → file name (openvino_int8_xml, openvino_int8_bin, onnx_fp32, ...)
    sha256: dict[str, str]  # file name → hex digest
    architecture: str = "?"
    encoder: str = "?"
    test_metrics: dict[str, RecordedMetrics] = field(default_factory=dict)  # precision (fp32, int8, …) → metrics
    lesion_evidence: LesionThresholdEvidence = field(default_factory=LesionThresholdEvidence)
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def path(self, role: str) -> Path:
        try:
            return self.folder / self.files[role]
        except KeyError:
            hint = (" — run its FP32 ONNX with --precision fp32, or use --backend openvino"
                    if role == "onnx_int8_qdq" and "onnx_fp32" in self.files else "")
            raise ModelError(
                f"model {self.name!r} has no {role} file; it has: {', '.join(sorted(self.files))}{hint}"
            ) from None

    def has(self, role: str) -> bool:
        return role in self.files

    @property
    def measured_on(self) -> dict[str, Any]:
        """The CPU its thresholds and metrics were measured on (``cpu_model``, ``isa`` class,
        ``openvino``); empty for a manifest that doesn't say."""
        value = self.raw.get("measured_on")
        return dict(value) if isinstance(value, dict) else {}

    def cpu_class_note(self, isa_class_here: str) -> str | None:
        """A sentence when this CPU runs another class of INT8 kernels than the one the thresholds
        and metrics were measured with (their results differ by ~0.01 in P(malignant)), else None."""
        there = self.measured_on.get("isa")
        if not there or there == isa_class_here:
            return None
        return (f"{self.name}'s thresholds and metrics were measured with {there} INT8 kernels; this CPU runs "
                f"{isa_class_here} ones, whose INT8 results differ slightly (models/README.md: 'The same INT8 IR "
                f"on another CPU') — `edge-bus models calibrate {self.name} --data DIR` chooses thresholds here")

    def operating_point(self, name: str | None) -> OperatingPoint:
        key = name or self.default_operating_point
        try:
            return self.operating_points[key]
        except KeyError:
            valid = ", ".join(sorted(self.operating_points))
            raise ModelError(f"model {self.name!r} has no operating point {key!r}; valid: {valid}") from None

    def verify(self, roles: tuple[str, ...] | None = None) -> None:
        """Check that the files (all, or those of ``roles``) exist and match their sha256."""
        names = [self.files[r] for r in roles if r in self.files] if roles else list(self.files.values())
        for fname in names:
            path = self.folder / fname
            if not path.is_file():
                raise ModelError(f"model {self.name!r}: file {path} is missing — reinstall or re-export the model")
            expected = self.sha256.get(fname)
            if expected is None:
                raise ModelError(f"model {self.name!r} in {self.folder}: manifest has no sha256 for {fname}")
            try:
                actual = sha256_file(path)
            except OSError as exc:  # unreadable (permissions, a failing disk): one line, not a traceback
                raise ModelError(f"model {self.name!r}: cannot read {path}: {exc.strerror or exc} — check the "
                                 "file's permissions, or reinstall or re-export the model") from None
            if actual != expected:  # the folder too: a copy of a shipped model has its name
                raise ModelError(
                    f"model {self.name!r} in {self.folder}: {fname} does not match its manifest (sha256 "
                    f"{actual[:12]}… ≠ {expected[:12]}…) — the file was modified or belongs to another model"
                )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_manifest(data: dict[str, Any], folder: Path) -> Manifest:
    """Validate a manifest dict; every problem is a one-line :class:`ModelError` (a wrong type, a
    missing field, a value the runtime can't use such as ``std`` 0 or a threshold outside 0–1)."""
    where = f"manifest in {folder}"
    try:
        inp = _section(data, "input", where)
        shape = inp["shape"]
        if inp.get("layout", "NCHW") != "NCHW" or not isinstance(shape, list) or len(shape) != 4:
            raise ModelError(f"{where}: only NCHW inputs are supported, got {inp.get('layout')} {shape}")
        outs = _section(data, "outputs", where)
        head = data.get("head", "presence_malignancy")
        if head not in HEADS:
            raise ModelError(f"{where}: unknown head {head!r}; valid: {', '.join(HEADS)}")
        thresholds = _section(data, "thresholds", where, required=False)
        op_data = _section(thresholds, "operating_points", where, required=False) if "operating_points" in \
            thresholds else {"balanced": {"threshold": 0.5}}
        if not op_data:
            raise ModelError(f"{where}: thresholds.operating_points is empty — it needs at least one")
        ops = {
            str(name): OperatingPoint(str(name), _unit(_section(op_data, name, where)["threshold"],
                                                       f"operating point {name!r}", where),
                                      number_or_none(op_data[name].get("val_sensitivity")),
                                      number_or_none(op_data[name].get("val_specificity")))
            for name in op_data
        }
        default_op = str(thresholds.get("default_operating_point", next(iter(ops))))
        if default_op not in ops:
            raise ModelError(f"{where}: default_operating_point {default_op!r} is not one of {', '.join(ops)}")
        height, width, channels = int(shape[2]), int(shape[3]), int(shape[1])
        if min(height, width, channels) < 1:
            raise ModelError(f"{where}: input shape {shape} has a dimension below 1")
        if max(height, width) > MAX_INPUT_SIDE or channels > 4:  # 10^400 passed, then stream crashed in numpy
            raise ModelError(f"{where}: input shape {shape} is not an image a model takes (at most "
                             f"{MAX_INPUT_SIDE} pixels a side and 4 channels)")
        for key in ("mean", "std"):  # defaulted to 0 and 1, a hand-written manifest ran unnormalised without a word
            if key not in inp:
                raise ModelError(f"{where}: input.{key} is missing — the model's normalisation, (pixel / 255 - mean) "
                                 "/ std, must be given")
        std = _finite(inp["std"], "input std", where)
        if std <= 0:
            raise ModelError(f"{where}: input std must be > 0, got {std:g}")
        mask_threshold = _unit(thresholds.get("mask", 0.5), "mask threshold", where)
        if not 0.0 < mask_threshold < 1.0:
            raise ModelError(f"{where}: mask threshold must lie strictly between 0 and 1, got {mask_threshold:g}")
        files = {str(role): _inside(f, str(role), where) for role, f in _section(data, "files", where).items()}
        if "openvino_int8_xml" in files and "openvino_int8_bin" not in files:  # its weights, loaded and verified
            raise ModelError(f"{where}: files names openvino_int8_xml but no openvino_int8_bin (the IR's weights) — "
                             "add it, with its sha256")
        return Manifest(
            folder=folder,
            name=str(data["name"]),
            version=str(data.get("version", "0")),
            input_name=str(inp.get("name", "image")),
            input=InputSpec(height=height, width=width, channels=channels,
                            mean=_finite(inp["mean"], "input mean", where), std=std),
            mask_output=str(_section(outs, "mask", where)["name"]),
            class_output=str(_section(outs, "class", where)["name"]),
            head=head,
            classes=tuple(str(c) for c in data.get("classes", ("normal", "benign", "malignant"))),
            lesion_threshold=_unit(thresholds.get("lesion", 0.5), "lesion threshold", where),
            mask_threshold=mask_threshold,
            operating_points=ops,
            default_operating_point=default_op,
            files=files,
            # lower case: a digest from PowerShell's Get-FileHash is upper case
            sha256={str(k): str(v).lower() for k, v in _section(data, "sha256", where, required=False).items()},
            architecture=str(data.get("architecture", "?")),
            encoder=str(data.get("encoder", "?")),
            test_metrics=_test_metrics(data.get("metrics")),
            lesion_evidence=_lesion_evidence(thresholds),
            raw=data,
        )
    except ModelError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:  # Overflow: 1e400
        raise ModelError(f"{where} is invalid: missing or bad field {exc}") from None


def _inside(name: object, role: str, where: str) -> str:
    """A manifest's file name, when it lies inside the model's folder (a subfolder is fine); else a
    ModelError. ``../x.bin`` and absolute paths were loaded from elsewhere, and ``models calibrate`` wrote
    its copy of such a file beside its ``--out``, over whatever was there."""
    text = str(name)
    path = PureWindowsPath(text)  # reads both separators: its anchor is a root or a drive
    if not text or path.anchor or ".." in path.parts:
        raise ModelError(f"{where}: files.{role} is {text!r}: a model's files lie inside its folder — give a path "
                         "relative to the manifest, without '..'")
    return text


def _section(data: Any, key: str, where: str, *, required: bool = True) -> dict[str, Any]:
    """``data[key]`` when it is a JSON object; {} when absent and not ``required``; else a ModelError."""
    if not isinstance(data, dict):
        raise ModelError(f"{where} is invalid: expected an object around {key!r}, got {type(data).__name__}")
    if key not in data and not required:
        return {}
    value = data[key]
    if not isinstance(value, dict):
        raise ModelError(f"{where} is invalid: {key!r} must be an object, got {type(value).__name__}")
    return value


def _finite(value: object, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ModelError(f"{where}: {what} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ModelError(f"{where}: {what} must be a finite number, got {value!r}")
    return number


def _unit(value: object, what: str, where: str) -> float:
    """A probability threshold: a finite number in [0, 1]."""
    number = _finite(value, what, where)
    if not 0.0 <= number <= 1.0:
        raise ModelError(f"{where}: {what} must lie between 0 and 1, got {number:g}")
    return number


def _lesion_evidence(thresholds: dict[str, Any]) -> LesionThresholdEvidence:
    """``thresholds.lesion_val`` as far as the manifest has it (display only, like the test metrics)."""
    val = thresholds.get("lesion_val")
    if not isinstance(val, dict):
        return LesionThresholdEvidence()
    data = val.get("data")
    return LesionThresholdEvidence(data=str(data) if data is not None else None,
                                   lesion_recall=number_or_none(val.get("lesion_recall")),
                                   normal_flagged=number_or_none(val.get("normal_flagged")))


def _test_metrics(metrics: object) -> dict[str, RecordedMetrics]:
    """The test-fold metrics per precision, as far as the manifest has them. They are for display
    only, so a section of another shape gives none rather than making the model unusable."""
    fold0 = metrics.get("test_busi_fold0") if isinstance(metrics, dict) else None
    if not isinstance(fold0, dict):
        return {}
    names = [f.name for f in fields(RecordedMetrics)]
    return {str(key): RecordedMetrics(**{name: number_or_none(values.get(name)) for name in names})
            for key, values in fold0.items() if isinstance(values, dict)}


MAX_INPUT_SIDE = 8192
"""The largest input height or width a manifest may state."""


def load_manifest(path: Path) -> Manifest:
    path = Path(path)
    folder = path.parent if path.is_file() else path
    mfile = path if path.is_file() else path / MANIFEST
    if path.is_file() and path.suffix.lower() in (".onnx", ".xml", ".bin"):
        folder_hint = (f"give its folder ({folder})" if (folder / MANIFEST).is_file() else
                       f"for your own ONNX model: edge-bus models quantize --onnx {path} --calib IMAGES --out DIR"
                       if path.suffix.lower() == ".onnx" else
                       "an OpenVINO IR needs the ONNX model it came from: edge-bus models quantize --onnx MODEL.onnx "
                       "--calib IMAGES --out DIR")
        raise ModelError(f"{path} is a model file, not a model folder: edge-bus loads a folder with a {MANIFEST} — "
                         f"{folder_hint}")
    if not mfile.is_file():
        raise ModelError(f"no {MANIFEST} in {folder} — a model folder needs its manifest")
    try:
        data = json.loads(mfile.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # Recursion: nested 10^5 deep
        raise ModelError(f"cannot read {mfile} as a model manifest: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"cannot read {mfile} as a model manifest: it holds a JSON {type(data).__name__}")
    return parse_manifest(data, folder)


def zoo_dir() -> Path:
    import os

    return Path(os.environ.get("EDGE_BUS_MODELS", ZOO_DIR))


def model_manifests(root: Path) -> list[Path]:
    """The manifest.json of each model folder under ``root``, sorted; hidden folders are not models
    (``models quantize`` / ``calibrate`` build theirs in ``.NAME.partial-*`` and a kill can leave one)."""
    return sorted(p for p in root.glob(f"*/{MANIFEST}") if not p.parent.name.startswith("."))


def list_models(root: str | os.PathLike[str] | None = None) -> list[Manifest]:
    """Every readable model under ``root``; :func:`scan_models` also gives the unreadable ones."""
    return scan_models(root).models


@dataclass(frozen=True)
class UnreadableModel:
    """A model folder whose manifest can't be read, and why."""

    folder: Path
    reason: str


@dataclass(frozen=True)
class ModelScan:
    """What a models folder holds: the readable models and the folders whose manifest is broken."""

    models: list[Manifest]
    unreadable: list[UnreadableModel]


def scan_models(root: str | os.PathLike[str] | None = None) -> ModelScan:
    """The models under ``root`` (default: the zoo), each manifest read once: one half-written
    manifest must not hide the others."""
    good: list[Manifest] = []
    broken: list[UnreadableModel] = []
    for p in model_manifests(Path(root) if root is not None else zoo_dir()):
        try:
            good.append(load_manifest(p.parent))
        except ModelError as exc:
            broken.append(UnreadableModel(p.parent, str(exc)))
    return ModelScan(good, broken)


@dataclass(frozen=True)
class ModelStatus:
    """One row of ``edge-bus models list``: a model, its INT8 test metrics, and whether its files
    match their sha256 (``problem`` is None when they do)."""

    name: str
    version: str
    architecture: str
    input_size: str
    test_dice: float | None
    test_auc: float | None
    problem: str | None


def model_statuses(root: Path | None = None) -> list[ModelStatus]:
    """Every model folder under ``root`` (default: the zoo), checked: readable models with their
    files' sha256 verified, then the unreadable ones. :class:`ModelError` if the folder is missing."""
    folder = root or zoo_dir()
    if not folder.is_dir():
        raise ModelError(f"the model folder {folder} does not exist — check EDGE_BUS_MODELS")
    scan = scan_models(folder)
    rows = []
    for m in scan.models:
        test = m.test_metrics.get("int8", RecordedMetrics())
        try:
            m.verify()
            problem = None
        except ModelError as exc:  # shown in its row: one bad model must not stop the listing
            problem = str(exc)
        rows.append(ModelStatus(m.name, m.version, m.architecture, f"{m.input.height}x{m.input.width}",
                                test.dice, test.auc, problem))
    rows += [ModelStatus(u.folder.name, "?", "?", "?", None, None, u.reason) for u in scan.unreadable]
    return rows


def checked_model(spec: str | None) -> Manifest:
    """:func:`resolve_model`, then every file checked against its sha256 (``models info``)."""
    m = resolve_model(spec)
    m.verify()
    return m


def resolve_model(spec: str | os.PathLike[str] | None) -> Manifest:
    """A shipped model name, a model folder, or a manifest path → its :class:`Manifest`."""
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if spec is not None and not isinstance(spec, str):
        raise ModelError(f"a model is given by its name or its folder (a str or a path), got {type(spec).__name__}")
    if spec is not None and not spec.strip():
        raise ModelError("the model name is empty: give a shipped name (edge-bus models list) or a model folder, or "
                         "leave it out for the default")
    spec = spec or DEFAULT_MODEL
    path = Path(spec)
    looks_like_path = path.suffix == ".json" or "/" in spec or "\\" in spec or spec.startswith(".")
    # a bare name is a folder here only when that folder is a model: a run's --out folder named emt_net
    # hid the shipped emt_net, the default model included ("no manifest.json in emt_net")
    if looks_like_path or (path / MANIFEST).is_file() or path.is_file():
        if not path.exists():
            shipped = ", ".join(p.parent.name for p in model_manifests(zoo_dir()))
            raise ModelError(f"model path {path} does not exist — give a model folder, its manifest.json, "
                             f"or a shipped name ({shipped})")
        return load_manifest(path)
    root = zoo_dir()
    folder = root / spec
    if (folder / MANIFEST).is_file():
        return load_manifest(folder)
    by_name = [m for m in list_models(root) if m.name == spec]  # the name models list shows
    if len(by_name) == 1:
        return by_name[0]
    if len(by_name) > 1:  # two `model.onnx` quantized without --name are both "model"
        folders = ", ".join(str(m.folder) for m in by_name)
        raise ModelError(f"model name {spec!r} is ambiguous: {len(by_name)} models have it ({folders}) — give "
                         "the folder instead")
    if path.exists():  # a folder (or other thing) of that name here, and no model of it anywhere
        return load_manifest(path)
    names = [p.parent.name for p in model_manifests(root)]
    raise ModelError(f"unknown model {spec!r}; shipped models: {', '.join(names) or 'none'} (or give a model folder)")
