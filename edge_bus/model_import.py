"""``edge-bus models quantize``: a user's own ONNX model → the shipped form (INT8 IR + FP32 ONNX +
manifest + golden reference), which ``stream``, ``eval``, ``bench`` and ``doctor`` run.

The model is checked against :mod:`edge_bus.onnx_contract` first. Everything is built in a staging
folder beside ``--out`` that replaces it only when all of it is written (:mod:`edge_bus.model_folder`):
a failure, Ctrl-C or a kill leaves an existing ``--out`` (and the ``--onnx`` input, wherever it lies)
exactly as it was.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge_bus.engines.openvino import runtime_reason
from edge_bus.errors import ConfigError, ModelError, OutputError
from edge_bus.model_folder import check_model_out, staged_model_folder
from edge_bus.onnx_contract import check_outputs, inspect_onnx, output_producer
from edge_bus.ov_privacy import disable_openvino_telemetry
from edge_bus.preprocess import InputSpec
from edge_bus.quantize import (
    INT8_BIN,
    INT8_XML,
    ONNX_FP32,
    calibration_tensors,
    quantize_openvino,
    write_manifest,
)
from edge_bus.zoo import MANIFEST

__all__ = ["quantize_model"]


def quantize_model(onnx: Path, calib: Path, out_dir: Path, name: str | None = None, mean: float = 0.449,
                   std: float = 0.226, mask_output: str | None = None, class_output: str | None = None,
                   head: str = "presence_malignancy", limit: int = 300, golden: bool = True,
                   overwrite: bool = False) -> Path:
    """Turn a user's ONNX model into an edge-bus model folder; returns its ``manifest.json``.

    ``out_dir`` must be new or empty, or hold a model and ``overwrite`` be given; it is replaced whole
    only when the new model is complete (:mod:`edge_bus.model_folder`).

    ``golden``: also record the model's outputs on the bundled demo clip (``golden_demo.npz``, and
    ``golden_demo_<class>.npz`` for each INT8 kernel class below this CPU's), the references
    ``edge-bus doctor`` compares a machine against."""
    import onnxruntime as ort

    onnx, out_dir = Path(onnx), Path(out_dir)
    if not onnx.is_file():
        what = "is a folder, not an ONNX file" if onnx.is_dir() else "does not exist"
        raise ModelError(f"ONNX model {onnx} {what}")
    if limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    if not (math.isfinite(std) and std > 0):
        raise ConfigError(f"--std must be > 0, got {std} (use the value the model was trained with)")
    if not math.isfinite(mean):
        raise ConfigError(f"--mean must be a finite number, got {mean} (use the value the model was trained with)")
    check_model_out(out_dir, overwrite)
    try:
        session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT's own exception types
        raise ModelError(f"cannot load ONNX model {onnx}: {str(exc).splitlines()[0]}") from None
    contract = inspect_onnx(session, onnx.name, mask_output, class_output, head)
    _quiet_nncf()
    spec = InputSpec(height=contract.height, width=contract.width, mean=mean, std=std)
    tensors = calibration_tensors(calib, spec, limit)
    contract = check_outputs(contract, session, tensors[:: max(1, len(tensors) // 8)][:8], onnx.name,
                             mask_producer=output_producer(onnx, contract.mask_output),
                             class_producer=output_producer(onnx, contract.class_output))
    with staged_model_folder(out_dir, overwrite) as staging:
        try:
            _copy_onnx(onnx, staging / ONNX_FP32)
        except OSError as exc:
            raise OutputError(f"cannot write to {out_dir.parent}: {exc.strerror or exc}") from None
        try:
            quantize_openvino(onnx, tensors, staging / INT8_XML)
        except Exception as exc:  # OpenVINO: OpConversionFailure (not a RuntimeError), or writing the IR
            first = runtime_reason(exc)
            if type(exc).__name__ == "OpConversionFailure" or "conversion" in first.lower():
                raise ModelError(f"OpenVINO cannot convert {onnx.name}: {first}") from None
            if isinstance(exc, RuntimeError | OSError):
                raise OutputError(f"cannot write the INT8 model to {out_dir}: {first} (is the disk full?)") from None
            raise
        manifest = {
            "name": name or onnx.stem, "version": "1", "head": head, "architecture": "user ONNX model",
            "input": {"name": contract.input_name, "shape": [1, 1, spec.height, spec.width], "layout": "NCHW",
                      "colour": "gray", "normalisation": "(pixel / 255 - mean) / std", "mean": mean, "std": std},
            "outputs": {"mask": {"name": contract.mask_output, "shape": list(contract.mask_shape),
                                 "meaning": "lesion mask logits (any resolution: resized bilinearly to the scan area)"},
                        "class": {"name": contract.class_output, "shape": list(contract.class_shape),
                                  "meaning": f"class logits ({head})"}},
            "classes": ["normal", "benign", "malignant"],
            "thresholds": {"mask": 0.5, "lesion": 0.5, "default_operating_point": "balanced",
                           "operating_points": {"balanced": {"threshold": 0.5}}},
            "files": {"openvino_int8_xml": INT8_XML, "openvino_int8_bin": INT8_BIN, "onnx_fp32": ONNX_FP32},
            "calibration": {"folder": str(Path(calib).resolve()), "images": len(tensors)},
            "source_onnx": str(onnx.resolve()),
        }
        try:
            write_manifest(staging, manifest)
        except OSError as exc:
            raise OutputError(f"cannot write {MANIFEST} for {out_dir}: {exc.strerror or exc} (is the disk full?)") \
                from None
        if golden:
            _write_golden(staging)
    return out_dir / MANIFEST


def _write_golden(folder: Path) -> None:
    """The model's outputs on the demo clip, registered in its manifest (what ``doctor`` compares to):
    one reference per INT8 kernel class this CPU can run."""
    from edge_bus.golden_cli import record_references

    record_references(str(folder))


def _quiet_nncf() -> None:
    """NNCF logs INFO lines about ignored nodes on stdout: noise to someone quantising their model."""
    disable_openvino_telemetry()  # before NNCF's import, which starts its telemetry
    try:
        import logging

        import nncf

        nncf.set_log_level(logging.WARNING)
    except ImportError:
        pass


def _model_tensors(model: Any) -> Iterator[Any]:
    """Every TensorProto of an ONNX model: in its graph and in its local functions' nodes."""
    yield from _graph_tensors(model.graph.node, model.graph.initializer, model.graph.sparse_initializer)
    for function in model.functions:
        yield from _graph_tensors(function.node)


def _graph_tensors(nodes: Any, initializers: Any = (), sparse: Any = ()) -> Iterator[Any]:
    """The initializers (a sparse one's values and indices), the nodes' tensor attributes (a Constant's
    value), and those of their subgraphs (an If's branches, a Loop's body)."""
    yield from initializers
    for s in sparse:
        yield from (s.values, s.indices)
    for node in nodes:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for s in ([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []) + list(attr.sparse_tensors):
                yield from (s.values, s.indices)
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _graph_tensors(sub.node, sub.initializer, sub.sparse_initializer)


def _copy_onnx(src: Path, dest: Path) -> Path:
    """``src`` as one self-contained file at ``dest``: weights kept in external data files are
    inlined (a plain copy lost them, and the model then failed to load in ONNX Runtime). Raises
    ModelError for external weights ONNX's loader leaves outside (a sparse initializer's)."""
    try:
        import onnx
    except ImportError:  # onnx comes with the quantize extra (nncf); without it, a plain copy
        shutil.copyfile(src, dest)
        return dest

    def external(model: Any) -> list[str]:
        return [t.name for t in _model_tensors(model) if t.data_location == onnx.TensorProto.EXTERNAL]

    if not external(onnx.load(str(src), load_external_data=False)):
        shutil.copyfile(src, dest)
        return dest
    model = onnx.load(str(src))  # brings the external data in
    left = external(model)
    if left:
        raise ModelError(f"{src.name}: weights kept outside the file that ONNX does not load ({left[0]!r}, a sparse "
                         "tensor's) — save the model with its weights inside it (onnx.save_model without "
                         "save_as_external_data), then quantize that file")
    onnx.save_model(model, str(dest))
    return dest
