"""ONNX Runtime engine: the FP32 ONNX, or an INT8 QDQ ONNX when the model ships one."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from edge_bus.engines.base import Engine, EngineConfig
from edge_bus.errors import EngineError, ModelError
from edge_bus.types import ModelOutputs
from edge_bus.zoo import Manifest

_ROLES = {"fp32": "onnx_fp32", "default": "onnx_fp32", "int8": "onnx_int8_qdq"}


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"

    def __init__(self, manifest: Manifest, config: EngineConfig) -> None:
        super().__init__(manifest, config)
        import onnxruntime as ort

        if config.device.upper() not in ("CPU", "AUTO"):
            raise EngineError(
                f"the onnxruntime backend runs on CPU only, not {config.device!r}; use --backend openvino")
        try:
            role = _ROLES[config.precision]
        except KeyError:
            raise EngineError(f"ONNX Runtime precision {config.precision!r} is not one of int8, fp32") from None
        manifest.verify((role,))
        self._file = manifest.path(role)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if config.threads:
            opts.intra_op_num_threads = config.threads
        try:
            self._session = ort.InferenceSession(str(self._file), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types
            raise ModelError(f"ONNX Runtime cannot load {self._file.name}: {str(exc).splitlines()[0]}") from None
        names = [o.name for o in self._session.get_outputs()]
        for out in (manifest.mask_output, manifest.class_output):
            if out not in names:
                raise ModelError(
                    f"model {self._file.name} has no output {out!r} named in its manifest (it has {names})")
        self._input = self._session.get_inputs()[0].name
        self._out_names = [manifest.mask_output, manifest.class_output]
        self._pool = ThreadPoolExecutor(max_workers=max(1, config.requests or 1), thread_name_prefix="ort")
        self._pending: list[Future[None]] = []
        self._lock = threading.Lock()

    @property
    def precision(self) -> str:
        return "int8-qdq" if self.config.precision == "int8" else "f32"

    @property
    def model_file(self) -> str:
        return str(self._file)

    @property
    def requests(self) -> int:
        return max(1, self.config.requests or 1)

    def infer(self, tensor: np.ndarray) -> ModelOutputs:
        self.check_input(tensor)
        return self._run_session(tensor)

    def _run_session(self, tensor: np.ndarray) -> ModelOutputs:
        try:
            mask, logits = self._session.run(self._out_names, {self._input: tensor})
        except Exception as exc:  # ORT raises its own exception types
            raise EngineError(f"ONNX Runtime inference failed: {str(exc).splitlines()[0]}") from None
        return self._outputs(mask, logits)

    def _run(self, tensor: np.ndarray, user_data: object) -> None:
        try:
            outputs = self._run_session(tensor)
        except BaseException as exc:  # noqa: BLE001 - raised again from the next infer_async / wait
            self._keep_error(exc)
            return
        self._deliver(user_data, outputs)

    def infer_async(self, tensor: np.ndarray, user_data: object) -> None:
        self.check_input(tensor)
        self._raise_callback_error()
        with self._lock:
            self._pending = [f for f in self._pending if not f.done()]
            while len(self._pending) >= max(1, self.config.requests or 1):
                self._pending.pop(0).result()  # never raises: _run keeps the error
            self._raise_callback_error()  # the one just waited for failed: queue nothing more
            self._pending.append(self._pool.submit(self._run, tensor, user_data))

    def wait(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for f in pending:
            f.result()
        self._raise_callback_error()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)
            self._session = None
