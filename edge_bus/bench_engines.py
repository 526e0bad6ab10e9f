"""Engine-only measurements: batch-1 latency per backend/precision, and async throughput.

The five variants (:data:`ENGINE_VARIANTS`) are measured interleaved on the same preprocessed
frames, one synchronous request at a time with the LATENCY hint — what a live probe sees.
:func:`engine_throughput` measures OpenVINO INT8 the way the file pipeline runs it (THROUGHPUT
hint, the runtime's optimal number of async requests) so the two FPS figures compare.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_bus.bench_measure import Timing, cycle, sample_interleaved, summarize
from edge_bus.engines import Engine, EngineConfig, create_engine
from edge_bus.errors import EdgeBusError
from edge_bus.preprocess import Preprocessor
from edge_bus.sources import open_source
from edge_bus.types import Frame
from edge_bus.zoo import Manifest

__all__ = [
    "ENGINE_VARIANTS",
    "EngineVariant",
    "benchmark_app_throughput",
    "close_engines",
    "engine_throughput",
    "measure_engines",
    "open_engines",
    "paced_latency",
    "preprocess_all",
    "sample_frames",
]


@dataclass(frozen=True)
class EngineVariant:
    backend: str
    precision: str


#: The shipped default (OpenVINO, the INT8 IR): it must load, and its timing is the pipeline's ``infer``.
INFER_TIMING = "openvino-int8"

#: name → what it runs. ``openvino-default`` lets OpenVINO choose (bf16 on AMX or AVX512-BF16, f32 elsewhere).
ENGINE_VARIANTS: Mapping[str, EngineVariant] = {
    INFER_TIMING: EngineVariant("openvino", "int8"),
    "openvino-fp32": EngineVariant("openvino", "fp32"),
    "openvino-default": EngineVariant("openvino", "default"),
    "onnxruntime-fp32": EngineVariant("onnxruntime", "fp32"),
    "onnxruntime-int8": EngineVariant("onnxruntime", "int8"),
}


def sample_frames(source: str, count: int) -> list[Frame]:
    """The first ``count`` frames of ``source`` (looped when shorter)."""
    src = open_source(source, loop=True, max_frames=max(1, count))
    try:
        return list(src)
    finally:
        src.close()


def preprocess_all(manifest: Manifest, frames: Sequence[Frame]) -> list[np.ndarray]:
    """Model tensors for ``frames``, prepared exactly as the pipeline does (one Preprocessor, in order)."""
    pre = Preprocessor(manifest.input)
    return [pre.preprocess(f.pixels)[0] for f in frames]


def open_engines(
    manifest: Manifest, device: str = "CPU", names: Sequence[str] | None = None, hint: str = "LATENCY"
) -> tuple[dict[str, Engine], dict[str, EdgeBusError]]:
    """Create the engines ``names`` (default: all variants); returns (engines, errors by name).

    A variant the model can't run (e.g. no INT8 QDQ ONNX shipped) is an error entry, not a failure.
    ONNX Runtime always runs on the CPU.
    """
    engines: dict[str, Engine] = {}
    errors: dict[str, EdgeBusError] = {}
    for name in names or list(ENGINE_VARIANTS):
        v = ENGINE_VARIANTS[name]
        dev = device if v.backend == "openvino" else "CPU"
        try:
            engines[name] = create_engine(
                manifest, EngineConfig(backend=v.backend, device=dev, precision=v.precision, hint=hint, requests=1)
            )
        except EdgeBusError as exc:
            errors[name] = exc
    return engines, errors


def close_engines(engines: Mapping[str, Engine]) -> None:
    for engine in engines.values():
        engine.close()


#: the pause before each engine's block (see :func:`~edge_bus.bench_measure.sample_interleaved`):
#: long enough for ONNX Runtime's spinning threads to stop (20 ms measured enough, 10 ms not)
ENGINE_IDLE_S = 0.03


def measure_engines(
    engines: Mapping[str, Engine],
    tensors: Sequence[np.ndarray],
    seconds_each: float,
    errors: Mapping[str, EdgeBusError] | None = None,
) -> dict[str, Timing]:
    """Batch-1 synchronous latency of every engine, interleaved, ``seconds_each`` per engine."""
    if not tensors:
        raise ValueError("measure_engines needs at least one tensor")
    samples = sample_interleaved({n: cycle(tensors, e.infer) for n, e in engines.items()}, seconds_each, burst=8,
                                 settle=3, idle_s=ENGINE_IDLE_S)
    out = {name: summarize(name, samples[name], engines[name].precision) for name in engines}
    for name, err in (errors or {}).items():
        out[name] = Timing.failed(name, str(err))
    return {name: out[name] for name in ENGINE_VARIANTS if name in out}


def engine_throughput(engine: Engine, tensors: Sequence[np.ndarray]) -> float:
    """Frames per second through ``engine.infer_async`` for ``tensors``: wall time from the first
    submit to the last completion, like the pipeline's FPS (no separate warm-up either)."""
    if not tensors:
        raise ValueError("engine_throughput needs at least one tensor")
    lock = threading.Lock()
    state = {"done": 0, "last": 0.0}

    def on_done(_: object, __: object) -> None:
        with lock:
            state["done"] += 1
            state["last"] = time.perf_counter()

    engine.set_callback(on_done)
    t0 = time.perf_counter()
    for tensor in tensors:
        engine.infer_async(tensor, None)
    engine.wait()
    end = state["last"] if state["done"] == len(tensors) else time.perf_counter()
    elapsed = end - t0
    return len(tensors) / elapsed if elapsed > 0 else float("nan")


def paced_latency(engine: Engine, tensors: Sequence[np.ndarray], fps: float) -> list[float]:
    """Milliseconds of each synchronous ``engine.infer`` over ``tensors``, one started every
    ``1 / fps`` s on the wall clock (late ones start at once, as a live pipeline would catch up).

    The floor under a live run's end-to-end latency: the same engine set-up (LATENCY hint, one
    request) and the same pace, with no decode, render or write around it."""
    if not tensors:
        raise ValueError("paced_latency needs at least one tensor")
    period = 1.0 / fps if fps > 0 else 0.0
    engine.infer(tensors[0])  # warm-up, as compose() does
    out: list[float] = []
    start = time.perf_counter()
    for i, tensor in enumerate(tensors):
        delay = start + i * period - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t = time.perf_counter()
        engine.infer(tensor)
        out.append((time.perf_counter() - t) * 1e3)
    return out


_BENCHMARK_APP = ("from edge_bus.ov_privacy import disable_openvino_telemetry; disable_openvino_telemetry(); "
                  "from openvino.tools.benchmark.main import main; main()")


def benchmark_app_throughput(model_xml: str, seconds: float, device: str = "CPU",
                             shape: Sequence[int] | None = None, weights: str | None = None) -> float:
    """OpenVINO's own ``benchmark_app`` on the IR (THROUGHPUT hint, its default request count,
    random inputs; on the CPU with f32 float layers, as edge-bus runs the INT8 IR), run as a
    subprocess for ``seconds``; its reported FPS (frames, not batches), or NaN when it cannot
    run (e.g. openvino without its tools). The reference the issue's 80% target is set against.
    ``shape``: the input shape to reshape the IR to (``[4, 1, 224, 224]``: batches of 4); None: the IR's own.
    ``weights``: the IR's .bin when it is not named as its .xml (benchmark_app reads ``<xml stem>.bin``:
    it is given links to both under matching names)."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="edge-bus-app-") as tmp:
        if weights is not None and Path(weights).resolve() != Path(model_xml).with_suffix(".bin").resolve():
            for src, name in ((model_xml, "model.xml"), (weights, "model.bin")):
                try:
                    (Path(tmp) / name).symlink_to(Path(src).resolve())
                except OSError:  # no links here (Windows without the right): a copy
                    shutil.copyfile(src, Path(tmp) / name)
            model_xml = str(Path(tmp) / "model.xml")
        return _run_benchmark_app(model_xml, seconds, device, shape)


def _run_benchmark_app(model_xml: str, seconds: float, device: str, shape: Sequence[int] | None) -> float:
    import re
    import subprocess
    import sys

    cmd = [sys.executable, "-c", _BENCHMARK_APP, "-m", str(model_xml), "-d", device, "-hint", "throughput",
           "-t", str(max(1, round(seconds)))]
    if shape is not None:
        cmd += ["-shape", f"[{','.join(str(int(d)) for d in shape)}]"]
    if device.upper() == "CPU":  # the float layers in f32, as the pipeline runs them (bf16 by default on BF16 CPUs)
        cmd += ["-infer_precision", "f32"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return float("nan")
    found = re.search(r"Throughput:\s*([0-9.]+)\s*FPS", done.stdout)
    return float(found.group(1)) if done.returncode == 0 and found else float("nan")
