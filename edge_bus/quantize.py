"""INT8 post-training quantisation of a two-output ONNX model (NNCF for OpenVINO, ORT QDQ).

The primitives under the training export and ``edge-bus models quantize`` (a user's own model:
:mod:`edge_bus.model_import`). Needs the ``quantize`` extra (nncf).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_bus.datasets import read_gray
from edge_bus.errors import ConfigError, DataError, SourceError
from edge_bus.ov_privacy import disable_openvino_telemetry
from edge_bus.preprocess import InputSpec, Preprocessor
from edge_bus.sinks.files import atomic_write_text
from edge_bus.zoo import MANIFEST, sha256_file

INT8_XML = "model_int8.xml"
INT8_BIN = "model_int8.bin"
ONNX_FP32 = "model_fp32.onnx"
ONNX_QDQ = "model_int8_qdq.onnx"


def _is_calibration_image(path: Path, root: Path) -> bool:
    """An image that is not a mask: BUSI's ``*_mask*.png``, BUS-BRA's ``Masks/mask_*.png``."""
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp") or path.name.startswith("."):
        return False
    stem = path.stem.lower()
    folders = {part.lower() for part in path.relative_to(root).parts[:-1]}
    return "_mask" not in stem and not stem.startswith("mask_") and "masks" not in folders


def calibration_tensors(folder: Path, spec: InputSpec, limit: int = 300) -> list[np.ndarray]:
    """Preprocessed tensors from up to ``limit`` images under a folder (masks skipped), spread evenly over
    its sorted files, as the runtime makes them."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file, not a folder of images" if folder.exists() else "does not exist"
        raise DataError(f"calibration folder {folder} {what}")
    paths = sorted(p for p in folder.rglob("*") if _is_calibration_image(p, folder))
    if not paths:
        raise DataError(f"no images (.png/.jpg/.bmp) in calibration folder {folder} (masks are skipped: *_mask*, "
                        "mask_*, Masks/)")
    # spread over the whole folder: every (n // limit)-th image, cut at the limit, took 219 benign and 81
    # malignant BUSI images and no normal one, and stopped a third of the way into BUS-BRA
    picks = np.unique(np.linspace(0, len(paths) - 1, min(limit, len(paths))).round().astype(np.int64))
    pre = Preprocessor(spec)
    tensors = []
    for path in (paths[i] for i in picks.tolist()):
        try:
            tensors.append(pre.preprocess(read_gray(path))[0])
        except SourceError as exc:  # too small to be a frame: say which file, not "check the source"
            raise DataError(f"calibration image {path}: {str(exc).split(' — ')[0]} — remove it from {folder}") from None
        except DataError as exc:  # a corrupt or truncated file: which one, and what to do
            raise DataError(f"{exc} — remove it from {folder}, or replace it") from None
    return tensors


def quantize_openvino(onnx_path: Path, tensors: Sequence[np.ndarray], out_xml: Path,
                      validate: Any = None, val_tensors: Sequence[Any] | None = None,
                      max_drop: float = 0.005, val_transform: Any = None, max_iterations: int = 8,
                      keep_fp32: Sequence[str] = ()) -> Path:
    """NNCF PTQ of the ONNX model into an INT8 IR. With ``validate`` (a callable
    ``validate(compiled_model, val_items) -> float``, higher is better) and ``val_tensors``, uses
    ``nncf.quantize_with_accuracy_control`` with ``max_drop`` instead of plain PTQ.
    ``keep_fp32``: regular expressions of node names NNCF leaves unquantised (fully matched)."""
    disable_openvino_telemetry()  # before NNCF's import, which starts its telemetry
    try:
        import nncf
    except ImportError:
        raise ConfigError("INT8 quantisation needs NNCF, in the quantize extra: from the checkout, "
                          f"{sys.executable} -m pip install -e '.[quantize]' (make test installs it too)") from None
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    # convert_model, not read_model: read_model keeps the ONNX importer's shape arithmetic (the
    # depthwise weights reach GroupConvolution through a ShapeOf/Concat-computed Reshape), NNCF then
    # quantises those weights per channel *and per kernel column* ([C,1,1,1,3] ranges), and the CPU
    # plugin runs such a depthwise convolution in f32 (brgconv_avx2_dw_f32) with reorders around it.
    # convert_model folds the shapes, so the weights get per-channel ranges and run in INT8.
    model = ov.convert_model(str(onnx_path))
    calib = nncf.Dataset(list(tensors))
    # the classifier head (two small fully-connected layers) costs nothing to keep in FP32, and
    # quantising it moved the malignancy AUC by ~1 pt on validation
    ignored = nncf.IgnoredScope(types=["MatMul"], patterns=list(keep_fp32), validate=False)
    if validate is not None and val_tensors is not None:
        q = nncf.quantize_with_accuracy_control(
            model, calib, nncf.Dataset(list(val_tensors), val_transform), validation_fn=validate, max_drop=max_drop,
            drop_type=nncf.DropType.ABSOLUTE, subset_size=len(tensors), ignored_scope=ignored,
            preset=nncf.QuantizationPreset.MIXED, fast_bias_correction=False,
            advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(max_num_iterations=max_iterations))
    else:
        # full bias correction (fast_bias_correction=False): slower to quantise, but on validation
        # (emt_net, 532 images) the INT8 drop fell from 0.21 / 0.51 pt (Dice / AUC) to 0.00 / 0.09 pt
        q = nncf.quantize(model, calib, subset_size=len(tensors), preset=nncf.QuantizationPreset.MIXED,
                          ignored_scope=ignored, fast_bias_correction=False)
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(q, str(out_xml), compress_to_fp16=False)
    return out_xml


def quantize_onnx_qdq(onnx_path: Path, tensors: Iterable[np.ndarray], out_path: Path,
                      keep_fp32: Sequence[str] = ()) -> Path:
    """ONNX Runtime static INT8 quantisation (QDQ format), for the onnxruntime-int8 backend.
    ``keep_fp32``: regular expressions of node names left unquantised (fully matched)."""
    import re

    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{name: t} for t in tensors])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    pre = out_path.with_suffix(".pre.onnx")
    quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)
    nodes = [n.name for n in onnx.load(str(pre), load_external_data=False).graph.node]
    exclude = [n for n in nodes if any(re.fullmatch(p, n) for p in keep_fp32)]
    quantize_static(str(pre), str(out_path), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    nodes_to_exclude=exclude)
    pre.unlink(missing_ok=True)
    return out_path


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> Path:
    """Fill in ``sha256`` for every file in ``manifest['files']`` and write ``manifest.json``
    atomically (fsynced temp file, then rename): never a half-written manifest after a full disk or
    a power cut, and two writers never share a temp file. :class:`OutputError` when it can't be written."""
    manifest["sha256"] = {f: sha256_file(out_dir / f) for f in manifest["files"].values()}
    return atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n",
                             hint="choose a writable model folder")
