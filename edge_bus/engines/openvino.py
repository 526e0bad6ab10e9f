"""OpenVINO engine: the INT8 IR by default, or the FP32 ONNX with an f32 / default precision hint."""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

import numpy as np

from edge_bus.config import VIRTUAL_DEVICES
from edge_bus.engines.base import Engine, EngineConfig, LayerTime, check_input_shape
from edge_bus.errors import EngineError, ModelError
from edge_bus.ov_privacy import import_openvino
from edge_bus.types import ModelOutputs
from edge_bus.zoo import Manifest

log = logging.getLogger(__name__)

_core = None
_core_lock = threading.Lock()


def core() -> Any:  # an openvino.Core (the import stays lazy: importing openvino costs ~0.3 s)
    """One shared ``openvino.Core`` per process."""
    global _core
    with _core_lock:
        if _core is None:
            _core = import_openvino().Core()
        return _core


def available_devices() -> tuple[str, ...]:
    """OpenVINO's devices here (``("CPU", "GPU")``); ``()`` when OpenVINO is missing or can't list them."""
    try:
        return tuple(str(d) for d in core().available_devices)
    except Exception:  # noqa: BLE001 - any plugin's failure to enumerate: a fact unknown, never a failed run
        log.debug("OpenVINO could not list its devices", exc_info=True)
        return ()


class OpenVINOEngine(Engine):
    name = "openvino"

    def __init__(self, manifest: Manifest, config: EngineConfig) -> None:
        super().__init__(manifest, config)
        ov = import_openvino()

        if config.precision == "int8":  # EngineConfig allows only int8, fp32 and default
            role = "openvino_int8_xml"
            manifest.verify(("openvino_int8_xml", "openvino_int8_bin"))
        else:
            role = "onnx_fp32"
            manifest.verify((role,))
        self._file = manifest.path(role)
        props: dict[str, object] = {"PERFORMANCE_HINT": config.hint.upper()}
        # int8 on the CPU: the IR's float parts (the layers kept out of INT8 for accuracy, the
        # activations between INT8 layers) run in f32 as validated. Left to the runtime they ran in
        # bf16 on an AVX512-BF16 CPU (Zen 5), which moved the presence threshold chosen on BUSI
        # fold 1 from 0.983 to 0.971; f32 there cost no measurable time (1.39 vs 1.38 ms median).
        # (A GPU or NPU keeps its own default: f16 is what those run fast, and an NPU may refuse f32.)
        # Under AUTO / MULTI / HETERO the CPU gets the hint through DEVICE_PROPERTIES: without it AUTO
        # ran the CPU in bf16, and doctor --device AUTO failed (98.5% class agreement, mask IoU 0.94).
        self._cpu_f32 = config.precision == "int8" and _may_run_on_cpu(config.device)
        if config.precision == "fp32" or (self._cpu_f32 and not _is_virtual(config.device)):
            props["INFERENCE_PRECISION_HINT"] = "f32"
        elif self._cpu_f32:
            props["DEVICE_PROPERTIES"] = {"CPU": {"INFERENCE_PRECISION_HINT": "f32"}}
        if config.requests:
            props["PERFORMANCE_HINT_NUM_REQUESTS"] = str(config.requests)
        if config.profile:
            props["PERF_COUNT"] = "YES"
        if config.threads and config.device.upper().startswith("CPU"):
            props["INFERENCE_NUM_THREADS"] = str(config.threads)
        try:
            # the IR's weights are the .bin the manifest names and verify() checked: left to itself,
            # OpenVINO reads <xml stem>.bin beside the .xml, whatever the manifest says
            weights = str(manifest.path("openvino_int8_bin")) if role == "openvino_int8_xml" else ""
            model = core().read_model(str(self._file), weights)
            shape = model.input(0).get_partial_shape()
            check_input_shape(manifest, [d.get_length() if d.is_static else None for d in shape]
                              if shape.rank.is_static else [], self._file.name)
            self._batch = _batched(model, config.batch, self._file.name)
            self._compiled = core().compile_model(model, config.device, props)
        except RuntimeError as exc:
            first = runtime_reason(exc)
            if "device" in first.lower() or config.device.upper() not in ("CPU", "AUTO"):
                raise EngineError(
                    f"OpenVINO cannot use device {config.device!r}: {first} — available: "
                    f"{', '.join(available_devices())}"
                ) from None
            raise ModelError(f"OpenVINO cannot load {self._file.name}: {first}") from None
        # every name of each output: compiling merges tensor names (an Identity before an output, a
        # MatMul+Add head), and get_any_name() then returns another one than the ONNX file's
        ports = {name: port for port in self._compiled.outputs for name in port.get_names()}
        for out in (manifest.mask_output, manifest.class_output):
            if out not in ports:
                shown = sorted(port.get_any_name() for port in self._compiled.outputs)
                raise ModelError(
                    f"model {self._file.name} has no output {out!r} named in its manifest (it has {shown})")
        self._mask_port = ports[manifest.mask_output]
        self._class_port = ports[manifest.class_output]
        self._request = self._compiled.create_infer_request()
        # Twice the optimum: a finished request runs its Python callback (which waits for the GIL)
        # before it can be refilled, so with only the optimum a stream sits idle while the pipeline's
        # Python threads run. Measured on a cine clip, 2-core AVX2, runs alternated: 113 → 122 FPS.
        n = config.requests or 2 * int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._n_requests = max(1, n)
        self._queue = ov.AsyncInferQueue(self._compiled, self._n_requests)
        # infer_async gathers a batch here; the queue copies it into a request's own input tensor, after
        # which the buffer is a spare for a later batch (a fresh 800 KB buffer per batch cost page faults)
        self._gather = np.zeros((self._batch, *self._input_shape[1:]), np.float32)
        self._gathered: list[object] = []
        self._spares: list[np.ndarray] = []
        # an engine may be called from several threads: a lock for the gathering buffer (two threads'
        # frames shared its slots) and the closed flag, one for the synchronous request, and one around
        # start_async (two threads given one idle request: "Infer Request is busy"). A callback takes
        # none of them (OpenVINO frees a request only once its callback has returned)
        self._gather_lock = threading.Condition()
        self._taken = 0  # batches taken from the buffer and not yet started: wait() and close() wait for them
        self._request_lock = threading.Lock()
        self._submit_lock = threading.Lock()
        self._queue.set_callback(self._on_done)
        inner = self._float_precision()  # asked once: the compiled model is dropped at close()
        self._precision = f"int8+{inner}" if config.precision == "int8" else inner

    @property
    def precision(self) -> str:
        return self._precision

    def _float_precision(self) -> str:
        """The precision of the non-INT8 parts as compiled. AUTO (and MULTI, HETERO) don't answer
        that themselves: then it is the hint we passed through (fp32) or the default of the devices
        that actually run the model, named after it ("f32 on CPU")."""
        try:
            return _type_name(self._compiled.get_property("INFERENCE_PRECISION_HINT"))
        except RuntimeError:
            pass
        try:
            devices = [str(d) for d in self._compiled.get_property("EXECUTION_DEVICES")]
        except RuntimeError:
            return "unknown"
        if self.config.precision == "fp32":
            kinds = {"f32"}
        else:
            kinds = set()
            for dev in devices:
                if self._cpu_f32 and dev.split(".")[0] == "CPU":
                    kinds.add("f32")  # asked through DEVICE_PROPERTIES
                    continue
                try:
                    kinds.add(_type_name(core().get_property(dev.split(".")[0], "INFERENCE_PRECISION_HINT")))
                except RuntimeError:
                    kinds.add("unknown")
        return f"{'/'.join(sorted(kinds))} on {'+'.join(devices)}" if devices else "unknown"

    @property
    def model_file(self) -> str:
        return str(self._file)

    @property
    def requests(self) -> int:
        return self._n_requests

    @property
    def batch(self) -> int:
        return self._batch

    def infer(self, tensor: np.ndarray) -> ModelOutputs:
        """One frame, synchronously. A batched engine runs it in a batch of its own (the other
        places zero): as slow as a whole batch, so synchronous use wants ``batch=1``."""
        self.check_input(tensor)
        if self._batch > 1:
            tensor = np.concatenate([tensor, np.zeros((self._batch - 1, *tensor.shape[1:]), tensor.dtype)])
        with self._request_lock:  # one synchronous request: a second thread waits, not "Infer Request is busy"
            self.check_open()  # closed meanwhile
            try:
                res = self._request.infer({0: tensor})
            except RuntimeError as exc:
                raise EngineError(f"OpenVINO inference failed: {runtime_reason(exc)}") from None
            return self._outputs(res[self._mask_port][:1], res[self._class_port][:1])

    def layer_times(self) -> list[LayerTime]:
        if not self.config.profile:
            return super().layer_times()
        out = []
        with self._request_lock:
            self.check_open()
            infos = self._request.profiling_info
        for info in infos:
            ms = info.real_time.total_seconds() * 1e3
            if ms > 0 and str(info.status).endswith("EXECUTED"):  # Status.EXECUTED, not NOT_RUN / OPTIMIZED_OUT
                out.append(LayerTime(name=info.node_name, op=info.node_type, kernel=info.exec_type,
                                     precision=kernel_precision(info.exec_type), ms=ms))
        return out

    def _on_done(self, request: Any, user_data: object) -> None:
        # an exception must not leave this function: OpenVINO's callback thread aborts the process
        try:
            mask = request.get_tensor(self._mask_port).data
            logits = request.get_tensor(self._class_port).data
            assert isinstance(user_data, _Batch)  # what _start queues
            for k, item in enumerate(user_data.items):  # the padding after them is not answered
                self._deliver(item, self._outputs(mask[k:k + 1], logits[k:k + 1]))
        except BaseException as exc:  # noqa: BLE001 - raised again from wait()
            self._keep_error(exc)

    def infer_async(self, tensor: np.ndarray, user_data: object) -> None:
        self.check_input(tensor)
        self._raise_callback_error()
        if self._batch == 1:  # no copy into the gathering buffer
            self._start({0: tensor}, _Batch([user_data]))
            return
        with self._gather_lock:  # two threads' frames must not share a slot of the gathering buffer
            self.check_open()  # closed meanwhile
            self._gather[len(self._gathered)] = tensor[0]
            self._gathered.append(user_data)
            full = self._take_batch() if len(self._gathered) == self._batch else None
        if full is not None:
            self._send(full)

    def _take_batch(self) -> tuple[np.ndarray, _Batch]:
        """The gathered frames (zeros after them in a partial batch), a spare buffer in their place; the
        caller holds the gathering lock."""
        items, self._gathered = self._gathered, []
        full, self._gather = self._gather, (self._spares.pop() if self._spares else np.empty_like(self._gather))
        full[len(items):] = 0.0
        self._taken += 1
        return full, _Batch(items)

    def _send(self, batch: tuple[np.ndarray, _Batch]) -> None:
        """Start a batch taken with :meth:`_take_batch`; its buffer is a spare once the queue has copied it."""
        buffer, frames = batch
        try:
            self._start({0: buffer}, frames)
        finally:
            with self._gather_lock:
                self._spares.append(buffer)
                self._taken -= 1
                self._gather_lock.notify_all()

    def _start(self, inputs: dict[int, np.ndarray], frames: _Batch) -> None:
        queue = self._queue
        if queue is None:
            self.check_open()
        try:
            with self._submit_lock:
                queue.start_async(inputs, frames)  # copies the inputs (share_inputs=False)
        except RuntimeError as exc:
            raise EngineError(f"OpenVINO inference failed: {runtime_reason(exc)}") from None

    def wait(self) -> None:
        if self._drain(closing=False):
            self._raise_callback_error()

    def _drain(self, closing: bool) -> bool:
        """Send the partial batch, then wait until every batch taken (by any thread) has started and every
        request has completed; False when the engine was closed already. ``closing``: refuse new frames
        from here on (close)."""
        with self._gather_lock:
            if self._closed:
                return False
            self._closed = closing
            partial = self._take_batch() if self._gathered else None  # frames given are answered
            queue = self._queue
        if partial is not None:
            self._send(partial)
        with self._gather_lock:  # a batch another thread has just taken is in no list and not yet queued
            self._gather_lock.wait_for(lambda: self._taken == 0)
        queue.wait_all()
        return True

    def close(self) -> None:
        """Wait for the queued requests, then drop the compiled model (its memory and the open
        weights file): the queue's callback holds this engine, a cycle the GC does not break. Call it
        once the threads that submit frames are done, and never from a callback (it waits for them)."""
        try:
            self._drain(closing=True)
        finally:
            with self._request_lock:  # an infer() running on another thread finishes first
                self._queue = None
                self._request = None
                self._mask_port = self._class_port = None  # the ports hold the compiled model too
                self._compiled = None


class _Batch:
    """The ``user_data`` of one inference: each frame's own, in batch order (one without a batch)."""

    __slots__ = ("items",)

    def __init__(self, items: list[object]) -> None:
        self.items = items


def _batched(model: Any, batch: int, file_name: str) -> int:
    """Reshape ``model`` (an ``ov.Model`` with one input) to take ``batch`` frames; the batch it
    takes after: 1 when ``batch`` is 1 or the model can't be batched (a graph that mixes the frames
    of a batch, say; OpenVINO's reshape itself rewrites a ``Reshape`` to a fixed ``[1, N]``), which
    is logged; every output must then lead with that batch."""
    if batch == 1:
        return 1
    shape = model.input(0).get_partial_shape()  # the batch may be dynamic (an own model's IR)
    try:
        model.reshape([batch, *(d.get_length() for d in list(shape)[1:])])
        leads = [o.get_partial_shape()[0] for o in model.outputs]
        if any(not d.is_static or d.get_length() != batch for d in leads):
            raise RuntimeError(f"an output does not lead with the batch ({[str(d) for d in leads]})")
    except RuntimeError as exc:
        model.reshape(shape)
        log.info("%s does not take a batch of %d frames (%s): one frame per inference", file_name, batch,
                 runtime_reason(exc))
        return 1
    return batch


def runtime_reason(exc: BaseException) -> str:
    """The line of an OpenVINO exception that says what is wrong, not the ``Exception from
    src/...cpp:117:`` location lines that come first (nor one inside a line: the NPU plugin's
    "loading failed, aborting. Error: Exception from src/...cpp:22:" goes on on the next line)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    reasons = [_LOCATION.sub("", ln).strip() for ln in lines
               if not (ln.startswith("Exception from ") or ln.startswith("Check '"))]
    if len(reasons) > 1 and reasons[0].endswith(":"):  # its location was cut: the reason goes on
        reasons[:2] = [f"{reasons[0]} {reasons[1]}"]
    # a model the converter could not take: which operations it has no rule for is on a line of its own
    # ("Model wasn't fully converted." alone did not say that a Bernoulli node was why)
    missing = [ln.lstrip("- ").strip() for ln in reasons[1:] if "conversion rule" in ln]
    if reasons and missing:
        return f"{reasons[0]} {'; '.join(missing)}"
    return (reasons or lines or [type(exc).__name__])[0]


_LOCATION = re.compile(r"Exception from \S+:\d+:")


def kernel_precision(kernel: str) -> str:
    """The precision in an OpenVINO CPU kernel name: ``jit_avx2_1x1_I8`` → ``int8``,
    ``brgconv_avx2_dw_f32`` → ``f32``, ``ref_any_bf16`` → ``bf16``; ``?`` when it names none."""
    tail = kernel.rsplit("_", 1)[-1].lower()
    if tail in ("i8", "u8"):
        return "int8"
    if tail == "fp32":  # one name per precision, so the profile's f32 share counts it
        return "f32"
    return tail if tail in ("f32", "bf16", "f16", "i32") else "?"


def _type_name(value: object) -> str:
    """``<Type: 'float32'>`` / ``f32`` → ``float32`` / ``f32``."""
    text = str(value)
    return text.replace("<Type: '", "").replace("'>", "").split(":")[-1].strip() or text


#: the virtual devices that pass DEVICE_PROPERTIES on to the CPU (BATCH refuses them: compiling fails)
_VIRTUAL = tuple(d for d in VIRTUAL_DEVICES if d != "BATCH")


def _is_virtual(device: str) -> bool:
    """AUTO, MULTI or HETERO (with or without their ``:A,B`` candidate list)."""
    return device.upper().split(":")[0] in _VIRTUAL


def _may_run_on_cpu(device: str) -> bool:
    """``CPU``; or a virtual device whose candidates include it (AUTO without a list: any device)."""
    name, _, candidates = device.upper().partition(":")
    if name not in _VIRTUAL:
        return name.split(".")[0] == "CPU"
    return not candidates or "CPU" in (c.strip().split(".")[0] for c in candidates.split(","))
