"""The one small engine interface: load, infer, infer_async, wait. Only engines touch a runtime.

An engine is created for a :class:`~edge_bus.zoo.Manifest` and a precision; ``infer`` runs one
tensor synchronously; ``infer_async`` queues one (blocking while every request is busy) and the
callback set with ``set_callback`` receives ``(user_data, ModelOutputs)`` from a runtime thread;
``wait`` blocks until every queued request has completed. ``precision`` reports what actually
ran (e.g. OpenVINO on AMX silently runs an "FP32" model in bf16 unless told otherwise).
An engine created with ``profile=True`` reports the per-layer times of its last synchronous
``infer`` (``layer_times``): which kernel ran each layer, and in which precision.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge_bus.errors import EngineError
from edge_bus.types import ModelOutputs
from edge_bus.zoo import Manifest

Callback = Callable[[object, ModelOutputs], None]


@dataclass(frozen=True)
class EngineConfig:
    """``precision``: int8 | fp32 | default (the runtime's own choice, bf16 on AMX for OpenVINO).
    ``hint``: LATENCY (live sources) or THROUGHPUT (files). ``requests``: async requests (0 = twice
    the runtime's optimal number for OpenVINO, see :mod:`edge_bus.engines.openvino`; 1 for ONNX Runtime).
    ``threads``: CPU threads (0 = runtime default). ``profile``: collect per-layer times (slower; for
    ``edge-bus bench``'s layer profile, not for streaming)."""

    backend: str = "openvino"
    device: str = "CPU"
    precision: str = "int8"
    hint: str = "LATENCY"
    requests: int = 0
    threads: int = 0
    profile: bool = False


@dataclass(frozen=True)
class LayerTime:
    """One executed layer of one inference: ``op`` (e.g. ``Convolution``), ``kernel`` (the runtime's
    implementation, e.g. ``jit_avx2_1x1_I8``) and ``precision`` (``int8``, ``f32``, ``bf16``...)."""

    name: str
    op: str
    kernel: str
    precision: str
    ms: float


class Engine(ABC):
    name: str = "engine"

    def __init__(self, manifest: Manifest, config: EngineConfig) -> None:
        self.manifest = manifest
        self.config = config
        self._callback: Callback | None = None

    @property
    @abstractmethod
    def precision(self) -> str:
        """The precision that actually runs, e.g. ``int8+f32``, ``f32``, ``bf16``."""

    @property
    @abstractmethod
    def model_file(self) -> str:
        """The file that was loaded."""

    @property
    def requests(self) -> int:
        return 1

    @abstractmethod
    def infer(self, tensor: np.ndarray) -> ModelOutputs: ...

    def set_callback(self, callback: Callback) -> None:
        self._callback = callback

    @abstractmethod
    def infer_async(self, tensor: np.ndarray, user_data: object) -> None: ...

    @abstractmethod
    def wait(self) -> None: ...

    def layer_times(self) -> list[LayerTime]:
        """Per-layer times of the last synchronous ``infer`` (the engine must be created with
        ``profile=True``)."""
        raise EngineError(f"the {self.name} engine does not report per-layer times")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the runtime's resources."""

    def _outputs(self, mask: np.ndarray, logits: np.ndarray) -> ModelOutputs:
        return ModelOutputs(mask_logits=np.asarray(mask).reshape(mask.shape[-2:]).copy(),
                            class_logits=np.asarray(logits).reshape(-1).copy())
