"""A user's own ONNX model is checked against the edge-bus contract before it is quantised:
outputs found by name or shape (never by position), shapes and value ranges checked on real outputs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_bus.errors import ConfigError, DataError, ModelError
from edge_bus.model_import import quantize_model
from edge_bus.onnx_contract import check_outputs, inspect_onnx, output_producer
from edge_bus.quantize import calibration_tensors


def user_onnx(path: Path, *, names: tuple[str, str] = ("mask_logits", "class_logits"), swap: bool = False,
              sigmoid: bool = False, mask_channels: int = 1, n_classes: int = 2, dynamic_hw: bool = False,
              size: int = 32) -> Path:
    """image [1,1,S,S] → conv → mask [1,C,S,S] (optionally through a sigmoid) and class logits [1,K]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    mask_name, class_name = names
    inits = [numpy_helper.from_array(np.full((mask_channels, 1, 3, 3), 1.0, np.float32), "w"),
             numpy_helper.from_array(np.full((mask_channels,), -2.0, np.float32), "b"),
             numpy_helper.from_array(np.linspace(-1, 1, mask_channels * n_classes, dtype=np.float32)
                                     .reshape(mask_channels, n_classes), "wc"),
             numpy_helper.from_array(np.array([1, mask_channels], np.int64), "shape")]
    raw = "raw" if sigmoid else mask_name
    nodes = [helper.make_node("Conv", ["image", "w", "b"], [raw], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", [raw], ["pooled"]),
             helper.make_node("Reshape", ["pooled", "shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "wc"], [class_name])]
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["raw"], [mask_name]))
    hw: list[int | str] = ["H", "W"] if dynamic_hw else [size, size]
    outs = [helper.make_tensor_value_info(mask_name, TensorProto.FLOAT, [1, mask_channels, *hw]),
            helper.make_tensor_value_info(class_name, TensorProto.FLOAT, [1, n_classes])]
    graph = helper.make_graph(nodes, "user", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, *hw])],
                              outs[::-1] if swap else outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def session(path: Path):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def images(n: int = 4, size: int = 32) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.normal(size=(1, 1, size, size)).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize(("names", "swap"), [(("mask_logits", "class_logits"), True), (("seg", "cls"), True),
                                             (("seg", "cls"), False)], ids=["named-swapped", "by-shape-swapped",
                                                                             "by-shape"])
def test_outputs_are_found_by_name_or_shape_not_position(tmp_path: Path, names: tuple[str, str], swap: bool) -> None:
    path = user_onnx(tmp_path / "m.onnx", names=names, swap=swap)
    contract = inspect_onnx(session(path), path.name)
    assert (contract.mask_output, contract.class_output) == names
    assert (contract.input_name, contract.height, contract.width) == ("image", 32, 32)
    check_outputs(contract, session(path), images(), path.name)


def test_explicit_output_names_must_exist(tmp_path: Path) -> None:
    path = user_onnx(tmp_path / "m.onnx", names=("seg", "cls"))
    with pytest.raises(ModelError, match=r"no output 'mask' \(--mask-output\); its outputs: seg \[1, 1, 32, 32\]"):
        inspect_onnx(session(path), path.name, mask_output="mask")
    assert inspect_onnx(session(path), path.name, mask_output="seg", class_output="cls").mask_output == "seg"


def test_a_probability_mask_is_refused_and_positive_logits_are_not(tmp_path: Path) -> None:
    """A final sigmoid made every pixel a lesion (mask >= logit 0 everywhere) in a stream that exited 0.
    The op is what counts: logits that happen to lie in [0, 1] (a positive bias) are fine."""
    path = user_onnx(tmp_path / "m.onnx", sigmoid=True)
    contract = inspect_onnx(session(path), path.name)
    assert output_producer(path, "mask_logits") == "Sigmoid"
    with pytest.raises(ModelError, match="comes out of a Sigmoid, so it holds probabilities"):
        check_outputs(contract, session(path), images(), path.name, mask_producer=output_producer(path, "mask_logits"))
    plain = user_onnx(tmp_path / "plain.onnx")
    contract = check_outputs(inspect_onnx(session(plain), plain.name), session(plain), images(), plain.name,
                             mask_producer=output_producer(plain, "mask_logits"))
    assert output_producer(plain, "mask_logits") == "Conv"  # whatever values it gives, logits are not refused
    assert contract.mask_shape == (1, 1, 32, 32) and contract.class_shape == (1, 2)


def test_a_sigmoid_clamped_or_scaled_is_still_probabilities(tmp_path: Path) -> None:
    """torch.sigmoid(x).clamp(1e-4, 1 - 1e-4) ends in a Clip, and sigmoid(x) * c in a Mul: the Sigmoid
    was not seen, the model quantized, and every frame of its stream was a lesion with a full mask."""
    import onnx
    from onnx import helper, numpy_helper

    path = user_onnx(tmp_path / "m.onnx", sigmoid=True)
    model = onnx.load(str(path))
    graph = model.graph
    squash = next(n for n in graph.node if n.op_type == "Sigmoid")
    squash.output[0] = "p"
    graph.initializer.extend([numpy_helper.from_array(np.array(1e-4, np.float32), "lo"),
                              numpy_helper.from_array(np.array(1 - 1e-4, np.float32), "hi")])
    graph.node.extend([helper.make_node("Clip", ["p", "lo", "hi"], ["clamped"]),
                       helper.make_node("Constant", [], ["two"],
                                        value=numpy_helper.from_array(np.array(2.0, np.float32))),
                       helper.make_node("Mul", ["clamped", "two"], ["mask_logits"])])
    onnx.save(model, str(path))
    assert output_producer(path, "mask_logits") == "Sigmoid"
    with pytest.raises(ModelError, match="comes out of a Sigmoid, so it holds probabilities"):
        check_outputs(inspect_onnx(session(path), path.name), session(path), images(), path.name,
                      mask_producer=output_producer(path, "mask_logits"))
    assert output_producer(user_onnx(tmp_path / "plain.onnx"), "class_logits") == "MatMul"  # two varying inputs


def test_one_output_and_nan_outputs_are_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["image", "w"], ["mask_logits"], pads=[1, 1, 1, 1])], "one",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 32, 32])],
                              [helper.make_tensor_value_info("mask_logits", TensorProto.FLOAT, [1, 1, 32, 32])],
                              initializer=[w])
    one = tmp_path / "one.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(one))
    with pytest.raises(ModelError, match="has 1 output .*; edge-bus needs two: mask logits and class logits"):
        inspect_onnx(session(one), one.name)
    path = user_onnx(tmp_path / "m.onnx")
    contract = inspect_onnx(session(path), path.name)
    with pytest.raises(ModelError, match="NaN or infinite outputs"):
        check_outputs(contract, session(path), [np.full((1, 1, 32, 32), np.nan, np.float32)], path.name)


def test_the_class_output_must_fit_the_head(tmp_path: Path) -> None:
    """A 3-class softmax model was read as [presence, malignancy] and called every frame normal."""
    path = user_onnx(tmp_path / "m.onnx", n_classes=3)
    contract = inspect_onnx(session(path), path.name)
    with pytest.raises(ModelError, match="has 3 values .* needs 2 — pass --head softmax3"):
        check_outputs(contract, session(path), images(), path.name)
    check_outputs(inspect_onnx(session(path), path.name, head="softmax3"), session(path), images(), path.name)
    with pytest.raises(ConfigError, match="head 'sigmoid3' is not one of presence_malignancy, softmax3"):
        inspect_onnx(session(path), path.name, head="sigmoid3")


def test_a_two_channel_mask_and_dynamic_sizes_are_refused(tmp_path: Path) -> None:
    path = user_onnx(tmp_path / "two.onnx", mask_channels=2)
    with pytest.raises(ModelError, match=r"has shape \[1, 2, 32, 32\]; edge-bus needs \[1, 1, h, w\]"):
        check_outputs(inspect_onnx(session(path), path.name), session(path), images(), path.name)
    path = user_onnx(tmp_path / "dyn.onnx", dynamic_hw=True)
    with pytest.raises(ModelError, match="dynamic height or width .* export it with a fixed size"):
        inspect_onnx(session(path), path.name)


def test_calibration_skips_busi_and_busbra_masks(tmp_path: Path) -> None:
    from edge_bus.preprocess import InputSpec

    img = np.full((40, 40), 128, np.uint8)
    for rel in ("a.png", "a_mask.png", "Images/b.png", "Masks/mask_b.png", "mask_c.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / rel), img)
    assert len(calibration_tensors(tmp_path, InputSpec(32, 32, 0.5, 0.25))) == 2
    with pytest.raises(DataError, match="is a file, not a folder"):
        calibration_tensors(tmp_path / "a.png", InputSpec(32, 32, 0.5, 0.25))
    (tmp_path / "z.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # said what, not what to do
    with pytest.raises(DataError, match=r"cannot read image .*z.png: missing or not an image — remove it from "):
        calibration_tensors(tmp_path, InputSpec(32, 32, 0.5, 0.25))


def test_a_refused_model_leaves_no_folder_behind(tmp_path: Path) -> None:
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(3):
        cv2.imwrite(str(calib / f"{i}.png"), np.full((40, 40), 60 * i, np.uint8))
    with pytest.raises(ModelError, match="probabilities"):
        quantize_model(user_onnx(tmp_path / "m.onnx", sigmoid=True), calib, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="--mean must be a finite number"):
        quantize_model(user_onnx(tmp_path / "ok.onnx"), calib, tmp_path / "out", mean=float("nan"))
    with pytest.raises(ConfigError, match="--limit must be at least 1"):
        quantize_model(user_onnx(tmp_path / "ok.onnx"), calib, tmp_path / "out", limit=0)
    with pytest.raises(ModelError, match="is a folder, not an ONNX file"):
        quantize_model(calib, calib, tmp_path / "out")


def test_quantize_writes_a_golden_and_a_failure_leaves_the_old_model_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed or interrupted re-quantise deleted the previous model's files, and in place the
    --onnx input itself; now everything is built beside --out and moved in only when complete."""
    import edge_bus.model_import as mi
    from edge_bus.zoo import load_manifest

    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(3):
        cv2.imwrite(str(calib / f"{i}.png"), np.full((40, 40), 60 * i, np.uint8))
    out = tmp_path / "model"
    manifest = load_manifest(quantize_model(user_onnx(tmp_path / "m.onnx"), calib, out, name="mine").parent)
    manifest.verify()  # golden_demo.npz included: edge-bus doctor can check this model
    assert "golden_demo" in manifest.files and manifest.raw["outputs"]["mask"]["shape"] == [1, 1, 32, 32]
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(mi, "quantize_openvino", interrupted)
    for source in (tmp_path / "m.onnx", out / "model_fp32.onnx"):  # another model, and in place
        with pytest.raises(KeyboardInterrupt):
            quantize_model(source, calib, out, overwrite=True)
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_quantize_replaces_a_model_only_when_asked_and_never_a_folder_of_other_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--out models/emt_net`` replaced the shipped model without a word (and left its other files
    beside the new ones); a failure while moving the files in left a mix that no longer matched the
    manifest; a kill left a hidden folder that ``models list`` showed as a model."""
    from edge_bus.errors import OutputError
    from edge_bus.zoo import list_models, load_manifest

    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(3):
        cv2.imwrite(str(calib / f"{i}.png"), np.full((40, 40), 60 * i, np.uint8))
    out = tmp_path / "model"
    quantize_model(user_onnx(tmp_path / "m.onnx"), calib, out, name="first", golden=False)
    (out / "extra.txt").write_text("left by an older model")
    with pytest.raises(OutputError, match="already holds a model: pass --overwrite"):
        quantize_model(tmp_path / "m.onnx", calib, out, name="second", golden=False)
    assert load_manifest(out).name == "first"
    with pytest.raises(OutputError, match=r"holds files that are not its model's \(extra.txt\)"):
        quantize_model(tmp_path / "m.onnx", calib, out, name="second", golden=False, overwrite=True)
    assert (out / "extra.txt").exists()  # replaced as a whole, the folder would have taken it along
    (out / "extra.txt").unlink()
    quantize_model(tmp_path / "m.onnx", calib, out, name="second", golden=False, overwrite=True)
    second = load_manifest(out)
    second.verify()
    assert second.name == "second"
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("x")
    with pytest.raises(OutputError, match="not empty and holds no model"):
        quantize_model(tmp_path / "m.onnx", calib, other, overwrite=True)
    # the final rename fails: the model there is as it was
    import edge_bus.model_folder as mf

    real_replace = mf.os.replace

    def refuse_the_new(src: object, dst: object) -> None:
        if str(dst) == str(out) and ".partial-" in str(src):  # the staging folder becoming --out
            raise PermissionError(1, "Operation not permitted")
        real_replace(src, dst)

    monkeypatch.setattr(mf.os, "replace", refuse_the_new)
    with pytest.raises(OutputError, match="it is as it was"):
        quantize_model(tmp_path / "m.onnx", calib, out, name="third", golden=False, overwrite=True)
    monkeypatch.undo()
    assert load_manifest(out).name == "second"
    load_manifest(out).verify()

    def ctrl_c_between(src: object, dst: object) -> None:  # the old one moved aside, then Ctrl-C
        if str(dst) == str(out) and ".partial-" in str(src):
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(mf.os, "replace", ctrl_c_between)
    with pytest.raises(KeyboardInterrupt):
        quantize_model(tmp_path / "m.onnx", calib, out, name="fourth", golden=False, overwrite=True)
    monkeypatch.undo()
    assert load_manifest(out).name == "second"  # put back, not left in a hidden folder
    # what a kill leaves (a staging folder with a complete manifest) is not a model
    (tmp_path / ".model.partial-0000").mkdir()
    for f in out.iterdir():
        (tmp_path / ".model.partial-0000" / f.name).write_bytes(f.read_bytes())
    assert [m.name for m in list_models(tmp_path)] == ["second"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [".model.partial-0000"]


def test_a_class_output_without_its_batch_dimension_is_refused_as_such() -> None:
    """A [2] class output passed the check, then failed in the runtime with "has 1 values ... needs 2"."""
    from edge_bus.onnx_contract import OnnxContract

    class Session:
        def run(self, names: object, feeds: object) -> list[np.ndarray]:
            return [np.zeros((1, 1, 8, 8), np.float32), np.zeros((2,), np.float32)]

    contract = OnnxContract("image", 32, 32, "mask_logits", "class_logits", "presence_malignancy")
    with pytest.raises(ModelError, match=r"has shape \[2\]; edge-bus needs \[1, 2\] logits"):
        check_outputs(contract, Session(), [np.zeros((1, 1, 32, 32), np.float32)], "cls1d.onnx")


def _graph_onnx(path: Path, nodes: list[object], inputs: list[object], outputs: list[object],
                inits: list[object]) -> Path:
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, "user", inputs, outputs, initializer=inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def test_squashed_or_thresholded_outputs_and_odd_inputs_are_refused_with_what_to_do(tmp_path: Path) -> None:
    """A class head ending in Sigmoid passed (the runtime squashed it again: P(lesion) stayed in
    0.62-0.64 and every normal image was flagged); a bool or ArgMax mask passed (every lesion's mask
    filled the scan area); RGB / NHWC / uint8 inputs were refused without saying what to do."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")
    zero = numpy_helper.from_array(np.zeros((1,), np.float32), "zero")
    shape = numpy_helper.from_array(np.array([1, 1], np.int64), "shape")
    wc = numpy_helper.from_array(np.ones((1, 2), np.float32), "wc")
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 32, 32])
    conv = helper.make_node("Conv", ["image", "w"], ["raw"], pads=[1, 1, 1, 1])
    head = [helper.make_node("GlobalAveragePool", ["raw"], ["pooled"]),
            helper.make_node("Reshape", ["pooled", "shape"], ["flat"])]

    def out(name: str, kind: int = TensorProto.FLOAT, dims: list[int] | None = None) -> object:
        return helper.make_tensor_value_info(name, kind, dims or ([1, 1, 32, 32] if name == "mask_logits" else [1, 2]))

    mask = helper.make_node("Identity", ["raw"], ["mask_logits"])
    squashed = _graph_onnx(tmp_path / "cls_sigmoid.onnx", [conv, *head, mask,
                           helper.make_node("MatMul", ["flat", "wc"], ["z"]),
                           helper.make_node("Sigmoid", ["z"], ["class_logits"])],
                           [image], [out("mask_logits"), out("class_logits")], [w, shape, wc])
    contract = inspect_onnx(session(squashed), squashed.name)
    with pytest.raises(ModelError, match="class output class_logits of cls_sigmoid.onnx comes out of a Sigmoid, so it "
                                         "holds probabilities; .* export the model without its final Sigmoid"):
        check_outputs(contract, session(squashed), images(), squashed.name,
                      class_producer=output_producer(squashed, "class_logits"))
    binary = _graph_onnx(tmp_path / "mask_bool.onnx", [conv, *head, helper.make_node("Greater", ["raw", "zero"],
                         ["mask_logits"]), helper.make_node("MatMul", ["flat", "wc"], ["class_logits"])],
                         [image], [out("mask_logits", TensorProto.BOOL), out("class_logits")], [w, zero, shape, wc])
    with pytest.raises(ModelError, match="mask output mask_logits of mask_bool.onnx is bool .*needs float logits"):
        check_outputs(inspect_onnx(session(binary), binary.name), session(binary), images(), binary.name)
    for dims, said in (([1, 3, 32, 32], "export a one-channel model"), ([1, 32, 32, 1], "channels-last \\(NHWC\\)")):
        odd = _graph_onnx(tmp_path / "odd.onnx", [helper.make_node("Identity", ["image"], ["mask_logits"]),
                          helper.make_node("Identity", ["c"], ["class_logits"])],
                          [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
                          [out("mask_logits", dims=dims), out("class_logits")],
                          [numpy_helper.from_array(np.zeros((1, 2), np.float32), "c")])
        with pytest.raises(ModelError, match=f"edge-bus needs \\[1, 1, H, W\\] grayscale: .*{said}"):
            inspect_onnx(session(odd), odd.name)
    as_bytes = _graph_onnx(tmp_path / "u8.onnx", [helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
                           helper.make_node("Conv", ["f", "w"], ["mask_logits"], pads=[1, 1, 1, 1]),
                           helper.make_node("Identity", ["c"], ["class_logits"])],
                           [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 1, 32, 32])],
                           [out("mask_logits"), out("class_logits")],
                           [w, numpy_helper.from_array(np.zeros((1, 2), np.float32), "c")])
    with pytest.raises(ModelError, match=r"input image is tensor\(uint8\); edge-bus feeds float32 .*--mean / --std"):
        inspect_onnx(session(as_bytes), as_bytes.name)


def test_a_killed_runs_half_built_model_is_removed_by_the_next_run(tmp_path: Path) -> None:
    """SIGKILL skips the clean-up: each killed quantize or calibrate left a hidden .NAME.partial-* folder,
    up to a model's size, for good. The next run into the same --out removes those whose process is gone."""
    import os

    from edge_bus.model_folder import staged_model_folder

    dead = tmp_path / ".model.partial-999999999-dead"  # no such process
    alive = tmp_path / f".model.partial-{os.getpid()}-beef"  # a run still building (this process)
    other = tmp_path / ".other.partial-999999999-dead"  # another model's
    for folder in (dead, alive, other):
        folder.mkdir()
        (folder / "model.bin").write_bytes(b"half")
    with staged_model_folder(tmp_path / "model", overwrite=False) as staging:
        (staging / "manifest.json").write_text("{}")
    assert not dead.exists() and alive.exists() and other.exists()
    assert (tmp_path / "model" / "manifest.json").is_file()


def test_a_model_written_meanwhile_is_not_replaced_without_overwrite(tmp_path: Path) -> None:
    """Two quantize runs into one new --out both said "wrote": the second replaced the first's model."""
    from edge_bus.errors import OutputError
    from edge_bus.model_folder import staged_model_folder

    out = tmp_path / "model"
    with pytest.raises(OutputError, match=r"model already holds a model \(another run wrote it meanwhile\?\): pass "
                                          "--overwrite"):
        with staged_model_folder(out, overwrite=False) as staging:
            (staging / "manifest.json").write_text('{"name": "mine"}')
            out.mkdir()  # another run finished first
            (out / "manifest.json").write_text('{"name": "theirs"}')
    assert json.loads((out / "manifest.json").read_text()) == {"name": "theirs"}
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging folder left
    with staged_model_folder(out, overwrite=True) as staging:  # asked for: replaced
        (staging / "manifest.json").write_text('{"name": "mine"}')
    assert json.loads((out / "manifest.json").read_text()) == {"name": "mine"}


def test_an_out_that_is_a_link_writes_the_folder_it_points_to(tmp_path: Path) -> None:
    """A symbolic link to an empty folder failed after the whole quantization ("Not a directory"); one to a
    model folder, with --overwrite, was replaced by a new folder and the old model kept beside a stray link."""
    from edge_bus.model_folder import staged_model_folder

    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    for overwrite, name in ((False, "first"), (True, "second")):
        with staged_model_folder(link, overwrite=overwrite) as staging:
            (staging / "manifest.json").write_text(json.dumps({"name": name}))
        assert link.is_symlink() and json.loads((target / "manifest.json").read_text()) == {"name": name}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "target"]


def test_errors_while_building_name_the_out_folder_not_the_staging_one(tmp_path: Path) -> None:
    from edge_bus.errors import OutputError
    from edge_bus.model_folder import staged_model_folder

    with pytest.raises(OutputError) as caught:
        with staged_model_folder(tmp_path / "model", overwrite=False) as staging:
            raise OutputError(f"cannot write {staging / 'model_int8.bin'}: No space left on device")
    assert str(caught.value) == f"cannot write {tmp_path / 'model' / 'model_int8.bin'}: No space left on device"


def test_an_out_in_a_read_only_folder_is_refused_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found only after the conversion (quantize) or after scoring every image (calibrate)."""
    import os

    from edge_bus.errors import OutputError
    from edge_bus.model_folder import check_model_out

    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked)  # root passes a chmod: pretend
    with pytest.raises(OutputError, match=rf"cannot write the model to {locked / 'new' / 'model'}: no permission to "
                                          rf"write in it \({locked}\) — give --out a folder you can write in"):
        check_model_out(locked / "new" / "model", overwrite=False)
    check_model_out(tmp_path / "model", overwrite=False)


def test_the_folder_one_stands_in_is_refused_as_out_before_any_work(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``--out .`` built its staging folder inside itself and failed after all the work with "already holds
    a model"; a folder holding the current one would have been replaced as a whole."""
    from edge_bus.errors import OutputError
    from edge_bus.model_folder import check_model_out

    here = tmp_path / "work" / "here"
    here.mkdir(parents=True)
    monkeypatch.chdir(here)
    for out in (Path("."), Path(""), here, Path(".."), tmp_path):
        with pytest.raises(OutputError, match="is the folder you are in .or holds it.: the model replaces"):
            check_model_out(out, overwrite=True)
    check_model_out(Path("model"), overwrite=False)  # a new folder in it is fine


def test_weights_held_outside_the_onnx_file_on_constant_nodes_are_copied_in(tmp_path: Path) -> None:
    """A model whose weights are Constant nodes' values kept in an external file: the copy left them behind
    (only initializers were looked at), and ONNX Runtime then could not load the imported model."""
    import onnx
    from onnx import helper
    from onnx.external_data_helper import convert_model_to_external_data

    from edge_bus.model_import import _copy_onnx

    model = onnx.load(str(user_onnx(tmp_path / "plain.onnx")))
    g = model.graph
    consts = [helper.make_node("Constant", [], [t.name], value=t) for t in g.initializer]
    del g.initializer[:]
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(consts + nodes)
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="w.data", size_threshold=0,
                                   convert_attribute=True)
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    onnx.save_model(model, str(src_dir / "m.onnx"))
    dest_dir = tmp_path / "dest"
    dest_dir.mkdir()
    copied = _copy_onnx(src_dir / "m.onnx", dest_dir / "model_fp32.onnx")
    assert sorted(p.name for p in dest_dir.iterdir()) == ["model_fp32.onnx"]
    x = images(1)[0]
    np.testing.assert_allclose(session(copied).run(None, {"image": x})[0],
                               session(tmp_path / "plain.onnx").run(None, {"image": x})[0])


def test_external_weights_in_a_local_function_are_copied_in_and_sparse_ones_refused(tmp_path: Path) -> None:
    """A Constant inside a model-local function, its value kept outside the file, was left behind; ONNX's
    loader does not bring a sparse initializer's external values in, so such a model is refused in one line
    (it was copied pointing at a file that was not there)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnx.external_data_helper import convert_model_to_external_data, set_external_data

    from edge_bus.model_import import _copy_onnx

    value = numpy_helper.from_array(np.full((4,), 2.0, np.float32), "c")
    scale = helper.make_function("local", "Scale", ["x"], ["y"], [helper.make_node("Constant", [], ["k"], value=value),
                                 helper.make_node("Mul", ["x", "k"], ["y"])], [helper.make_opsetid("", 17)])
    io = ([helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    graph = helper.make_graph([helper.make_node("Scale", ["x"], ["y"], domain="local")], "g", *io)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
                              functions=[scale])
    model.ir_version = 8
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="w.data", size_threshold=0,
                                   convert_attribute=True)
    (tmp_path / "src").mkdir()
    (tmp_path / "dest").mkdir()
    onnx.save_model(model, str(tmp_path / "src" / "m.onnx"))
    copied = _copy_onnx(tmp_path / "src" / "m.onnx", tmp_path / "dest" / "m.onnx")
    assert [p.name for p in (tmp_path / "dest").iterdir()] == ["m.onnx"]
    out = ort.InferenceSession(str(copied), providers=["CPUExecutionProvider"]).run(None, {"x": np.ones(4, np.float32)})
    np.testing.assert_array_equal(out[0], np.full(4, 2.0, np.float32))

    sparse_model = onnx.load(str(user_onnx(tmp_path / "plain.onnx")))
    values = numpy_helper.from_array(np.ones(1, np.float32), "sv")
    (tmp_path / "src" / "sv.bin").write_bytes(values.raw_data)
    set_external_data(values, location="sv.bin")
    values.ClearField("raw_data")
    values.data_location = TensorProto.EXTERNAL
    sparse_model.graph.sparse_initializer.append(helper.make_sparse_tensor(
        values, numpy_helper.from_array(np.array([0], np.int64), "si"), [2]))
    onnx.save_model(sparse_model, str(tmp_path / "src" / "sparse.onnx"))
    with pytest.raises(ModelError, match="sparse.onnx: weights kept outside the file that ONNX does not load"):
        _copy_onnx(tmp_path / "src" / "sparse.onnx", tmp_path / "dest" / "sparse.onnx")


def test_calibration_images_are_spread_over_the_whole_folder(tmp_path: Path) -> None:
    """10 images, limit 4: images 0, 3, 6 and 9 (every n // limit-th, cut at the limit, took 0-3 and never
    reached the folder's end: no BUSI normals, a third of BUS-BRA)."""
    from edge_bus.preprocess import InputSpec

    for i in range(10):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), np.full((40, 40), 20 * i + 10, np.uint8))
    tensors = calibration_tensors(tmp_path, InputSpec(32, 32, 0.0, 1.0), limit=4)
    levels = [round(float(t.mean()) * 255) for t in tensors]
    assert levels == [10, 70, 130, 190]
    assert len(calibration_tensors(tmp_path, InputSpec(32, 32, 0.0, 1.0), limit=300)) == 10


def test_an_out_ending_in_dot_dot_builds_beside_the_folder_it_names(tmp_path: Path) -> None:
    """``m/onnx/..`` is m: its staging folder was made inside m/onnx, and the rename onto m failed after all
    the work ("Device or resource busy")."""
    from edge_bus.model_folder import staged_model_folder

    (tmp_path / "m" / "onnx").mkdir(parents=True)
    with staged_model_folder(tmp_path / "m" / "onnx" / "..", overwrite=True) as staging:
        (staging / "manifest.json").write_text("{}")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["manifest.json"]
    assert not [p for p in tmp_path.rglob("*partial*")]
