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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
                raise ModelError(f"model {self.name!r}: manifest has no sha256 for {fname}")
            try:
                actual = sha256_file(path)
            except OSError as exc:  # unreadable (permissions, a failing disk): one line, not a traceback
                raise ModelError(f"model {self.name!r}: cannot read {path}: {exc.strerror or exc} — check the "
                                 "file's permissions, or reinstall or re-export the model") from None
            if actual != expected:
                raise ModelError(
                    f"model {self.name!r}: {fname} does not match its manifest (sha256 {actual[:12]}… ≠ "
                    f"{expected[:12]}…) — the file was modified or belongs to another model"
                )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_manifest(data: dict[str, Any], folder: Path) -> Manifest:
    """Validate a manifest dict; every problem is a one-line :class:`ModelError`."""
    try:
        inp = data["input"]
        shape = inp["shape"]
        if inp.get("layout", "NCHW") != "NCHW" or len(shape) != 4:
            raise ModelError(f"manifest in {folder}: only NCHW inputs are supported, got {inp.get('layout')} {shape}")
        outs = data["outputs"]
        head = data.get("head", "presence_malignancy")
        if head not in HEADS:
            raise ModelError(f"manifest in {folder}: unknown head {head!r}; valid: {', '.join(HEADS)}")
        thresholds = data.get("thresholds", {})
        ops = {
            name: OperatingPoint(name, float(op["threshold"]), op.get("val_sensitivity"), op.get("val_specificity"))
            for name, op in thresholds.get("operating_points", {"balanced": {"threshold": 0.5}}).items()
        }
        files = {role: str(f) for role, f in data["files"].items()}
        return Manifest(
            folder=folder,
            name=str(data["name"]),
            version=str(data.get("version", "0")),
            input_name=str(inp.get("name", "image")),
            input=InputSpec(height=int(shape[2]), width=int(shape[3]), channels=int(shape[1]),
                            mean=float(inp.get("mean", 0.0)), std=float(inp.get("std", 1.0))),
            mask_output=str(outs["mask"]["name"]),
            class_output=str(outs["class"]["name"]),
            head=head,
            classes=tuple(data.get("classes", ("normal", "benign", "malignant"))),
            lesion_threshold=float(thresholds.get("lesion", 0.5)),
            mask_threshold=float(thresholds.get("mask", 0.5)),
            operating_points=ops,
            default_operating_point=str(thresholds.get("default_operating_point", next(iter(ops)))),
            files=files,
            sha256={str(k): str(v) for k, v in data.get("sha256", {}).items()},
            raw=data,
        )
    except ModelError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelError(f"manifest in {folder} is invalid: missing or bad field {exc}") from None


def load_manifest(path: Path) -> Manifest:
    path = Path(path)
    folder = path.parent if path.is_file() else path
    mfile = path if path.is_file() else path / MANIFEST
    if path.is_file() and path.suffix.lower() in (".onnx", ".xml", ".bin"):
        raise ModelError(f"{path} is a model file, not a model folder: edge-bus loads a folder with a {MANIFEST}; "
                         f"for your own ONNX model: edge-bus models quantize --onnx {path} --calib IMAGES --out DIR")
    if not mfile.is_file():
        raise ModelError(f"no {MANIFEST} in {folder} — a model folder needs its manifest")
    try:
        data = json.loads(mfile.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {mfile} as a model manifest: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"cannot read {mfile} as a model manifest: it holds a JSON {type(data).__name__}")
    return parse_manifest(data, folder)


def zoo_dir() -> Path:
    import os

    return Path(os.environ.get("EDGE_BUS_MODELS", ZOO_DIR))


def list_models(root: Path | None = None) -> list[Manifest]:
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


def scan_models(root: Path | None = None) -> ModelScan:
    """The models under ``root`` (default: the zoo), each manifest read once: one half-written
    manifest must not hide the others."""
    good: list[Manifest] = []
    broken: list[UnreadableModel] = []
    for p in sorted((root or zoo_dir()).glob(f"*/{MANIFEST}")):
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
        test = m.raw.get("metrics", {}).get("test_busi_fold0", {}).get("int8", {})
        try:
            m.verify()
            problem = None
        except ModelError as exc:  # shown in its row: one bad model must not stop the listing
            problem = str(exc)
        rows.append(ModelStatus(m.name, m.version, str(m.raw.get("architecture", "?")),
                                f"{m.input.height}x{m.input.width}", test.get("dice"), test.get("auc"), problem))
    rows += [ModelStatus(u.folder.name, "?", "?", "?", None, None, u.reason) for u in scan.unreadable]
    return rows


def checked_model(spec: str | None) -> Manifest:
    """:func:`resolve_model`, then every file checked against its sha256 (``models info``)."""
    m = resolve_model(spec)
    m.verify()
    return m


def resolve_model(spec: str | None) -> Manifest:
    """A shipped model name, a model folder, or a manifest path → its :class:`Manifest`."""
    spec = spec or DEFAULT_MODEL
    path = Path(spec)
    looks_like_path = path.suffix == ".json" or "/" in spec or "\\" in spec or spec.startswith(".")
    if looks_like_path or path.exists():
        if not path.exists():
            shipped = ", ".join(sorted(p.parent.name for p in zoo_dir().glob(f"*/{MANIFEST}")))
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
    names = sorted(p.parent.name for p in root.glob(f"*/{MANIFEST}"))
    raise ModelError(f"unknown model {spec!r}; shipped models: {', '.join(names) or 'none'} (or give a model folder)")
