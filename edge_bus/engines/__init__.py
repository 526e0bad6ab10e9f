"""Inference engines behind one interface; :func:`create_engine` is the only way to get one."""

from __future__ import annotations

from edge_bus.engines.base import Engine, EngineConfig, LayerTime
from edge_bus.errors import ConfigError
from edge_bus.zoo import Manifest

BACKENDS = ("openvino", "onnxruntime")

__all__ = ["BACKENDS", "Engine", "EngineConfig", "LayerTime", "create_engine"]


def create_engine(manifest: Manifest, config: EngineConfig) -> Engine:
    """Build the engine ``config.backend`` names for ``manifest`` (files are sha256-checked)."""
    if config.backend == "openvino":
        from edge_bus.engines.openvino import OpenVINOEngine

        return OpenVINOEngine(manifest, config)
    if config.backend == "onnxruntime":
        from edge_bus.engines.onnxruntime import OnnxRuntimeEngine

        return OnnxRuntimeEngine(manifest, config)
    raise ConfigError(f"unknown backend {config.backend!r}; valid backends: {', '.join(BACKENDS)}")
