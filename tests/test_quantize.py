"""INT8 quantisation of a mobile-style block (depthwise + pointwise convolutions): the depthwise
weights are quantised per output channel, so the OpenVINO CPU plugin runs them in INT8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import save_contract_onnx

from edge_bus.engines.openvino import kernel_precision
from edge_bus.quantize import quantize_openvino

CHANNELS = 8


def depthwise_onnx(path: Path, size: int = 32) -> Path:
    """image [1,1,S,S] → 3x3 conv (1→C) → ReLU → 3x3 depthwise conv (group C) → ReLU → 1x1 conv (C→1)
    = mask_logits; class_logits from its global mean."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(CHANNELS, 1, 3, 3)).astype(np.float32), "w_stem"),
        numpy_helper.from_array(rng.normal(size=(CHANNELS, 1, 3, 3)).astype(np.float32), "w_dw"),
        numpy_helper.from_array(rng.normal(size=(1, CHANNELS, 1, 1)).astype(np.float32), "w_pw"),
        numpy_helper.from_array(np.array([[1.0, -1.0]], np.float32), "wc"),
        numpy_helper.from_array(np.array([1, 1], np.int64), "shape"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w_stem"], ["stem"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["stem"], ["a"]),
        helper.make_node("Conv", ["a", "w_dw"], ["dw"], pads=[1, 1, 1, 1], group=CHANNELS),
        helper.make_node("Relu", ["dw"], ["b"]),
        helper.make_node("Conv", ["b", "w_pw"], ["mask_logits"]),
        helper.make_node("GlobalAveragePool", ["mask_logits"], ["pooled"]),
        helper.make_node("Reshape", ["pooled", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "wc"], ["class_logits"]),
    ]
    return save_contract_onnx(path, nodes, inits, size)


def weight_scale_shape(op) -> list[int]:  # type: ignore[no-untyped-def]
    """The shape of a quantised layer's weight ranges: a FakeQuantize's input_low, or the scale of the
    compressed form NNCF saves (int8 Constant → Convert → [Subtract] → Multiply by the scale)."""
    node = op.input(1).get_source_output().get_node()
    while node.get_type_name() == "Reshape":
        node = node.input(0).get_source_output().get_node()
    if node.get_type_name() == "FakeQuantize":
        return list(node.input(1).get_source_output().get_node().get_output_shape(0))
    assert node.get_type_name() == "Multiply", node.get_type_name()
    consts = [node.input(i).get_source_output().get_node() for i in range(2)]
    scale = next(c for c in consts if c.get_type_name() == "Constant")
    return list(scale.get_output_shape(0))


def test_depthwise_weights_are_quantised_per_channel_and_run_in_int8(tmp_path: Path) -> None:
    pytest.importorskip("nncf")
    import openvino as ov

    calib = [np.random.default_rng(i).random((1, 1, 32, 32), dtype=np.float32) for i in range(4)]
    xml = quantize_openvino(depthwise_onnx(tmp_path / "dw.onnx"), calib, tmp_path / "dw_int8.xml")
    model = ov.Core().read_model(str(xml))
    dws = [op for op in model.get_ordered_ops() if op.get_type_name() == "GroupConvolution"]
    assert len(dws) == 1
    assert int(np.prod(weight_scale_shape(dws[0]))) == CHANNELS  # one range per channel, not per kernel column
    request = ov.Core().compile_model(model, "CPU", {"PERF_COUNT": "YES"}).create_infer_request()
    request.infer({0: calib[0]})
    kernels = [p.exec_type for p in request.profiling_info if p.node_type == "GroupConvolution"]
    assert kernels and all(kernel_precision(k) == "int8" for k in kernels), kernels


def test_openvino_and_nncf_telemetry_is_off_in_this_process() -> None:
    """ov.convert_model and NNCF send usage telemetry unless the user opted out; edge-bus declines it."""
    pytest.importorskip("openvino_telemetry")
    from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker

    from edge_bus.ov_privacy import disable_openvino_telemetry

    disable_openvino_telemetry()
    assert OptInChecker().check(enable_opt_in_dialog=False, disable_in_ci=False) == ConsentCheckResult.DECLINED
