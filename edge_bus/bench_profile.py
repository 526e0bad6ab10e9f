"""Where OpenVINO INT8 spends a frame: per-layer times, grouped by operation and the precision its
kernel actually ran in.

An INT8 IR says which layers NNCF quantised; the CPU plugin still chooses each layer's kernel, and
runs a quantised layer in f32 when it has no INT8 kernel for it. This profile found that every
depthwise convolution of the model shipped before ran ``brgconv_avx2_dw_f32`` (a third of the
time on the 2-core AVX2 machine this was built on; see :func:`edge_bus.quantize.quantize_openvino`
for the cause and the fix). It shows, per machine, where a latency miss comes from.

Measured on a separate compiled model with the runtime's per-layer counters on (``PERF_COUNT``):
they cost a little, so the total here is not the engine latency reported elsewhere; the shares are
what to read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_bus.engines import EngineConfig, LayerTime, create_engine
from edge_bus.zoo import Manifest

__all__ = ["LayerProfile", "OpShare", "aggregate_layers", "measure_layer_profile", "op_label"]

WARMUP_RUNS = 10


@dataclass(frozen=True)
class OpShare:
    """All layers of one operation that ran in one precision: mean ms per inference and share."""

    op: str
    precision: str
    layers: int
    ms: float
    share: float

    def to_json(self) -> dict[str, object]:
        return {"op": self.op, "precision": self.precision, "layers": self.layers, "ms": round(self.ms, 4),
                "share": round(self.share, 4)}


@dataclass(frozen=True)
class LayerProfile:
    """``ops`` and ``top_layers`` are sorted by time, slowest first; times are means per inference."""

    runs: int
    total_ms: float
    ops: tuple[OpShare, ...]
    top_layers: tuple[LayerTime, ...]
    device: str = "CPU"

    def share_in(self, precision: str) -> float:
        return float(sum(o.share for o in self.ops if o.precision == precision))

    def headline(self, top: int = 4) -> str:
        parts = [f"{o.op} ({o.precision}) {o.ms:.2f} ms {100 * o.share:.0f}%" for o in self.ops[:top]]
        return (f"{' · '.join(parts)}; {100 * self.share_in('int8'):.0f}% of layer time in INT8 kernels, "
                f"{100 * self.share_in('f32'):.0f}% in f32")

    def to_json(self) -> dict[str, object]:
        return {
            "runs": self.runs, "device": self.device, "total_ms": round(self.total_ms, 4),
            "int8_share": round(self.share_in("int8"), 4), "f32_share": round(self.share_in("f32"), 4),
            "ops": [o.to_json() for o in self.ops],
            "top_layers": [{"name": t.name, "op": t.op, "kernel": t.kernel, "precision": t.precision,
                            "ms": round(t.ms, 4)} for t in self.top_layers],
        }


def op_label(layer: LayerTime) -> str:
    """The operation, with pointwise (1x1) convolutions told apart from the others (their kernel says
    so), and OpenVINO's ``ConvolutionBackpropData`` under its usual name. Depthwise convolutions are
    OpenVINO's ``GroupConvolution``; an f32 kernel names them ``_dw``, an INT8 one does not, so they
    keep the one name whatever precision ran them."""
    if layer.op == "Convolution" and "1x1" in layer.kernel:
        return "Convolution 1x1"
    if layer.op == "ConvolutionBackpropData":
        return "ConvTranspose"
    return layer.op


def aggregate_layers(runs: Sequence[Sequence[LayerTime]], device: str = "CPU", top: int = 10) -> LayerProfile:
    """Mean per-inference time of every layer and of every (operation, precision) over ``runs``."""
    n = len(runs)
    if n == 0:
        return LayerProfile(runs=0, total_ms=0.0, ops=(), top_layers=(), device=device)
    per_layer: dict[tuple[str, str, str, str], float] = defaultdict(float)
    for run in runs:
        for t in run:
            per_layer[(t.name, t.op, t.kernel, t.precision)] += t.ms / n
    layers = [LayerTime(name=k[0], op=k[1], kernel=k[2], precision=k[3], ms=ms) for k, ms in per_layer.items()]
    total = float(sum(t.ms for t in layers))
    groups: dict[tuple[str, str], list[LayerTime]] = defaultdict(list)
    for t in layers:
        groups[(op_label(t), t.precision)].append(t)
    ops = sorted(
        (OpShare(op=op, precision=prec, layers=len(ts), ms=float(sum(t.ms for t in ts)),
                 share=float(sum(t.ms for t in ts)) / total if total > 0 else 0.0)
         for (op, prec), ts in groups.items()),
        key=lambda o: -o.ms,
    )
    return LayerProfile(runs=n, total_ms=total, ops=tuple(ops),
                        top_layers=tuple(sorted(layers, key=lambda t: -t.ms)[:top]), device=device)


def measure_layer_profile(manifest: Manifest, tensors: Sequence[np.ndarray], runs: int = 100,
                          device: str = "CPU") -> LayerProfile:
    """OpenVINO INT8, LATENCY hint, one synchronous request per tensor (cycled), counters on."""
    engine = create_engine(manifest, EngineConfig(backend="openvino", device=device, precision="int8",
                                                  hint="LATENCY", profile=True))
    try:
        for i in range(WARMUP_RUNS):
            engine.infer(tensors[i % len(tensors)])
        samples = []
        for i in range(max(1, runs)):
            engine.infer(tensors[i % len(tensors)])
            samples.append(engine.layer_times())
    finally:
        engine.close()
    return aggregate_layers(samples, device=device)
