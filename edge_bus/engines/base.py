"""The one small engine interface: load, infer, infer_async, wait. Only engines touch a runtime.

An engine is created for a :class:`~edge_bus.zoo.Manifest` and a precision; ``infer`` runs one
tensor synchronously; ``infer_async`` queues one (blocking while every request is busy) and the
callback set with ``set_callback`` receives ``(user_data, ModelOutputs)`` from a runtime thread;
``wait`` blocks until every queued request has completed. ``precision`` reports what actually
ran (e.g. OpenVINO on AMX silently runs an "FP32" model in bf16 unless told otherwise).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge_bus.types import ModelOutputs
from edge_bus.zoo import Manifest

Callback = Callable[[object, ModelOutputs], None]


@dataclass(frozen=True)
class EngineConfig:
    """``precision``: int8 | fp32 | default (the runtime's own choice, bf16 on AMX for OpenVINO).
    ``hint``: LATENCY (live sources) or THROUGHPUT (files). ``requests``: async requests (0 = twice
    the runtime's optimal number for OpenVINO, see :mod:`edge_bus.engines.openvino`; 1 for ONNX Runtime).
    ``threads``: CPU threads (0 = runtime default)."""

    backend: str = "openvino"
    device: str = "CPU"
    precision: str = "int8"
    hint: str = "LATENCY"
    requests: int = 0
    threads: int = 0


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

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the runtime's resources."""

    def _outputs(self, mask: np.ndarray, logits: np.ndarray) -> ModelOutputs:
        return ModelOutputs(mask_logits=np.asarray(mask).reshape(mask.shape[-2:]).copy(),
                            class_logits=np.asarray(logits).reshape(-1).copy())
