"""edge-bus: a real-time breast-ultrasound inference runtime (OpenVINO INT8, multitask lesion models).

The public API is what this module exports (``edge_bus.__all__``); everything else is internal and
may change. Errors are the tree in :mod:`edge_bus.errors`, all under :class:`EdgeBusError`.

Run a stream, as ``edge-bus stream`` does::

    import threading
    from pathlib import Path
    from edge_bus import StreamConfig, run_stream

    stop = threading.Event()                      # set it from any thread to end the run
    result = run_stream(StreamConfig(source="clip.avi", out=Path("runs/x")), stop=stop)
    print(result.one_line(), result.stages["end_to_end"].p99_ms)

Bring your own frames (a grabber SDK) with a :class:`FrameSource` subclass whose ``__next__``
returns :func:`make_frame` (…) and ``run_stream(config, source=MySource())``; restyle the overlay
with ``renderer=OverlayRenderer(OverlayStyle(...))``.

Or drive the stages yourself (what the pipeline does per frame)::

    from edge_bus import EngineConfig, Postprocessor, Preprocessor, create_engine, open_source, resolve_model

    manifest = resolve_model("emt_net")
    pre, post = Preprocessor(manifest.input), Postprocessor(manifest)
    with create_engine(manifest, EngineConfig()) as engine, open_source("demo") as frames:
        for frame in frames:
            tensor, meta = pre.preprocess(frame.pixels)
            prediction = post.postprocess(engine.infer(tensor), meta)

Names are imported on first use, so ``import edge_bus`` (and ``import firmware_bridge``, which
shares the error tree) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edge_bus.errors import (
    BridgeError,
    ConfigError,
    DataError,
    EdgeBusError,
    EngineError,
    HungUp,
    Interrupted,
    ModelError,
    OutputError,
    SourceEndedEarly,
    SourceError,
    Terminated,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from edge_bus.config import StreamConfig, build_config
    from edge_bus.engines import Engine, EngineConfig, create_engine
    from edge_bus.evaluation import EvalReport, evaluate
    from edge_bus.pipeline import Pipeline, RunResult, compose, run_stream
    from edge_bus.postprocess import PostprocessConfig, Postprocessor
    from edge_bus.preprocess import InputSpec, Preprocessor, detect_scan_area
    from edge_bus.render import HudInfo, OverlayRenderer, OverlayStyle
    from edge_bus.sources import FrameSource, SourceInfo, make_frame, open_source
    from edge_bus.summary import LesionEpisode, Verdict
    from edge_bus.telemetry.stats import LatencySummary
    from edge_bus.types import ROI, Frame, HardwareMeta, ModelOutputs, Prediction, PreprocessMeta
    from edge_bus.zoo import Manifest, OperatingPoint, list_models, load_manifest, resolve_model

#: public name → the module that defines it (imported on first use)
_LAZY = {
    "StreamConfig": "edge_bus.config", "build_config": "edge_bus.config",
    "Engine": "edge_bus.engines", "EngineConfig": "edge_bus.engines", "create_engine": "edge_bus.engines",
    "EvalReport": "edge_bus.evaluation", "evaluate": "edge_bus.evaluation",
    "Pipeline": "edge_bus.pipeline", "RunResult": "edge_bus.pipeline", "compose": "edge_bus.pipeline",
    "run_stream": "edge_bus.pipeline",
    "PostprocessConfig": "edge_bus.postprocess", "Postprocessor": "edge_bus.postprocess",
    "InputSpec": "edge_bus.preprocess", "Preprocessor": "edge_bus.preprocess",
    "detect_scan_area": "edge_bus.preprocess",
    "HudInfo": "edge_bus.render", "OverlayRenderer": "edge_bus.render", "OverlayStyle": "edge_bus.render",
    "FrameSource": "edge_bus.sources", "SourceInfo": "edge_bus.sources", "make_frame": "edge_bus.sources",
    "open_source": "edge_bus.sources", "LesionEpisode": "edge_bus.summary", "Verdict": "edge_bus.summary",
    "LatencySummary": "edge_bus.telemetry.stats",
    "ROI": "edge_bus.types", "Frame": "edge_bus.types", "HardwareMeta": "edge_bus.types",
    "ModelOutputs": "edge_bus.types", "Prediction": "edge_bus.types", "PreprocessMeta": "edge_bus.types",
    "Manifest": "edge_bus.zoo", "OperatingPoint": "edge_bus.zoo", "list_models": "edge_bus.zoo",
    "load_manifest": "edge_bus.zoo", "resolve_model": "edge_bus.zoo",
}

__all__ = [
    "ROI",
    "BridgeError",
    "ConfigError",
    "DataError",
    "EdgeBusError",
    "Engine",
    "EngineConfig",
    "EngineError",
    "EvalReport",
    "Frame",
    "FrameSource",
    "HardwareMeta",
    "HudInfo",
    "HungUp",
    "InputSpec",
    "Interrupted",
    "LatencySummary",
    "LesionEpisode",
    "Manifest",
    "ModelError",
    "ModelOutputs",
    "OperatingPoint",
    "OutputError",
    "OverlayRenderer",
    "OverlayStyle",
    "Pipeline",
    "PostprocessConfig",
    "Postprocessor",
    "Prediction",
    "PreprocessMeta",
    "Preprocessor",
    "RunResult",
    "SourceEndedEarly",
    "SourceError",
    "SourceInfo",
    "StreamConfig",
    "Terminated",
    "Verdict",
    "__version__",
    "build_config",
    "compose",
    "create_engine",
    "detect_scan_area",
    "evaluate",
    "list_models",
    "load_manifest",
    "make_frame",
    "open_source",
    "resolve_model",
    "run_stream",
]


if not TYPE_CHECKING:  # hidden from type checkers, which then see only the imports above (with a
    # module __getattr__ in view, mypy typed any name, typos included, as Any)

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'edge_bus' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(__all__)
