"""OpenVINO INT8 latency of shipped models, measured side by side in one run (interleaved blocks).

    python -m models.training.latency_compare emt_net emt_net_fast [--source demo] [--seconds 20] [--runs 2]

Each model runs as a live stream's engine (LATENCY hint, one request, batch 1) on the same frames,
preprocessed to its own input size; ``edge_bus.bench_measure.sample_interleaved`` alternates the
models in blocks (3 untimed settle calls, then 8 timed), so background load hits them alike. Prints
each model's median and p99 per run and the median ratio of each model to the first, as Markdown.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

from edge_bus.bench_engines import preprocess_all, sample_frames
from edge_bus.bench_measure import sample_interleaved, summarize
from edge_bus.engines import Engine, EngineConfig, create_engine
from edge_bus.zoo import resolve_model
from models.training.script import run_script


def _caller(engine: Engine, tensors: list) -> Callable[[], object]:  # type: ignore[type-arg]
    state = [0]

    def call() -> object:
        state[0] = (state[0] + 1) % len(tensors)
        return engine.infer(tensors[state[0]])

    return call


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="model names or folders; ratios are to the first")
    p.add_argument("--source", default="demo")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--seconds", type=float, default=20.0, help="measuring time per model and run")
    p.add_argument("--runs", type=int, default=2)
    args = p.parse_args(argv)
    frames = sample_frames(args.source, args.frames)
    manifests = {name: resolve_model(name) for name in args.models}
    engines = {name: create_engine(m, EngineConfig(backend="openvino", precision="int8", hint="LATENCY", requests=1))
               for name, m in manifests.items()}
    try:
        calls = {name: _caller(engines[name], preprocess_all(m, frames)) for name, m in manifests.items()}
        print(f"| run | {' | '.join(f'{n} ({manifests[n].input.width} px) median / p99 ms' for n in args.models)} | "
              + " | ".join(f"{n} / {args.models[0]}" for n in args.models[1:]) + " |")
        print("|---" * (1 + 2 * len(args.models) - 1) + "|")
        for run in range(1, args.runs + 1):
            samples = sample_interleaved(calls, args.seconds)
            timings = {n: summarize(n, s) for n, s in samples.items()}
            base = statistics.median(samples[args.models[0]])
            cells = [f"{timings[n].median_ms:.2f} / {timings[n].p99_ms:.2f}" for n in args.models]
            ratios = [f"{statistics.median(samples[n]) / base:.2f}×" for n in args.models[1:]]
            print(f"| {run} ({len(samples[args.models[0]])} calls each) | " + " | ".join(cells + ratios) + " |")
    finally:
        for engine in engines.values():
            engine.close()


if __name__ == "__main__":
    run_script(main)
