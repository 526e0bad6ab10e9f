"""Golden reference: what the shipped model says about the bundled demo clip, frame by frame.

:func:`make_golden` streams the demo clip through the model exactly as ``edge-bus stream --source
demo --no-video`` does (:func:`~edge_bus.pipeline.run_stream`, stream defaults) and records per
frame the label, the lesion flag, P(malignant | lesion) and the lesion mask (bit-packed), in one
compressed ``.npz`` shipped beside the model (``models/<name>/golden_demo.npz``, listed in the
manifest under the role :data:`GOLDEN_ROLE` so its sha256 is checked). ``edge-bus doctor`` runs
the clip again and :func:`compare_golden` gives the per-frame class agreement and the mean mask
IoU (over frames where either mask is non-empty).

The same INT8 IR does not compute the same masks on every CPU: OpenVINO's INT8 kernels differ by
instruction set (AVX2 against AVX512-VNNI: mask IoU 0.88 and 96% class agreement on this clip), so a
model ships one reference per INT8 kernel class it was recorded on (``meta["kernel_class"]``):
``golden_demo.npz`` (role :data:`GOLDEN_ROLE`) and ``golden_demo_<class>.npz`` (role
``golden_demo_<class>``). :func:`choose_golden` picks the one made with this machine's class.

Regenerate them whenever the model files change (``--every-class`` adds, through
``ONEDNN_MAX_CPU_ISA``, a reference for each class below this CPU's)::

    python -m edge_bus.golden --model emt_net --register --every-class
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_bus import __version__
from edge_bus.config import StreamConfig, build_config
from edge_bus.errors import ModelError
from edge_bus.pipeline import Pipeline, RunResult, run_stream
from edge_bus.sinks.files import atomic_write_bytes
from edge_bus.telemetry.hardware import kernel_class, openvino_devices
from edge_bus.types import Frame, Prediction
from edge_bus.zoo import Manifest, resolve_model

__all__ = [
    "GOLDEN_FILE",
    "GOLDEN_ROLE",
    "Golden",
    "GoldenChoice",
    "GoldenComparison",
    "choose_golden",
    "compare_golden",
    "decision_settings",
    "default_golden_path",
    "golden_path",
    "golden_paths",
    "make_golden",
    "model_fingerprint",
    "record_stream",
    "reference_class",
    "register_golden",
    "run_demo",
]

GOLDEN_ROLE = "golden_demo"
GOLDEN_FILE = "golden_demo.npz"
FORMAT = 1
_KEYS = ("frames", "labels", "lesion", "malignancy", "mask_bits", "mask_shape", "meta")


@dataclass(frozen=True, eq=False)
class Golden:
    """Per-frame predictions of one run; ``mask_bits[i]`` is frame ``frames[i]``'s mask, packed."""

    frames: np.ndarray  # int32 [n] source frame indices
    labels: tuple[str, ...]
    lesion: np.ndarray  # bool [n]
    malignancy: np.ndarray  # float32 [n]
    mask_bits: np.ndarray  # uint8 [n, ceil(h*w/8)]
    mask_shape: tuple[int, int]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def kernel_class(self) -> str | None:
        """The arithmetic it was recorded with: the INT8 kernel class on a CPU (``avx2``, ``vnni``,
        ``amx``), else the device (``GPU``); None in references made before edge-bus recorded it."""
        value = self.meta.get("kernel_class")
        return str(value) if value else None

    def mask(self, i: int) -> np.ndarray:
        """Bool mask (h, w) at position ``i``."""
        h, w = self.mask_shape
        return np.unpackbits(self.mask_bits[i], count=h * w).astype(bool).reshape(h, w)

    @classmethod
    def from_predictions(cls, items: Sequence[tuple[int, Prediction]], meta: Mapping[str, Any]) -> Golden:
        items = sorted(items, key=lambda it: it[0])
        shape = items[0][1].mask.shape if items else (0, 0)
        bits = [np.packbits(p.mask.reshape(-1).astype(bool)) for _, p in items]
        width = (shape[0] * shape[1] + 7) // 8
        return cls(
            frames=np.array([i for i, _ in items], dtype=np.int32),
            labels=tuple(p.label for _, p in items),
            lesion=np.array([p.lesion for _, p in items], dtype=bool),
            malignancy=np.array([p.malignancy for _, p in items], dtype=np.float32),
            mask_bits=np.stack(bits) if bits else np.zeros((0, width), np.uint8),
            mask_shape=(int(shape[0]), int(shape[1])),
            meta=dict(meta),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a compressed ``.npz`` atomically (an fsynced temp file beside it, then rename)."""
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            frames=self.frames,
            labels=np.array(self.labels, dtype=str),
            lesion=self.lesion,
            malignancy=self.malignancy,
            mask_bits=self.mask_bits,
            mask_shape=np.array(self.mask_shape, dtype=np.int32),
            meta=np.array(json.dumps(dict(self.meta), sort_keys=True)),
        )
        return atomic_write_bytes(path, buffer.getvalue(), "choose a writable --out path")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Golden:
        """Read a golden file; a missing or damaged one is a one-line :class:`ModelError`."""
        p = Path(path)
        hint = ("the model's maker regenerates it on a reference machine (not on the machine under test): "
                f"python -m edge_bus.golden --model {p.parent} --register")
        if not p.is_file():
            raise ModelError(f"golden reference {p} does not exist — {hint}")
        try:
            with np.load(p, allow_pickle=False) as z:
                missing = [k for k in _KEYS if k not in z.files]
                if missing:
                    raise ModelError(f"golden reference {p} lacks {', '.join(missing)} — {hint}")
                shape = tuple(int(v) for v in z["mask_shape"])
                golden = cls(
                    frames=z["frames"].astype(np.int32),
                    labels=tuple(str(s) for s in z["labels"]),
                    lesion=z["lesion"].astype(bool),
                    malignancy=z["malignancy"].astype(np.float32),
                    mask_bits=z["mask_bits"].astype(np.uint8),
                    mask_shape=(shape[0], shape[1]),
                    meta=json.loads(str(z["meta"])),
                )
        except (OSError, ValueError, KeyError, IndexError, json.JSONDecodeError) as exc:
            raise ModelError(f"golden reference {p} is unreadable ({type(exc).__name__}) — {hint}") from None
        n = len(golden.frames)
        if not (len(golden.labels) == len(golden.lesion) == len(golden.malignancy) == len(golden.mask_bits) == n):
            raise ModelError(f"golden reference {p} is inconsistent (array lengths differ) — {hint}")
        return golden


@dataclass(frozen=True)
class GoldenComparison:
    """How a run agrees with the golden reference, on the frames both have.

    ``class_agreement``: fraction of frames with the same label; ``mean_iou``: mean mask IoU over
    the ``iou_frames`` frames where either mask is non-empty (1.0 when there are none);
    ``missing``: reference frames the run does not have (compared over the rest).
    """

    frames: int
    class_agreement: float
    lesion_agreement: float
    mean_iou: float
    iou_frames: int
    max_malignancy_diff: float
    missing: int

    def to_json(self) -> dict[str, object]:
        return {
            "frames": self.frames,
            "class_agreement": round(self.class_agreement, 5),
            "lesion_agreement": round(self.lesion_agreement, 5),
            "mean_iou": round(self.mean_iou, 5),
            "iou_frames": self.iou_frames,
            "max_malignancy_diff": round(self.max_malignancy_diff, 5),
            "missing": self.missing,
        }


def _as_golden(g: Golden | str | os.PathLike[str]) -> Golden:
    return g if isinstance(g, Golden) else Golden.load(g)


def compare_golden(
    reference: Golden | str | os.PathLike[str], candidate: Golden | str | os.PathLike[str]
) -> GoldenComparison:
    """Per-frame class agreement and mean mask IoU of ``candidate`` against ``reference``.

    Frames are matched by source frame index. No common frame → agreement 0 (a failed check).
    """
    ref, cand = _as_golden(reference), _as_golden(candidate)
    if ref.mask_shape != cand.mask_shape and len(ref) and len(cand):
        raise ModelError(f"golden masks are {ref.mask_shape}, this run's are {cand.mask_shape} — regenerate the golden")
    pos = {int(f): i for i, f in enumerate(cand.frames)}
    pairs = [(i, pos[int(f)]) for i, f in enumerate(ref.frames) if int(f) in pos]
    if not pairs:
        return GoldenComparison(0, 0.0, 0.0, 0.0, 0, float("inf"), len(ref))
    same_label = sum(ref.labels[i] == cand.labels[j] for i, j in pairs)
    same_lesion = sum(bool(ref.lesion[i]) == bool(cand.lesion[j]) for i, j in pairs)
    ious = []
    for i, j in pairs:
        a, b = ref.mask_bits[i], cand.mask_bits[j]
        union = int(np.unpackbits(a | b).sum())
        if union:
            ious.append(int(np.unpackbits(a & b).sum()) / union)
    mal = np.abs(ref.malignancy[[i for i, _ in pairs]] - cand.malignancy[[j for _, j in pairs]])
    n = len(pairs)
    return GoldenComparison(
        frames=n,
        class_agreement=same_label / n,
        lesion_agreement=same_lesion / n,
        mean_iou=float(np.mean(ious)) if ious else 1.0,
        iou_frames=len(ious),
        max_malignancy_diff=float(mal.max()),
        missing=len(ref) - n,
    )


def model_fingerprint(manifest: Manifest) -> dict[str, str]:
    """sha256 (from the manifest) of every model file except golden references (of every class)."""
    golden_names = {manifest.files.get(GOLDEN_ROLE), GOLDEN_FILE}
    return {
        name: manifest.sha256.get(name, "")
        for role, name in sorted(manifest.files.items())
        if not role.startswith(GOLDEN_ROLE) and name not in golden_names and not name.endswith(".npz")
    }


def decision_settings(manifest: Manifest) -> dict[str, object]:
    """What turns the model's outputs into a golden's labels and masks: the lesion and mask thresholds
    and the default operating point's (``models calibrate`` changes them, and the labels with them)."""
    op = manifest.operating_point(None)
    return {"lesion": manifest.lesion_threshold, "mask": manifest.mask_threshold, "operating_point": op.name,
            "malignancy": op.threshold}


def golden_path(manifest: Manifest) -> Path:
    """Where the model's primary golden reference is: its manifest entry, else ``<folder>/golden_demo.npz``."""
    return manifest.folder / manifest.files.get(GOLDEN_ROLE, GOLDEN_FILE)


def golden_paths(manifest: Manifest) -> list[Path]:
    """Every golden reference of the model, the primary first (listed in the manifest or not)."""
    extra = [manifest.folder / name for role, name in sorted(manifest.files.items())
             if role.startswith(GOLDEN_ROLE + "_")]
    return [golden_path(manifest), *extra]


def reference_class(device: str = "CPU", isa: Mapping[str, object] | None = None) -> str:
    """The class of arithmetic a run on ``device`` uses: on the CPU the INT8 kernel class (``avx2``,
    ``vnni``, ``amx``; an ``ONEDNN_MAX_CPU_ISA`` cap honoured), elsewhere the device (``GPU``).
    ``AUTO`` where OpenVINO has only the CPU is the CPU."""
    name = device.upper()
    if name == "AUTO" and openvino_devices() == ["CPU"]:
        name = "CPU"
    if name != "CPU":
        return name
    return kernel_class(isa)


# The reference nearest a class without one of its own. AMX, like VNNI, adds INT8 products exactly
# (AVX2's vpmaddubsw can saturate), so its answers should be VNNI's, but no AMX CPU has confirmed it:
# it is compared at the cross-class bounds until a reference made with AMX kernels ships.
_NEAREST = {"amx": "vnni"}


@dataclass(frozen=True)
class GoldenChoice:
    """The reference :func:`choose_golden` picked: ``made_with`` its class (None: not recorded),
    ``matched`` whether that is this machine's class, so a strict comparison is fair."""

    golden: Golden
    path: Path
    made_with: str | None
    matched: bool


def _made_with(golden: Golden, manifest: Manifest, primary: bool) -> str | None:
    """The class a reference was made with; a primary that records none (made before edge-bus
    recorded it) is taken as made with the class in the manifest's ``measured_on``."""
    return golden.kernel_class or (manifest.measured_on.get("isa") if primary else None)


def choose_golden(manifest: Manifest, here: str) -> GoldenChoice:
    """The reference made with class ``here``; else the nearest class's (VNNI's for AMX), else the
    primary, both with ``matched`` False.

    A reference that records no class (made before edge-bus recorded it) is taken as made with the
    class in the manifest's ``measured_on``; with neither, as this machine's. A missing or damaged
    file is a :class:`ModelError`.
    """
    choices = []
    for i, path in enumerate(golden_paths(manifest)):
        golden = Golden.load(path)
        made_with = _made_with(golden, manifest, primary=i == 0)
        choices.append(GoldenChoice(golden, path, made_with, made_with in (None, here)))
    for wanted in (here, _NEAREST.get(here)):
        for choice in choices:
            if wanted is not None and choice.made_with == wanted:
                return choice
    return choices[0]


def default_golden_path(manifest: Manifest, here: str) -> Path:
    """Where a reference made with class ``here`` goes: the primary ``golden_demo.npz`` when the
    model has none yet or its primary was made with ``here``, else ``golden_demo_<here>.npz``."""
    primary = golden_path(manifest)
    if not primary.is_file():
        return primary
    try:
        made_with = _made_with(Golden.load(primary), manifest, primary=True)
    except ModelError:
        return primary  # a damaged primary is replaced
    return primary if made_with in (None, here) else manifest.folder / f"{GOLDEN_ROLE}_{here}.npz"


def record_stream(config: StreamConfig) -> tuple[RunResult, list[tuple[int, Prediction]]]:
    """Run the stream with ``config`` and collect every frame's :class:`Prediction` (mask included)."""
    items: list[tuple[int, Prediction]] = []

    def keep(frame: Frame, pred: Prediction) -> None:  # called on the outputs thread, in frame order
        items.append((frame.index, pred))

    def attach(p: Pipeline) -> None:
        p.outputs.add_result_sink(keep)  # beside the bridge's RESULT sender, if any

    result = run_stream(config, on_start=attach)
    return result, items


def run_demo(
    model_spec: str | None, out_dir: Path, max_frames: int = 0, device: str = "CPU"
) -> tuple[Golden, RunResult]:
    """The demo clip through the model as ``edge-bus stream --source demo --no-video`` runs it."""
    manifest = resolve_model(model_spec)
    cfg = build_config(
        model=str(manifest.folder), source="demo", video=False, out=out_dir, max_frames=max_frames, device=device
    )
    result, items = record_stream(cfg)
    meta = {
        "format": FORMAT,
        "model": manifest.name,
        "version": manifest.version,
        "model_sha256": model_fingerprint(manifest),
        "source": "demo",
        "frames": len(items),
        "backend": cfg.backend,
        "device": cfg.device,
        "precision": result.precision,
        "operating_point": result.latency.get("model", {}).get("operating_point"),
        "smoothing": cfg.smoothing,
        "kernel_class": reference_class(device),
        "decisions": decision_settings(manifest),
        "edge_bus": __version__,
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    return Golden.from_predictions(items, meta), result


def make_golden(model_spec: str | None, out_path: str | os.PathLike[str], *, max_frames: int = 0,
                device: str = "CPU") -> Golden:
    """Run the demo clip through ``model_spec`` on ``device`` and save the golden reference to ``out_path``."""
    with tempfile.TemporaryDirectory(prefix="edge-bus-golden-") as tmp:
        golden, _ = run_demo(model_spec, Path(tmp), max_frames=max_frames, device=device)
    if not len(golden):
        raise ModelError("the demo clip produced no frames — cannot make a golden reference")
    golden.save(out_path)
    return golden


def register_golden(manifest: Manifest, path: Path) -> None:
    """Record the golden file in the manifest (files + sha256) so ``verify()`` checks it too; a
    ``golden_demo_<class>.npz`` under the role ``golden_demo_<class>``, any other name as the primary."""
    from edge_bus.quantize import write_manifest

    check_registrable(manifest, path)
    data = json.loads((manifest.folder / "manifest.json").read_text())
    role = path.stem if path.stem.startswith(GOLDEN_ROLE + "_") else GOLDEN_ROLE
    data["files"][role] = path.name
    write_manifest(manifest.folder, data)


def check_registrable(manifest: Manifest, path: Path) -> None:
    """:class:`ModelError` unless a golden file at ``path`` can be recorded in ``manifest``."""
    if path.parent.resolve() != manifest.folder.resolve():
        raise ModelError(f"the golden file must be inside the model folder {manifest.folder} to be registered "
                         f"(got --out {path}): leave --out out, or give a path in that folder")


if __name__ == "__main__":  # python -m edge_bus.golden: the command line lives in edge_bus.golden_cli
    from edge_bus.golden_cli import main

    raise SystemExit(main())
