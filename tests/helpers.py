"""Test helpers: a tiny two-output ONNX model (no torch) and a manifest around it — the fake engine input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge_bus.quantize import ONNX_FP32, write_manifest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def require_shared_data(path: Path = SHARED_DATA) -> Path:
    """``path`` (default ``../shared/data`` beside the checkout) if it is a folder; else skip the test,
    or fail it when ``CI=true`` (CI must have the data)."""
    if path.is_dir():
        return path
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"CI=true but the shared data folder {path} is missing — CI must provide ../shared/data")
    pytest.skip(f"needs the real data in {path} (absent on this machine)")


def tiny_onnx(path: Path, size: int = 32) -> Path:
    """A real ONNX model with the edge-bus contract: image [1,1,S,S] → mask_logits [1,1,S,S], class_logits [1,2].

    The mask is a 3x3 conv of the image (bright pixels → lesion); the class logits are global means.
    """
    from onnx import helper, numpy_helper

    w = numpy_helper.from_array(np.full((1, 1, 3, 3), 1.0, np.float32), "w")
    b = numpy_helper.from_array(np.array([-2.0], np.float32), "b")
    wc = numpy_helper.from_array(np.array([[4.0, 1.0]], np.float32), "wc")
    bc = numpy_helper.from_array(np.array([1.0, -0.5], np.float32), "bc")
    shape = numpy_helper.from_array(np.array([-1, 1], np.int64), "shape")  # any batch, as torch exports it
    nodes = [
        helper.make_node("Conv", ["image", "w", "b"], ["mask_logits"], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["mask_logits"], ["pooled"]),
        helper.make_node("Reshape", ["pooled", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "wc"], ["mm"]),
        helper.make_node("Add", ["mm", "bc"], ["class_logits"]),
    ]
    return save_contract_onnx(path, nodes, [w, b, wc, bc, shape], size)


def save_contract_onnx(path: Path, nodes: list[object], initializers: list[object], size: int = 32) -> Path:
    """Save ``nodes`` as an opset-17 ONNX model with the edge-bus contract: input ``image`` [1,1,S,S],
    outputs ``mask_logits`` [1,1,S,S] and ``class_logits`` [1,2]."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes, path.stem, [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, size, size])],
        [helper.make_tensor_value_info("mask_logits", TensorProto.FLOAT, [1, 1, size, size]),
         helper.make_tensor_value_info("class_logits", TensorProto.FLOAT, [1, 2])],
        initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def tiny_model_dir(folder: Path, size: int = 32) -> Path:
    """A model folder (FP32 ONNX + manifest) that the onnxruntime and OpenVINO fp32 engines can run."""
    folder.mkdir(parents=True, exist_ok=True)
    tiny_onnx(folder / ONNX_FP32, size)
    manifest = {
        "name": "tiny", "version": "0", "head": "presence_malignancy",
        "input": {"name": "image", "shape": [1, 1, size, size], "layout": "NCHW", "mean": 0.5, "std": 0.25},
        "outputs": {"mask": {"name": "mask_logits"}, "class": {"name": "class_logits"}},
        "thresholds": {"lesion": 0.5, "mask": 0.5, "default_operating_point": "balanced",
                       "operating_points": {"sensitive": {"threshold": 0.2}, "balanced": {"threshold": 0.5},
                                            "specific": {"threshold": 0.8}}},
        "files": {"onnx_fp32": ONNX_FP32},
    }
    write_manifest(folder, manifest)
    return folder


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Poll ``predicate`` every 10 ms until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def signal_and_wait(proc: subprocess.Popen[str], signum: int, timeout: float = 30) -> str:
    """Send ``signum`` to ``proc`` and wait for it to end; its stderr. Killed if it outlives ``timeout``."""
    try:
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=timeout)
        return str(err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
