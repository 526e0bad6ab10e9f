"""The INT8 layer profile: kernel precisions read from kernel names, the pure aggregation, and the
shipped model's real per-layer counters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_model_dir

from edge_bus.bench_html import _layers_section
from edge_bus.bench_profile import aggregate_layers, measure_layer_profile, op_label
from edge_bus.engines import EngineConfig, LayerTime, create_engine
from edge_bus.engines.openvino import kernel_precision
from edge_bus.errors import EngineError
from edge_bus.zoo import load_manifest, resolve_model


@pytest.mark.parametrize(("kernel", "precision"), [
    ("jit_avx2_1x1_I8", "int8"), ("brgconv_avx2_dw_f32", "f32"), ("jit_uni_U8", "int8"),
    ("brgconv_avx512_amx_bf16", "bf16"), ("ref_any_FP32", "f32"), ("unknown", "?"), ("", "?"),
])
def test_kernel_precision_reads_the_kernel_name(kernel: str, precision: str) -> None:
    assert kernel_precision(kernel) == precision


def _t(name: str, op: str, kernel: str, ms: float) -> LayerTime:
    return LayerTime(name=name, op=op, kernel=kernel, precision=kernel_precision(kernel), ms=ms)


def test_op_label_tells_pointwise_convolutions_apart() -> None:
    assert op_label(_t("a", "Convolution", "jit_avx2_1x1_I8", 1)) == "Convolution 1x1"
    assert op_label(_t("c", "Convolution", "jit_avx2_I8", 1)) == "Convolution"
    for kernel in ("brgconv_avx2_dw_f32", "jit_avx2_I8"):  # one name whatever precision ran it
        assert op_label(_t("b", "GroupConvolution", kernel, 1)) == "GroupConvolution"
    assert op_label(_t("d", "ConvolutionBackpropData", "jit_avx2_I8", 1)) == "ConvTranspose"


def test_aggregate_gives_mean_times_per_inference_and_shares_by_op_and_precision() -> None:
    run1 = [_t("pw1", "Convolution", "jit_avx2_1x1_I8", 2.0), _t("pw2", "Convolution", "jit_avx2_1x1_I8", 1.0),
            _t("dw1", "GroupConvolution", "brgconv_avx2_dw_f32", 1.0)]
    run2 = [_t("pw1", "Convolution", "jit_avx2_1x1_I8", 4.0), _t("pw2", "Convolution", "jit_avx2_1x1_I8", 1.0),
            _t("dw1", "GroupConvolution", "brgconv_avx2_dw_f32", 3.0)]
    p = aggregate_layers([run1, run2], top=2)
    assert p.runs == 2 and p.total_ms == pytest.approx(6.0)  # (4 + 8) / 2
    assert [(o.op, o.precision, o.layers) for o in p.ops] == [("Convolution 1x1", "int8", 2),
                                                              ("GroupConvolution", "f32", 1)]
    assert p.ops[0].ms == pytest.approx(4.0) and p.ops[0].share == pytest.approx(4 / 6)
    assert p.share_in("int8") + p.share_in("f32") == pytest.approx(1.0)
    assert [t.name for t in p.top_layers] == ["pw1", "dw1"] and p.top_layers[0].ms == pytest.approx(3.0)
    assert "Convolution 1x1 (int8) 4.00 ms 67%" in p.headline() and "33% in f32" in p.headline()
    doc = p.to_json()
    assert doc["int8_share"] == pytest.approx(0.6667, abs=1e-4) and len(doc["ops"]) == 2  # type: ignore[arg-type]


def test_aggregate_of_nothing_is_empty() -> None:
    p = aggregate_layers([])
    assert p.runs == 0 and p.ops == () and p.total_ms == 0.0


def test_layer_times_need_a_profiling_engine(tmp_path: Path) -> None:
    m = load_manifest(tiny_model_dir(tmp_path / "tiny"))
    for backend in ("openvino", "onnxruntime"):
        engine = create_engine(m, EngineConfig(backend=backend, precision="fp32"))
        engine.infer(np.zeros((1, 1, 32, 32), np.float32))
        with pytest.raises(EngineError, match="per-layer"):
            engine.layer_times()
        engine.close()


def test_shipped_int8_profile_shows_int8_kernels_and_renders(tmp_path: Path) -> None:
    m = resolve_model(None)
    x = np.random.default_rng(0).normal(size=(1, 1, m.input.height, m.input.width)).astype(np.float32)
    p = measure_layer_profile(m, [x], runs=3)
    assert p.runs == 3 and p.total_ms > 0
    assert p.share_in("int8") > 0.3  # most of the quantised network runs INT8 kernels
    assert any(o.op == "Convolution 1x1" and o.precision == "int8" for o in p.ops)
    assert sum(o.share for o in p.ops) == pytest.approx(1.0)
    html = _layers_section(p)
    assert "<svg" in html and "Convolution 1x1" in html and "Slowest layers" in html


def test_an_operation_in_two_precisions_names_each_bar_and_the_table_names_ops_as_the_chart() -> None:
    """Two "Convolution" bars (one INT8, one f32) were told apart by colour only, and the slowest-layers table
    said "ConvolutionBackpropData" where the chart said "ConvTranspose"."""
    run = [_t("c8", "Convolution", "jit_avx2_I8", 2.0), _t("c32", "Convolution", "brgconv_avx2_f32", 1.0),
           _t("up", "ConvolutionBackpropData", "jit_avx2_I8", 1.5)]
    html = _layers_section(aggregate_layers([run], top=3))
    assert "Convolution (int8)" in html and "Convolution (f32)" in html
    assert "ConvTranspose (" not in html and "ConvTranspose" in html  # one bar: no precision added
    table = html.split("Slowest layers", 1)[1]
    assert "ConvTranspose" in table and "ConvolutionBackpropData" not in table
