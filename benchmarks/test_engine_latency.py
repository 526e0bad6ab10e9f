"""Engine-only latency at batch 1 for every backend/precision, and the INT8 speedup gate.

Runs on the bundled demo clip's frames, so it needs no shared data.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from edge_bus.bench_engines import ENGINE_VARIANTS, measure_engines
from edge_bus.bench_gates import Gate, int8_speedup_gate, int8_speedup_target_gate, isa_class
from edge_bus.engines import Engine


@pytest.mark.parametrize("name", list(ENGINE_VARIANTS))
def test_engine_latency(
    benchmark, engines: dict[str, Engine], demo_tensors: list[np.ndarray], profile, record, name: str
) -> None:
    engine = engines[name]
    state = [0]

    def infer_next() -> object:
        state[0] += 1
        return engine.infer(demo_tensors[state[0] % len(demo_tensors)])

    outputs = benchmark.pedantic(infer_next, rounds=profile.engine_rounds, warmup_rounds=3, iterations=1)
    assert np.isfinite(outputs.class_logits).all()
    record(
        benchmark, engine=name, backend=ENGINE_VARIANTS[name].backend, precision=engine.precision, profile=profile.name
    )


def test_gate_int8_speedup(
    engines: dict[str, Engine],
    demo_tensors: list[np.ndarray],
    profile,
    hardware,
    gate_log: list[Gate],
    record_property: Callable[[str, object], None],
) -> None:
    """OpenVINO INT8 vs ONNX Runtime FP32, interleaved in the same run (load hits both alike)."""
    pair = {k: engines[k] for k in ("openvino-int8", "onnxruntime-fp32")}
    timings = measure_engines(pair, demo_tensors, profile.gate_seconds)
    gate = int8_speedup_gate(timings["openvino-int8"].median_ms, timings["onnxruntime-fp32"].median_ms, hardware["isa"])
    gate_log.append(gate)
    target = int8_speedup_target_gate(timings["openvino-int8"].median_ms, timings["onnxruntime-fp32"].median_ms)
    if target is not None:
        gate_log.append(target)
    record_property("int8_speedup", round(gate.value, 3))
    record_property("isa", isa_class(hardware["isa"]))
    assert gate.passed, gate.message
