"""ONNX Runtime engine: the FP32 ONNX, or an INT8 QDQ ONNX when the model ships one."""

from __future__ import annotations

import numpy as np

from edge_bus.engines.base import EngineConfig, check_input_shape
from edge_bus.engines.pooled import PooledEngine
from edge_bus.errors import EngineError, ModelError
from edge_bus.types import ModelOutputs
from edge_bus.zoo import Manifest

_ROLES = {"fp32": "onnx_fp32", "int8": "onnx_int8_qdq"}  # EngineConfig refuses the others for ONNX Runtime


class OnnxRuntimeEngine(PooledEngine):
    name = "onnxruntime"

    def __init__(self, manifest: Manifest, config: EngineConfig) -> None:
        super().__init__(manifest, config)  # the request pool (its threads start with the first request)
        import onnxruntime as ort

        if config.device.upper() not in ("CPU", "AUTO"):
            raise EngineError(
                f"the onnxruntime backend runs on CPU only, not {config.device!r}; use --backend openvino")
        role = _ROLES[config.precision]
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
        check_input_shape(manifest, self._session.get_inputs()[0].shape, self._file.name)
        self._input = self._session.get_inputs()[0].name
        self._out_names = [manifest.mask_output, manifest.class_output]

    @property
    def precision(self) -> str:
        # named as OpenVINO's engine names its own ("float32"; this said "f32" for the same --precision fp32)
        return "int8-qdq" if self.config.precision == "int8" else "float32"

    @property
    def model_file(self) -> str:
        return str(self._file)

    def _run_session(self, tensor: np.ndarray) -> ModelOutputs:
        try:
            mask, logits = self._session.run(self._out_names, {self._input: tensor})
        except Exception as exc:  # ORT raises its own exception types
            raise EngineError(f"ONNX Runtime inference failed: {str(exc).splitlines()[0]}") from None
        return self._outputs(mask, logits)

    def _release(self) -> None:
        self._session = None
