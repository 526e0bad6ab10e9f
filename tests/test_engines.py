"""One contract test class for every engine: same outputs for the same model, whatever the runtime."""

from __future__ import annotations

import gc
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_model_dir

from edge_bus.engines import EngineConfig, create_engine
from edge_bus.errors import ConfigError, EngineError, ModelError
from edge_bus.types import ModelOutputs
from edge_bus.zoo import load_manifest

CONFIGS = [("openvino", "fp32", 1), ("openvino", "default", 1), ("onnxruntime", "fp32", 1), ("openvino", "fp32", 3)]


@pytest.mark.parametrize(("backend", "precision", "batch"), CONFIGS,
                         ids=[f"{b}-{p}" + (f"-batch{n}" if n > 1 else "") for b, p, n in CONFIGS])
class TestEngineContract:
    @pytest.fixture
    def engine(self, tmp_path: Path, backend: str, precision: str, batch: int):  # type: ignore[no-untyped-def]
        m = load_manifest(tiny_model_dir(tmp_path / "tiny"))
        eng = create_engine(m, EngineConfig(backend=backend, precision=precision, hint="THROUGHPUT", requests=2,
                                            batch=batch))
        assert eng.batch == batch
        yield eng
        eng.close()

    def test_infer_matches_numpy_reference(self, engine) -> None:  # type: ignore[no-untyped-def]
        x = np.random.default_rng(0).normal(size=(1, 1, 32, 32)).astype(np.float32)
        out = engine.infer(x)
        padded = np.pad(x[0, 0], 1)
        ref = sum(padded[i : i + 32, j : j + 32] for i in range(3) for j in range(3)) - 2.0
        # the runtime's default precision is bf16 on CPUs with AMX or AVX512-BF16 ("bfloat16")
        tol = 0.05 if any(t in engine.precision for t in ("bf16", "bfloat16", "f16", "float16")) else 1e-4
        np.testing.assert_allclose(out.mask_logits, ref, atol=tol * 10, rtol=tol)
        mean = ref.mean()
        np.testing.assert_allclose(out.class_logits, [4 * mean + 1.0, mean - 0.5], atol=tol * 10, rtol=tol)
        assert engine.precision

    def test_async_delivers_every_request_once(self, engine) -> None:  # type: ignore[no-untyped-def]
        got: dict[int, ModelOutputs] = {}
        engine.set_callback(lambda tag, out: got.__setitem__(tag, out))
        xs = [np.full((1, 1, 32, 32), i / 10, np.float32) for i in range(12)]
        for i, x in enumerate(xs):
            engine.infer_async(x, i)
        engine.wait()
        assert sorted(got) == list(range(12))
        for i, x in enumerate(xs):
            np.testing.assert_allclose(got[i].mask_logits, engine.infer(x).mask_logits, atol=1e-2)


    def test_threads_each_get_their_own_answers(self, engine) -> None:  # type: ignore[no-untyped-def]
        """Two threads feeding a batched OpenVINO engine shared slots of its gathering buffer (37 of 64
        frames answered with another frame's logits), and its synchronous request refused a second
        thread ("Infer Request is busy"), where ONNX Runtime and the fake engine took both."""
        xs = [np.full((1, 1, 32, 32), i / 16, np.float32) for i in range(32)]
        expected = [engine.infer(x).class_logits for x in xs]
        got: dict[int, np.ndarray] = {}
        engine.set_callback(lambda tag, out: got.__setitem__(tag, out.class_logits))
        sync_errors: list[BaseException] = []

        def feed(first: int) -> None:
            for i in range(first, len(xs), 2):
                engine.infer_async(xs[i], i)

        def infer_sync() -> None:
            try:
                for i in range(8):
                    np.testing.assert_allclose(engine.infer(xs[i]).class_logits, expected[i], atol=1e-3)
            except BaseException as exc:  # noqa: BLE001 - reported below
                sync_errors.append(exc)

        threads = [threading.Thread(target=feed, args=(k,)) for k in (0, 1)]
        threads += [threading.Thread(target=infer_sync) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        engine.wait()
        assert not sync_errors, sync_errors
        assert sorted(got) == list(range(len(xs)))
        for i in range(len(xs)):
            np.testing.assert_allclose(got[i], expected[i], atol=1e-3)

    def test_a_callback_may_run_a_synchronous_inference(self, engine) -> None:  # type: ignore[no-untyped-def]
        """A lock held while start_async waited for a free request deadlocked a callback that called
        infer(): the request is freed only when its callback returns."""
        x = np.full((1, 1, 32, 32), 0.5, np.float32)
        got: list[object] = []
        engine.set_callback(lambda tag, out: got.append((tag, engine.infer(x).class_logits.shape)))

        def feed() -> None:
            for i in range(6):
                engine.infer_async(x, i)
            engine.wait()

        worker = threading.Thread(target=feed, daemon=True)
        worker.start()
        worker.join(timeout=30)
        assert not worker.is_alive(), "deadlocked"
        assert sorted(tag for tag, _ in got) == list(range(6))  # type: ignore[type-var]

    def test_a_wrong_tensor_is_an_engine_error(self, engine) -> None:  # type: ignore[no-untyped-def]
        for bad in (np.zeros((1, 3, 32, 32), np.float32), np.zeros((1, 1, 32, 32), np.float64),
                    np.zeros((32, 32), np.uint8), [[0.0]], np.float32(0.0)):  # a list, a 0-d array: were
            # AttributeError / ValueError from the batched engine's padding
            with pytest.raises(EngineError, match=r"takes a float32 tensor of shape \[1, 1, 32, 32\]"):
                engine.infer(bad)
            with pytest.raises(EngineError, match="float32 tensor"):
                engine.infer_async(bad, 0)

    def test_a_raising_callback_comes_back_from_wait(self, engine) -> None:  # type: ignore[no-untyped-def]
        """On OpenVINO's callback thread an escaping exception aborted the process at the next request."""
        def boom(_: object, __: ModelOutputs) -> None:
            raise ValueError("user callback failed")

        x = np.zeros((1, 1, 32, 32), np.float32)
        engine.set_callback(boom)
        for round_ in range(3):
            engine.infer_async(x, round_)
            with pytest.raises(ValueError, match="user callback failed"):
                engine.wait()
        got: list[object] = []
        engine.set_callback(lambda user_data, _: got.append(user_data))
        engine.infer_async(x, "after")
        engine.wait()
        assert got == ["after"] and engine.infer(x).class_logits.shape == (2,)

    def test_closed_engine_refuses_work(self, engine) -> None:  # type: ignore[no-untyped-def]
        with engine as same:
            assert same is engine
        x = np.zeros((1, 1, 32, 32), np.float32)
        with pytest.raises(EngineError, match="is closed"):
            engine.infer(x)
        with pytest.raises(EngineError, match="is closed"):
            engine.infer_async(x, 0)
        with pytest.raises(EngineError, match="is closed"):
            engine.layer_times()
        engine.wait()  # nothing queued: returns
        engine.close()  # twice is fine
        assert engine.precision and engine.requests >= 1


def test_unknown_backend_and_precision(tmp_path: Path) -> None:
    m = load_manifest(tiny_model_dir(tmp_path / "tiny"))
    with pytest.raises(ConfigError, match="valid backends: openvino, onnxruntime"):
        create_engine(m, EngineConfig(backend="tensorrt"))
    with pytest.raises(ConfigError, match="precision 'int4' is not one of int8, fp32, default"):
        create_engine(m, EngineConfig(precision="int4"))  # refused when the config is made (exit 2)
    with pytest.raises(ModelError, match="no openvino_int8_xml file"):
        create_engine(m, EngineConfig(precision="int8"))


def test_unknown_device_is_a_clear_error(tmp_path: Path) -> None:
    m = load_manifest(tiny_model_dir(tmp_path / "tiny"))
    with pytest.raises(EngineError, match="cannot use device 'NPU9'"):
        create_engine(m, EngineConfig(precision="fp32", device="NPU9"))


def test_int8_runs_its_float_layers_in_f32(shipped_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The INT8 IR's float parts (the stem and classifier kept out of INT8, the activations between
    INT8 layers) run in f32, as validated: left to the runtime they ran in bf16 on an AVX512-BF16 CPU
    and moved the model's outputs (the presence threshold chosen on BUSI fold 1 read 0.971, not 0.983)."""
    from edge_bus.engines import openvino as ov_engine

    asked: list[dict[str, object]] = []
    real_core = ov_engine.core()

    class Recording:
        def __getattr__(self, name: str) -> object:
            return getattr(real_core, name)

        def compile_model(self, model: object, device: str, props: dict[str, object]) -> object:
            asked.append(dict(props))
            return real_core.compile_model(model, device, props)

    monkeypatch.setattr(ov_engine, "core", lambda: Recording())
    m = load_manifest(shipped_model_dir)
    # a GPU or NPU keeps its own default for the INT8 IR (f16 is what those run fast); under AUTO the
    # CPU, when it runs the model, gets f32 through DEVICE_PROPERTIES (AUTO ran it in bf16)
    cpu_f32 = {"CPU": {"INFERENCE_PRECISION_HINT": "f32"}}
    for precision, device, hint, per_device in (("int8", "CPU", "f32", None), ("fp32", "CPU", "f32", None),
                                                ("default", "CPU", None, None), ("int8", "AUTO", None, cpu_f32),
                                                ("int8", "AUTO:CPU", None, cpu_f32)):
        asked.clear()
        eng = create_engine(m, EngineConfig(backend="openvino", precision=precision, device=device))
        try:
            assert [a.get("INFERENCE_PRECISION_HINT") for a in asked] == [hint]
            assert [a.get("DEVICE_PROPERTIES") for a in asked] == [per_device]
            if hint == "f32" or per_device:
                assert eng.precision in ("int8+float32", "float32", "int8+f32 on CPU"), eng.precision
        finally:
            eng.close()


def test_auto_runs_the_int8_model_as_the_cpu_does(shipped_model_dir: Path) -> None:
    """doctor --device AUTO failed on a CPU-only AVX512-BF16 machine: AUTO ran the CPU in bf16."""
    m = load_manifest(shipped_model_dir)
    x = np.random.default_rng(1).normal(size=(1, 1, m.input.height, m.input.width)).astype(np.float32)
    outs = []
    for device in ("CPU", "AUTO:CPU"):
        eng = create_engine(m, EngineConfig(backend="openvino", precision="int8", device=device))
        try:
            outs.append(eng.infer(x))
        finally:
            eng.close()
    np.testing.assert_array_equal(outs[0].mask_logits, outs[1].mask_logits)
    np.testing.assert_array_equal(outs[0].class_logits, outs[1].class_logits)


@pytest.mark.parametrize(("device", "cpu"), [("CPU", True), ("cpu.0", True), ("GPU", False), ("AUTO", True),
                                             ("AUTO:GPU,CPU", True), ("AUTO:GPU", False), ("MULTI:GPU.0,CPU", True),
                                             ("HETERO:NPU", False)])
def test_which_devices_may_run_on_the_cpu(device: str, cpu: bool) -> None:
    from edge_bus.engines.openvino import _may_run_on_cpu

    assert _may_run_on_cpu(device) is cpu


def test_shipped_int8_and_fp32_agree(shipped_model_dir: Path) -> None:
    m = load_manifest(shipped_model_dir)
    x = np.random.default_rng(0).normal(size=(1, 1, m.input.height, m.input.width)).astype(np.float32)
    outs = {}
    for backend, precision in [("openvino", "int8"), ("openvino", "fp32"), ("onnxruntime", "fp32")]:
        eng = create_engine(m, EngineConfig(backend=backend, precision=precision))
        outs[(backend, precision)] = eng.infer(x)
        assert eng.precision.startswith("int8") == (precision == "int8")
        eng.close()
    a, b = outs[("openvino", "fp32")], outs[("onnxruntime", "fp32")]
    np.testing.assert_allclose(a.class_logits, b.class_logits, atol=1e-2)
    agree = np.mean((outs[("openvino", "int8")].mask_logits > 0) == (b.mask_logits > 0))
    assert agree > 0.95


def test_openvino_loads_the_weights_its_manifest_names_and_verified(shipped_model_dir: Path, tmp_path: Path) -> None:
    """OpenVINO read <xml stem>.bin beside the .xml whatever the manifest named: a model whose weights had
    another name failed to load, and a tampered model_int8.bin beside it ran although models info said
    every file's sha256 was ok."""
    import shutil

    folder = tmp_path / "model"
    folder.mkdir()
    m = load_manifest(shipped_model_dir)
    for role in ("openvino_int8_xml", "openvino_int8_bin"):
        shutil.copy(m.path(role), folder / m.files[role])
    data = json.loads((shipped_model_dir / "manifest.json").read_text())
    data["files"] = {"openvino_int8_xml": "model_int8.xml", "openvino_int8_bin": "weights.bin"}
    data["sha256"] = {"model_int8.xml": m.sha256["model_int8.xml"], "weights.bin": m.sha256["model_int8.bin"]}
    (folder / "model_int8.bin").rename(folder / "weights.bin")
    tampered = bytearray((folder / "weights.bin").read_bytes())
    tampered[: len(tampered) // 2] = bytes(len(tampered) // 2)  # the first half of the weights zeroed
    (folder / "model_int8.bin").write_bytes(bytes(tampered))
    (folder / "manifest.json").write_text(json.dumps(data))
    x = np.random.default_rng(0).normal(size=(1, 1, m.input.height, m.input.width)).astype(np.float32)
    outs = []
    for manifest in (m, load_manifest(folder)):
        eng = create_engine(manifest, EngineConfig(backend="openvino", precision="int8"))
        outs.append(eng.infer(x))
        eng.close()
    np.testing.assert_array_equal(outs[0].class_logits, outs[1].class_logits)
    np.testing.assert_array_equal(outs[0].mask_logits, outs[1].mask_logits)
    from edge_bus.config import build_config
    from edge_bus.pipeline import run_stream

    # latency.json names the weights that ran (it named model_int8.bin, with no sha256)
    result = run_stream(build_config(source="demo", model=str(folder), max_frames=2, out=tmp_path / "run",
                                     video=False))
    assert result.latency["model"]["files_sha256"] == {"model_int8.xml": m.sha256["model_int8.xml"],
                                                        "weights.bin": m.sha256["model_int8.bin"]}


def test_openvino_default_requests_are_twice_the_runtime_optimum(tmp_path: Path) -> None:
    """Slack for the Python completion callbacks: a stream gets its next request while one waits for the GIL."""
    import openvino as ov

    m = load_manifest(tiny_model_dir(tmp_path / "tiny"))
    optimal = int(ov.Core().compile_model(str(m.path("onnx_fp32")), "CPU", {"PERFORMANCE_HINT": "THROUGHPUT"})
                  .get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    eng = create_engine(m, EngineConfig(backend="openvino", precision="fp32", hint="THROUGHPUT"))
    try:
        assert eng.requests == 2 * optimal
    finally:
        eng.close()
    explicit = create_engine(m, EngineConfig(backend="openvino", precision="fp32", hint="THROUGHPUT", requests=3))
    try:
        assert explicit.requests == 3
    finally:
        explicit.close()


def test_auto_device_reports_the_precision_of_the_device_that_ran(tmp_path: Path) -> None:
    """AUTO doesn't answer INFERENCE_PRECISION_HINT itself ("int8+unknown" before): the precision of
    the execution device is reported, named after it."""
    import openvino as ov

    m = load_manifest(tiny_model_dir(tmp_path / "tiny"))
    for precision, expect in (("fp32", "f32 on "), ("default", " on ")):
        eng = create_engine(m, EngineConfig(backend="openvino", precision=precision, device="AUTO"))
        try:
            ran = eng.precision
        finally:
            eng.close()
        assert expect in ran and "unknown" not in ran, ran
        devices = ran.split(" on ")[1].split("+")
        assert set(devices) <= set(ov.Core().available_devices)


def test_openvino_errors_keep_the_reason_not_the_source_location() -> None:
    from edge_bus.engines.openvino import runtime_reason

    exc = RuntimeError("Exception from src/inference/src/cpp/core.cpp:117:\nException from src/inference/src/dev/"
                       "core_impl.cpp:706:\nDevice with \"TPU\" name is not registered in the OpenVINO Runtime\n\n")
    assert runtime_reason(exc) == 'Device with "TPU" name is not registered in the OpenVINO Runtime'
    assert runtime_reason(RuntimeError("")) == "RuntimeError"
    # the NPU plugin (OpenVINO 2025) puts a location inside a line and the cause on the next one
    npu = RuntimeError("Exception from src/inference/src/cpp/core.cpp:117:\nVCL compiler loading failed, aborting. "
                       "Error: Exception from src/plugins/intel_npu/src/utils/src/vcl/vcl_api.cpp:22:\n"
                       "Cannot load library \"libnpu.so\": cannot open shared object file\n\n")
    assert runtime_reason(npu) == ('VCL compiler loading failed, aborting. Error: Cannot load library "libnpu.so": '
                                   "cannot open shared object file")
    # the converter names the operations it has no rule for on a line of its own (OpenVINO 2026's text)
    unconverted = RuntimeError("Check 'false' failed at src/frontends/common_translators/src/unconverted_ops_report"
                               ".cpp:151:\nFrontEnd API failed with OpConversionFailure:\nModel wasn't fully converted."
                               "\nSummary:\n-- No conversion rule found for operations: Bernoulli-17\n")
    assert runtime_reason(unconverted) == ("FrontEnd API failed with OpConversionFailure: Model wasn't fully "
                                           "converted. No conversion rule found for operations: Bernoulli-17")


def test_unknown_device_names_the_devices_there_are(tmp_path: Path) -> None:
    m = load_manifest(tiny_model_dir(tmp_path / "tiny"))
    with pytest.raises(EngineError, match=r"OpenVINO cannot use device 'TPU': Device with \"TPU\" name is not "
                                          r"registered.* — available: .*CPU"):
        create_engine(m, EngineConfig(backend="openvino", precision="fp32", device="TPU"))


def _open_fds_to(path: Path) -> int:
    fd_dir = Path("/proc/self/fd")
    n = 0
    for fd in fd_dir.iterdir():
        try:
            n += Path(fd.readlink()).resolve() == path.resolve()
        except OSError:
            pass
    return n


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd (Linux) to count open files")
def test_closing_an_openvino_engine_releases_its_model(shipped_model_dir: Path) -> None:
    """The request queue's callback held the engine (a cycle the GC did not break): every engine,
    so every run_stream in a long-lived app, kept its compiled model and mapped weights open
    (5 → 11 open files over 6 runs). The runtime's callback thread may keep the last one a while;
    the count must not grow with the number of engines."""
    m = load_manifest(shipped_model_dir)
    weights = m.path("openvino_int8_bin")
    spec = m.input
    tensor = np.zeros((1, spec.channels, spec.height, spec.width), np.float32)

    def open_and_close(n: int) -> int:
        for _ in range(n):
            eng = create_engine(m, EngineConfig(backend="openvino", precision="int8"))
            eng.set_callback(lambda *_: None)
            eng.infer_async(tensor, 0)
            eng.close()
            del eng
        gc.collect()
        time.sleep(0.2)
        return _open_fds_to(weights)

    before = _open_fds_to(weights)
    after_one = open_and_close(1)
    after_four = open_and_close(3)
    assert after_one <= before + 1 and after_four <= after_one, (before, after_one, after_four)


def test_outputs_that_do_not_fit_the_manifest_are_a_model_error(tmp_path: Path) -> None:
    """A model folder made before quantize checked its outputs (here: the manifest says softmax3, the
    model gives two logits) crashed in postprocess with an IndexError traceback mid-stream."""
    from edge_bus.quantize import write_manifest

    folder = tiny_model_dir(tmp_path / "tiny")
    data = json.loads((folder / "manifest.json").read_text())
    data["head"] = "softmax3"
    write_manifest(folder, data)
    with create_engine(load_manifest(folder), EngineConfig(backend="onnxruntime", precision="fp32")) as engine:
        with pytest.raises(ModelError, match="class output class_logits has 2 values, its manifest's head softmax3"):
            engine.infer(np.zeros((1, 1, 32, 32), np.float32))



def test_a_closed_engine_kept_by_the_caller_holds_no_model(shipped_model_dir: Path) -> None:
    """Its output ports still held the compiled model: an app keeping the exception of a failed run
    (which references the engine) kept the weights file open and 20-35 MB per failed run."""
    m = load_manifest(shipped_model_dir)
    weights = m.path("openvino_int8_bin")
    before = _open_fds_to(weights)
    kept = [create_engine(m, EngineConfig(backend="openvino", precision="int8")) for _ in range(3)]
    for eng in kept:
        eng.close()
    gc.collect()
    assert _open_fds_to(weights) <= before, "closed engines still map the weights"
    assert len(kept) == 3


def test_openvino_finds_outputs_by_any_of_their_names(tmp_path: Path) -> None:
    """A torch-like head (Flatten, MatMul, then Add writing class_logits): compiling fuses them and
    the output's first name became the MatMul's, so --precision fp32 failed with "has no output
    'class_logits' (it has ['/head/fc/MatMul_output_0', ...])" for a model quantize had accepted."""
    from helpers import save_contract_onnx
    from onnx import helper, numpy_helper

    from edge_bus.quantize import ONNX_FP32

    folder = tiny_model_dir(tmp_path / "m")
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in (
        ("w1", rng.normal(0, 0.3, (8, 1, 3, 3))), ("b1", np.zeros(8)), ("w2", rng.normal(0, 0.3, (1, 8, 1, 1))),
        ("b2", np.zeros(1)), ("wc", rng.normal(0, 0.5, (8, 2))), ("bc", np.zeros(2)))]
    nodes = [helper.make_node("Conv", ["image", "w1", "b1"], ["/enc/Conv_output_0"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["/enc/Conv_output_0"], ["/enc/Relu_output_0"]),
             helper.make_node("Conv", ["/enc/Relu_output_0", "w2", "b2"], ["mask_logits"]),
             helper.make_node("GlobalAveragePool", ["/enc/Relu_output_0"], ["/head/pool_output_0"]),
             helper.make_node("Flatten", ["/head/pool_output_0"], ["/head/Flatten_output_0"]),
             helper.make_node("MatMul", ["/head/Flatten_output_0", "wc"], ["/head/fc/MatMul_output_0"]),
             helper.make_node("Add", ["/head/fc/MatMul_output_0", "bc"], ["class_logits"])]
    save_contract_onnx(folder / ONNX_FP32, nodes, inits)
    manifest = json.loads((folder / "manifest.json").read_text())
    from edge_bus.quantize import write_manifest

    write_manifest(folder, manifest)  # the new file's sha256
    m = load_manifest(folder)
    tensor = np.zeros((1, 1, 32, 32), np.float32)
    with create_engine(m, EngineConfig(backend="openvino", precision="fp32")) as ov_engine, \
            create_engine(m, EngineConfig(backend="onnxruntime", precision="fp32")) as ort_engine:
        a, b = ov_engine.infer(tensor), ort_engine.infer(tensor)
    np.testing.assert_allclose(a.class_logits, b.class_logits, atol=1e-4)
    np.testing.assert_allclose(a.mask_logits, b.mask_logits, atol=1e-4)


def _frames(n: int) -> list[np.ndarray]:
    return [np.random.default_rng(i).normal(size=(1, 1, 224, 224)).astype(np.float32) for i in range(n)]


def _answers(engine, frames: list[np.ndarray]) -> dict[int, ModelOutputs]:  # type: ignore[no-untyped-def]
    got: dict[int, ModelOutputs] = {}
    engine.set_callback(lambda tag, out: got.__setitem__(tag, out))
    for i, x in enumerate(frames):
        engine.infer_async(x, i)
    engine.wait()
    return got


def test_a_batched_engine_answers_each_frame_as_it_does_alone(shipped_model_dir: Path) -> None:
    """The INT8 IR in batches of 4 (two full and a partial one, which wait sends): every frame reaches
    the callback once with its own user_data, and its answer is the one-frame engine's."""
    m = load_manifest(shipped_model_dir)
    frames = _frames(10)
    with create_engine(m, EngineConfig(precision="int8", hint="THROUGHPUT")) as single, \
            create_engine(m, EngineConfig(precision="int8", hint="THROUGHPUT", batch=4)) as batched:
        assert (single.batch, batched.batch) == (1, 4)
        alone, together = _answers(single, frames), _answers(batched, frames)
        sync = batched.infer(frames[5])  # one frame through the batched model: the others are zeros
    assert sorted(together) == list(range(10))
    for i in range(10):
        np.testing.assert_allclose(together[i].mask_logits, alone[i].mask_logits, atol=1e-4)
        np.testing.assert_allclose(together[i].class_logits, alone[i].class_logits, atol=1e-4)
    np.testing.assert_allclose(sync.class_logits, alone[5].class_logits, atol=1e-4)
    assert together[0].mask_logits.shape == alone[0].mask_logits.shape


def test_closing_a_batched_engine_answers_the_frames_it_gathered(shipped_model_dir: Path) -> None:
    """Three frames of a batch of 4 given to infer_async, then close (an interrupted run): all three are
    answered, as an engine without a batch answers every frame it took."""
    got: list[object] = []
    engine = create_engine(load_manifest(shipped_model_dir), EngineConfig(precision="int8", hint="THROUGHPUT",
                                                                          batch=4))
    engine.set_callback(lambda tag, _: got.append(tag))
    for i, x in enumerate(_frames(3)):
        engine.infer_async(x, i)
    assert got == []  # still gathering
    engine.close()
    assert sorted(got) == [0, 1, 2]  # type: ignore[type-var]


def test_a_model_with_a_fixed_batch_runs_one_frame_at_a_time(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """A model whose graph mixes the frames of a batch (here a mean over the batch axis too, the same as
    a global average pool for one frame) cannot take 4: its class output would not lead with the batch.
    The engine says so in the log and runs one frame per inference, with the same answers. (A Reshape
    to a fixed [1, 1] does not stop it: OpenVINO's reshape rewrites those.)"""
    from helpers import save_contract_onnx
    from onnx import helper, numpy_helper

    from edge_bus.quantize import ONNX_FP32, write_manifest

    folder = tiny_model_dir(tmp_path / "fixed")
    inits = [numpy_helper.from_array(a, n) for n, a in (
        ("w", np.ones((1, 1, 3, 3), np.float32)), ("b", np.array([-2.0], np.float32)),
        ("wc", np.array([[4.0, 1.0]], np.float32)), ("bc", np.array([1.0, -0.5], np.float32)),
        ("shape", np.array([1, 1], np.int64)))]
    nodes = [helper.make_node("Conv", ["image", "w", "b"], ["mask_logits"], pads=[1, 1, 1, 1]),
             helper.make_node("ReduceMean", ["mask_logits"], ["pooled"], axes=[0, 2, 3], keepdims=1),
             helper.make_node("Reshape", ["pooled", "shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "wc"], ["mm"]),
             helper.make_node("Add", ["mm", "bc"], ["class_logits"])]
    save_contract_onnx(folder / ONNX_FP32, nodes, inits)
    write_manifest(folder, json.loads((folder / "manifest.json").read_text()))
    m = load_manifest(folder)
    xs = [np.full((1, 1, 32, 32), i / 10, np.float32) for i in range(5)]
    with caplog.at_level("INFO", logger="edge_bus.engines.openvino"), \
            create_engine(m, EngineConfig(precision="fp32", hint="THROUGHPUT", batch=4)) as engine:
        assert engine.batch == 1
        got = _answers(engine, xs)
    assert "does not take a batch of 4 frames" in caplog.text and "one frame per inference" in caplog.text
    with create_engine(m, EngineConfig(backend="onnxruntime", precision="fp32")) as reference:
        for i, x in enumerate(xs):
            np.testing.assert_allclose(got[i].class_logits, reference.infer(x).class_logits, atol=1e-4)


@pytest.mark.parametrize(("kw", "message"), [
    ({"batch": 0}, "batch must be 1 to 16 frames, got 0"),
    ({"batch": 17}, "batch must be 1 to 16 frames, got 17"),
    ({"batch": 2, "backend": "onnxruntime", "precision": "fp32"}, "only the OpenVINO engine batches frames"),
])
def test_a_batch_the_engine_cannot_run_is_a_config_error(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EngineConfig(**kw)  # type: ignore[arg-type]


def test_a_model_with_a_dynamic_batch_runs_in_batches(tmp_path: Path) -> None:
    """An own model exported with a dynamic batch ([N, 1, H, W], which the contract allows) is fixed
    to the batch asked for, and answers as the same model one frame at a time."""
    import onnx

    from edge_bus.quantize import ONNX_FP32, write_manifest

    folder = tiny_model_dir(tmp_path / "dynamic")
    model = onnx.load(str(folder / ONNX_FP32))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    onnx.save(model, str(folder / ONNX_FP32))
    write_manifest(folder, json.loads((folder / "manifest.json").read_text()))
    m = load_manifest(folder)
    xs = [np.full((1, 1, 32, 32), i / 10, np.float32) for i in range(6)]
    with create_engine(m, EngineConfig(precision="fp32", hint="THROUGHPUT", batch=4)) as engine:
        assert engine.batch == 4
        got = _answers(engine, xs)
    with create_engine(m, EngineConfig(backend="onnxruntime", precision="fp32")) as reference:
        for i, x in enumerate(xs):
            want = reference.infer(x)
            np.testing.assert_allclose(got[i].class_logits, want.class_logits, atol=1e-4)
            np.testing.assert_allclose(got[i].mask_logits, want.mask_logits, atol=1e-4)


def test_wait_covers_a_batch_another_thread_is_starting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch another thread had just taken from the gathering buffer was in no list and not yet in
    the queue: wait() returned before this thread's own frames in it were answered."""
    engine = create_engine(load_manifest(tiny_model_dir(tmp_path / "tiny")),
                           EngineConfig(precision="fp32", hint="THROUGHPUT", requests=2, batch=3))
    got: list[object] = []
    engine.set_callback(lambda tag, _: got.append(tag))
    x = np.zeros((1, 1, 32, 32), np.float32)
    started, release = threading.Event(), threading.Event()
    real_send = engine._send  # type: ignore[attr-defined]

    def slow_send(batch: object) -> None:
        started.set()
        release.wait(5)
        real_send(batch)

    monkeypatch.setattr(engine, "_send", slow_send)
    engine.infer_async(x, "mine0")
    engine.infer_async(x, "mine1")
    other = threading.Thread(target=engine.infer_async, args=(x, "other"))  # fills the batch, starts it slowly
    other.start()
    assert started.wait(5)
    waiter = threading.Thread(target=engine.wait)
    waiter.start()
    time.sleep(0.2)
    still_waiting = waiter.is_alive()  # it returned at once before
    release.set()
    waiter.join(5)
    other.join(5)
    engine.close()
    assert still_waiting and sorted(map(str, got)) == ["mine0", "mine1", "other"]


@pytest.mark.parametrize(("backend", "shape"), [("onnxruntime", [1, 1, 40, 40]), ("openvino", [1, 1, 40, 40]),
                                                ("onnxruntime", [1, 3, 32, 32])])
def test_a_manifest_of_another_input_shape_is_refused_at_load(tmp_path: Path, backend: str, shape: list[int]) -> None:
    """It failed at the first frame, in ONNX Runtime's message cut off mid-sentence ("...for the following
    indices") or OpenVINO's "got [4,1,40,40] expecting [4,1,32,32]"."""
    folder = tiny_model_dir(tmp_path / "tiny")
    data = json.loads((folder / "manifest.json").read_text())
    data["input"]["shape"] = shape
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match=rf"model 'tiny': its manifest says the input is \[1, {shape[1]}, "
                                         rf"{shape[2]}, {shape[3]}\] but model_fp32.onnx takes \[1, 1, 32, 32\] — the "
                                         "manifest belongs to another model"):
        create_engine(load_manifest(folder), EngineConfig(backend=backend, precision="fp32"))
