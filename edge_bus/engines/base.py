"""The one small engine interface: load, infer, infer_async, wait. Only engines touch a runtime.

An engine is created for a :class:`~edge_bus.zoo.Manifest` and a precision; ``infer`` runs one
tensor synchronously; ``infer_async`` queues one (blocking while every request is busy) and the
callback set with ``set_callback`` receives ``(user_data, ModelOutputs)`` from a runtime thread;
``wait`` blocks until every queued request has completed. An engine made with ``batch`` > 1
gathers that many ``infer_async`` frames into one inference (``wait`` sends a partial batch); each
frame still reaches the callback on its own, with its own ``user_data``. ``precision`` reports what actually
ran (e.g. OpenVINO on AMX or AVX512-BF16 silently runs an "FP32" model in bf16 unless told otherwise).

Inputs are checked against the manifest (``[1, C, H, W]`` float32) and a runtime's refusal comes
back as :class:`~edge_bus.errors.EngineError`. An exception raised by the callback is kept and
raised again by the next ``wait`` or ``infer_async`` (it never reaches the runtime's thread).
After ``close`` (or leaving a ``with`` block) ``infer``, ``infer_async`` and ``layer_times`` raise
:class:`EngineError`; ``wait`` and ``close`` return at once (nothing is queued). An engine may be
called from several threads: OpenVINO's synchronous request is taken by one ``infer`` at a time,
and ``close`` waits for the one running; close it once the threads that submit frames are done. A
callback must not call ``infer_async``, ``wait`` or ``close``: it runs on the runtime's thread, which
those wait for.
An engine created with ``profile=True`` reports the per-layer times of its last synchronous
``infer`` (``layer_times``): which kernel ran each layer, and in which precision.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from edge_bus.checks import check_fields
from edge_bus.config import PRECISIONS, check_batch
from edge_bus.errors import ConfigError, EngineError, ModelError
from edge_bus.types import ModelOutputs
from edge_bus.zoo import HEADS, Manifest

Callback = Callable[[object, ModelOutputs], None]


@dataclass(frozen=True)
class EngineConfig:
    """``precision``: int8 (the INT8 IR, its float parts in f32) | fp32 | default (the runtime's own
    choice: bf16 on AMX or AVX512-BF16 for OpenVINO).
    ``hint``: LATENCY (live sources) or THROUGHPUT (files). ``requests``: async requests (0 = twice
    the runtime's optimal number for OpenVINO, see :mod:`edge_bus.engines.openvino`; 1 for ONNX Runtime).
    ``threads``: CPU threads (0 = runtime default). ``profile``: collect per-layer times (slower; for
    ``edge-bus bench``'s layer profile, not for streaming). ``batch``: frames per inference for
    ``infer_async`` (OpenVINO only; files, not live sources: a frame waits for the batch to fill)."""

    backend: str = "openvino"
    device: str = "CPU"
    precision: str = "int8"
    hint: str = "LATENCY"
    requests: int = 0
    threads: int = 0
    profile: bool = False
    batch: int = 1

    def __post_init__(self) -> None:
        check_fields(self, texts=("backend", "device", "precision", "hint"),
                     integers=("requests", "threads", "batch"), flags=("profile",))
        check_batch(self.batch)
        if self.batch > 1 and self.backend != "openvino":
            raise ConfigError(f"batch {self.batch}: only the OpenVINO engine batches frames; {self.backend} "
                              "runs them one at a time (batch 1)")
        if self.requests < 0 or self.threads < 0:
            raise ConfigError(f"requests and threads must be >= 0 (0: the runtime's choice), got {self.requests} "
                              f"and {self.threads}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.backend == "onnxruntime" and self.precision == "default":
            raise ConfigError("precision 'default' is OpenVINO's (the runtime's own choice): ONNX Runtime runs "
                              "int8 or fp32")
        if self.hint.upper() not in ("LATENCY", "THROUGHPUT"):
            raise ConfigError(f"hint {self.hint!r} is not one of LATENCY, THROUGHPUT")


def check_input_shape(manifest: Manifest, dims: Sequence[object], file_name: str) -> None:
    """``dims``, the model file's input shape (an int per fixed dimension, anything else for a dynamic
    one), takes the manifest's [N, C, H, W]; else a :class:`ModelError`. A manifest of another size
    failed at the first frame, in ONNX Runtime's message cut off mid-sentence."""
    spec = manifest.input
    want = (spec.channels, spec.height, spec.width)
    fixed = [d if isinstance(d, int) and not isinstance(d, bool) else None for d in dims]
    if len(fixed) != 4 or any(d is not None and d != w for d, w in zip(fixed[1:], want, strict=True)):
        shown = "[" + ", ".join("?" if d is None else str(d) for d in fixed) + "]"
        raise ModelError(f"model {manifest.name!r}: its manifest says the input is [1, {spec.channels}, {spec.height}, "
                         f"{spec.width}] but {file_name} takes {shown} — the manifest belongs to another model; "
                         "re-export or re-quantize the model")


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
        self._callback_error: BaseException | None = None
        self._closed = False
        spec = manifest.input
        self._input_shape = (1, spec.channels, spec.height, spec.width)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    @abstractmethod
    def precision(self) -> str:
        """The precision that actually runs, in the runtime's own names: OpenVINO ``int8+float32``,
        ``float32``, ``bf16``; ONNX Runtime ``f32``, ``int8-qdq``."""

    @property
    @abstractmethod
    def model_file(self) -> str:
        """The file that was loaded."""

    @property
    def requests(self) -> int:
        return 1

    @property
    def batch(self) -> int:
        """Frames per inference that ``infer_async`` gathers (1: each frame alone)."""
        return 1

    @abstractmethod
    def infer(self, tensor: np.ndarray) -> ModelOutputs: ...

    def set_callback(self, callback: Callback) -> None:
        self._callback = callback

    @abstractmethod
    def infer_async(self, tensor: np.ndarray, user_data: object) -> None: ...

    @abstractmethod
    def wait(self) -> None: ...

    def check_input(self, tensor: np.ndarray) -> None:
        """:class:`EngineError` unless ``tensor`` is the manifest's ``[1, C, H, W]`` float32 input
        (what :class:`~edge_bus.preprocess.Preprocessor` makes), or when the engine is closed."""
        self.check_open()
        shape = getattr(tensor, "shape", None)
        if shape != self._input_shape or getattr(tensor, "dtype", None) != np.float32:
            got = f"{type(tensor).__name__} {tuple(shape) if shape is not None else ''} {getattr(tensor, 'dtype', '')}"
            raise EngineError(
                f"model {self.manifest.name} takes a float32 tensor of shape {list(self._input_shape)}, got "
                f"{' '.join(got.split())} — prepare frames with edge_bus.Preprocessor")

    def check_open(self) -> None:
        """:class:`EngineError` when the engine is closed."""
        if self._closed:
            raise EngineError(f"the {self.name} engine for {self.manifest.name} is closed — create a new one")

    def _deliver(self, user_data: object, outputs: ModelOutputs) -> None:
        """Run the callback on a runtime thread; keep its exception for the next ``wait``."""
        if self._callback is None:
            return
        try:
            self._callback(user_data, outputs)
        except BaseException as exc:  # noqa: BLE001 - raised again from wait(), never into the runtime
            self._keep_error(exc)

    def _keep_error(self, exc: BaseException) -> None:
        """Keep the first error raised on a runtime thread for the next ``wait`` / ``infer_async``."""
        if self._callback_error is None:
            self._callback_error = exc

    @property
    def failed(self) -> bool:
        """An async inference (or its callback) failed; the next ``infer_async`` / ``wait`` raises it."""
        return self._callback_error is not None

    def _raise_callback_error(self) -> None:
        error, self._callback_error = self._callback_error, None
        if error is not None:
            raise error

    def layer_times(self) -> list[LayerTime]:
        """Per-layer times of the last synchronous ``infer`` (the engine must be created with
        ``profile=True``)."""
        self.check_open()
        raise EngineError(f"the {self.name} engine does not report per-layer times")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the runtime's resources."""

    def _outputs(self, mask: np.ndarray, logits: np.ndarray) -> ModelOutputs:
        mask, logits = np.asarray(mask), np.asarray(logits)
        if mask.ndim < 2 or mask.size != mask.shape[-1] * mask.shape[-2] or min(mask.shape[-2:]) < 2:
            raise ModelError(f"model {self.manifest.name}: mask output {self.manifest.mask_output} has shape "
                             f"{list(mask.shape)}, edge-bus needs [1, 1, h, w] logits — re-make the model folder "
                             "with edge-bus models quantize, which checks this")
        want = HEADS[self.manifest.head]  # the manifest's head was checked when it was read
        if logits.size != want:
            raise ModelError(f"model {self.manifest.name}: class output {self.manifest.class_output} has "
                             f"{logits.size} values, its manifest's head {self.manifest.head} needs {want}")
        return ModelOutputs(mask_logits=mask.reshape(mask.shape[-2:]).copy(), class_logits=logits.reshape(-1).copy())
