"""Manifests: the only way the runtime learns about a model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import tiny_model_dir

from edge_bus.errors import ModelError
from edge_bus.zoo import RecordedMetrics, list_models, load_manifest, model_statuses, resolve_model, scan_models


def test_tiny_manifest_round_trip(tmp_path: Path) -> None:
    m = load_manifest(tiny_model_dir(tmp_path / "tiny"))
    assert (m.name, m.input.height, m.input.width, m.input.mean, m.input.std) == ("tiny", 32, 32, 0.5, 0.25)
    assert (m.mask_output, m.class_output, m.head) == ("mask_logits", "class_logits", "presence_malignancy")
    assert set(m.operating_points) == {"sensitive", "balanced", "specific"}
    assert m.operating_point(None).name == "balanced"
    m.verify()


def test_unknown_operating_point_lists_valid(tmp_path: Path) -> None:
    m = load_manifest(tiny_model_dir(tmp_path / "tiny"))
    with pytest.raises(ModelError, match="valid: balanced, sensitive, specific"):
        m.operating_point("paranoid")


def test_tampered_file_fails_sha256(tmp_path: Path) -> None:
    folder = tiny_model_dir(tmp_path / "tiny")
    onnx = folder / "model_fp32.onnx"
    data = bytearray(onnx.read_bytes())
    data[-1] ^= 0xFF
    onnx.write_bytes(bytes(data))
    # the folder named: a modified copy of a shipped model read as the shipped one being corrupt
    with pytest.raises(ModelError, match=f"model 'tiny' in {folder}: model_fp32.onnx does not match its manifest"):
        load_manifest(folder).verify()


def test_missing_file_and_bad_manifest(tmp_path: Path) -> None:
    folder = tiny_model_dir(tmp_path / "tiny")
    (folder / "model_fp32.onnx").unlink()
    with pytest.raises(ModelError, match="is missing"):
        load_manifest(folder).verify()
    (folder / "manifest.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(ModelError, match="invalid"):
        load_manifest(folder)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot read"):
        load_manifest(folder)


def test_resolve_by_name_path_and_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny_model_dir(tmp_path / "zoo" / "tiny")
    monkeypatch.setenv("EDGE_BUS_MODELS", str(tmp_path / "zoo"))
    assert resolve_model("tiny").name == "tiny"
    assert resolve_model(str(tmp_path / "zoo" / "tiny" / "manifest.json")).name == "tiny"
    assert [m.name for m in list_models()] == ["tiny"]
    with pytest.raises(ModelError, match="unknown model 'nope'; shipped models: tiny"):
        resolve_model("nope")
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(str(tmp_path / "missing.json"))


def test_shipped_model_manifest_is_complete(shipped_model_dir: Path) -> None:
    m = load_manifest(shipped_model_dir)
    m.verify()
    assert {"openvino_int8_xml", "openvino_int8_bin", "onnx_fp32"} <= set(m.files)
    assert set(m.operating_points) == {"sensitive", "balanced", "specific"}
    for op in m.operating_points.values():
        assert op.val_sensitivity is not None and op.val_specificity is not None
    assert m.raw["training"]["test"].startswith("BUSI fold 0")
    assert {"fp32", "int8"} <= set(m.raw["metrics"]["test_busi_fold0"])


def test_a_model_file_instead_of_its_folder_says_what_to_do(tmp_path: Path) -> None:
    """--model my.onnx (the natural mistake) ended in a UnicodeDecodeError traceback."""
    onnx = tiny_model_dir(tmp_path / "tiny") / "model_fp32.onnx"
    with pytest.raises(ModelError, match=r"is a model file, not a model folder: .* — give its folder \(.*tiny\)"):
        resolve_model(str(onnx))
    alone = tmp_path / "alone"
    alone.mkdir()
    for name, advice in (("mine.onnx", "for your own ONNX model: edge-bus models quantize --onnx .*mine.onnx"),
                         ("mine.xml", "an OpenVINO IR needs the ONNX model it came from")):  # not --onnx mine.xml
        (alone / name).write_bytes(onnx.read_bytes())
        with pytest.raises(ModelError, match=f"is a model file, not a model folder: .* — {advice}"):
            resolve_model(str(alone / name))
    binary = tmp_path / "weights.json"
    binary.write_bytes(b"\x97\xff\x00binary")
    with pytest.raises(ModelError, match="cannot read .* as a model manifest"):
        load_manifest(binary)


def test_a_broken_manifest_does_not_hide_the_other_models(tmp_path: Path) -> None:
    tiny_model_dir(tmp_path / "good")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "manifest.json").write_text("")  # a quantize stopped by a full disk
    assert [m.name for m in list_models(tmp_path)] == ["tiny"]
    [broken] = scan_models(tmp_path).unreadable
    assert broken.folder.name == "half" and "cannot read" in broken.reason


def test_a_zoo_model_resolves_by_its_manifest_name_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """models list shows manifest names; --model NAME looked only at folder names."""
    tiny_model_dir(tmp_path / "folder_a")
    monkeypatch.setenv("EDGE_BUS_MODELS", str(tmp_path))
    assert resolve_model("tiny").folder.name == "folder_a"
    assert resolve_model("folder_a").name == "tiny"


def test_an_unreadable_model_file_is_a_model_error_and_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file the user may not read (chmod 000 as another user) gave a PermissionError traceback."""
    from edge_bus import zoo

    tiny_model_dir(tmp_path / "tiny")

    def denied(path: Path) -> str:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(zoo, "sha256_file", denied)
    with pytest.raises(ModelError, match="cannot read .*: Permission denied — check the file's permissions"):
        load_manifest(tmp_path / "tiny").verify()
    [row] = zoo.model_statuses(tmp_path)
    assert row.name == "tiny" and row.problem is not None and "Permission denied" in row.problem


def _edited_manifest(folder: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return folder


def _set(section: str, key: str, value: object) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        data[section][key] = value
    return edit


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.update(thresholds=[]), "'thresholds' must be an object, got list"),
    (_set("thresholds", "operating_points", {}), "operating_points is empty"),
    (lambda d: d.update(files=["model_fp32.onnx"]), "'files' must be an object, got list"),
    (lambda d: d.update(input="NCHW"), "'input' must be an object"),
    (_set("input", "std", 0), "input std must be > 0, got 0"),
    (_set("input", "std", "nan"), "input std must be a finite number"),
    (_set("input", "mean", None), "input mean must be a number, got None"),
    (_set("thresholds", "mask", 1.0), "mask threshold must lie strictly between 0 and 1, got 1"),
    (_set("thresholds", "lesion", 1.5), "lesion threshold must lie between 0 and 1, got 1.5"),
    (_set("thresholds", "default_operating_point", "paranoid"), "default_operating_point 'paranoid' is not one of"),
    (lambda d: d["thresholds"]["operating_points"].update(balanced=0.5), "'balanced' must be an object, got float"),
    (lambda d: d["thresholds"]["operating_points"]["balanced"].update(threshold=-0.1),
     "operating point 'balanced' must lie between 0 and 1"),
    (lambda d: d["input"].update(shape=[1, 1, 0, 32]), r"input shape \[1, 1, 0, 32\] has a dimension below 1"),
    (lambda d: d["input"].update(shape=[1, 1, 10**400, 32]), "is not an image a model takes"),
    (lambda d: d["input"].update(shape=[1, 1, float("inf"), 32]), "manifest"),  # JSON 1e400: an OverflowError
    # defaulted to 0 and 1: a hand-written manifest ran its model unnormalised without a word
    (lambda d: d["input"].pop("mean"), "input.mean is missing — the model's normalisation"),
    (lambda d: d["input"].pop("std"), "input.std is missing"),
    # loaded from outside the folder, and models calibrate wrote its copy beside its --out, over a file there
    (_set("files", "onnx_fp32", "../evil.onnx"), "files.onnx_fp32 is '../evil.onnx': a model's files lie inside"),
    (_set("files", "onnx_fp32", "/tmp/evil.onnx"), "files.onnx_fp32 is '/tmp/evil.onnx'"),
    (_set("files", "onnx_fp32", "sub\\..\\..\\evil.onnx"), "files.onnx_fp32 is "),
    # OpenVINO then read <xml stem>.bin, which no sha256 covered
    (_set("files", "openvino_int8_xml", "model_int8.xml"), "files names openvino_int8_xml but no openvino_int8_bin"),
])
def test_a_manifest_the_runtime_cannot_use_is_one_model_error(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    """Each of these was a traceback (AttributeError, StopIteration) or a ZeroDivisionError mid-stream."""
    folder = _edited_manifest(tiny_model_dir(tmp_path / "tiny"), edit)
    with pytest.raises(ModelError, match=message):
        load_manifest(folder)
    [broken] = scan_models(tmp_path).unreadable  # and models list still lists it, with the reason
    assert message.split(" ")[0].strip("'\\") in broken.reason


def test_a_metrics_section_of_another_shape_only_hides_the_metrics(tmp_path: Path) -> None:
    """``"metrics": []`` made models list and models info fail with AttributeError."""
    folder = _edited_manifest(tiny_model_dir(tmp_path / "tiny"), lambda d: d.update(metrics=[]))
    assert load_manifest(folder).test_metrics == {}
    folder = _edited_manifest(folder, lambda d: d.update(
        metrics={"test_busi_fold0": {"int8": {"dice": 0.7, "auc": "high"}, "fp32": 3}}))
    m = load_manifest(folder)
    assert m.test_metrics == {"int8": RecordedMetrics(dice=0.7)}
    [row] = model_statuses(tmp_path)
    assert (row.test_dice, row.test_auc, row.problem) == (0.7, None, None)


def test_the_lesion_thresholds_evidence_is_read_where_present_and_well_formed(tmp_path: Path) -> None:
    from edge_bus.zoo import LesionThresholdEvidence

    folder = tiny_model_dir(tmp_path / "tiny")
    assert load_manifest(folder).lesion_evidence == LesionThresholdEvidence()  # none recorded
    assert LesionThresholdEvidence().sentence() is None and LesionThresholdEvidence(None, 0.5, None).sentence() is None
    folder = _edited_manifest(folder, lambda d: d["thresholds"].update(
        lesion_val={"lesion_recall": 0.8062, "normal_flagged": 0.0, "data": "BUSI fold 1"}))
    assert load_manifest(folder).lesion_evidence == LesionThresholdEvidence("BUSI fold 1", 0.8062, 0.0)
    folder = _edited_manifest(folder, lambda d: d["thresholds"].update(lesion_val={"lesion_recall": "most"}))
    assert load_manifest(folder).lesion_evidence == LesionThresholdEvidence()  # display only: ignored, not an error
    folder = _edited_manifest(folder, lambda d: d["thresholds"].update(lesion_val=[1]))
    assert load_manifest(folder).lesion_evidence == LesionThresholdEvidence()


def test_models_info_and_list_read_the_typed_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from edge_bus.cli import app

    _edited_manifest(tiny_model_dir(tmp_path / "tiny"), lambda d: d.update(
        architecture="emt_net", encoder="efficientnet_lite0", metrics={"test_busi_fold0": {"int8": {"dice": 0.61}}}))
    monkeypatch.setenv("EDGE_BUS_MODELS", str(tmp_path))
    info = CliRunner().invoke(app, ["models", "info", "tiny"])
    assert info.exit_code == 0, info.output
    assert "emt_net (efficientnet_lite0)" in info.output and "int8: Dice 0.61 AUC None" in info.output
    listing = CliRunner().invoke(app, ["models", "list"])
    assert listing.exit_code == 0 and "0.61" in listing.output


def test_info_says_which_cpu_class_the_thresholds_came_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """INT8 results differ slightly between AVX2 and AVX512-VNNI kernels (the shipped thresholds moved
    by up to 0.05 when chosen on the other class): `models info` and `eval` say so where they differ."""
    from typer.testing import CliRunner

    import edge_bus.cli.models as cli_models
    from edge_bus.cli import app
    from edge_bus.telemetry.hardware import kernel_class

    folder = tiny_model_dir(tmp_path / "tiny")
    assert load_manifest(folder).measured_on == {} and load_manifest(folder).cpu_class_note("vnni") is None
    _edited_manifest(folder, lambda d: d.update(measured_on={"cpu_model": "AMD EPYC", "isa": "avx2",
                                                             "openvino": "2026.4.1"}))
    m = load_manifest(folder)
    assert m.measured_on["isa"] == "avx2" and m.cpu_class_note("avx2") is None
    note = m.cpu_class_note("vnni")
    assert note is not None and "avx2 INT8 kernels; this CPU runs vnni" in note and "models calibrate tiny" in note
    monkeypatch.setenv("EDGE_BUS_MODELS", str(tmp_path))
    for isa, expect_note in (({"avx2": True}, False), ({"avx2": True, "avx512_vnni": True}, True)):
        monkeypatch.setattr(cli_models, "kernel_class", lambda isa=isa: kernel_class(isa))  # this CPU, as if
        info = CliRunner().invoke(app, ["models", "info", "tiny"])
        assert info.exit_code == 0, info.output
        assert "measured on: AMD EPYC (avx2 INT8 kernels), OpenVINO 2026.4.1" in info.output
        assert ("note: tiny's thresholds" in info.output) == expect_note


def test_a_manifest_nested_too_deep_and_an_empty_name_are_model_errors(tmp_path: Path) -> None:
    """A manifest 100,000 brackets deep was a RecursionError traceback; ``models info ""`` showed emt_net."""
    folder = tmp_path / "deep"
    folder.mkdir()
    (folder / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelError, match="cannot read .* as a model manifest"):
        load_manifest(folder)
    with pytest.raises(ModelError, match="the model name is empty"):
        resolve_model(" ")


def test_a_model_file_in_a_subfolder_and_an_upper_case_digest_load(tmp_path: Path) -> None:
    """PowerShell's Get-FileHash prints upper case: it failed as 'the file was modified'."""
    folder = tiny_model_dir(tmp_path / "tiny")
    (folder / "onnx").mkdir()
    (folder / "model_fp32.onnx").rename(folder / "onnx" / "model_fp32.onnx")

    def edit(d: dict[str, Any]) -> None:
        digest = d["sha256"].pop("model_fp32.onnx")
        d["files"]["onnx_fp32"] = "onnx/model_fp32.onnx"
        d["sha256"]["onnx/model_fp32.onnx"] = digest.upper()

    manifest = load_manifest(_edited_manifest(folder, edit))
    manifest.verify()
    assert manifest.path("onnx_fp32") == folder / "onnx" / "model_fp32.onnx"


def test_a_folder_here_named_like_a_model_does_not_hide_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`stream --out emt_net` made ./emt_net, and every later run without --model failed: "no manifest.json
    in emt_net". Two models quantized from a `model.onnx` each are both "model": that said "unknown model"."""
    tiny_model_dir(tmp_path / "zoo" / "tiny")
    monkeypatch.setenv("EDGE_BUS_MODELS", str(tmp_path / "zoo"))
    here = tmp_path / "here"
    (here / "tiny").mkdir(parents=True)  # a run's output folder
    (here / "other").mkdir()
    monkeypatch.chdir(here)
    assert resolve_model("tiny").folder == tmp_path / "zoo" / "tiny"
    with pytest.raises(ModelError, match="no manifest.json in other"):  # no model of that name: the folder's problem
        resolve_model("other")
    for sub in ("a", "b"):
        _edited_manifest(tiny_model_dir(tmp_path / "zoo" / sub), lambda d: d.update(name="model"))
    with pytest.raises(ModelError, match="model name 'model' is ambiguous: 2 models have it .* give the folder"):
        resolve_model("model")
