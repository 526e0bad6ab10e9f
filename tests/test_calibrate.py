"""Site calibration: thresholds chosen on a site's labelled images, written into a copy of the model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import read_json, tiny_model_dir
from typer.testing import CliRunner

from edge_bus.calibrate import calibrate, choose_thresholds
from edge_bus.cli import app
from edge_bus.errors import DataError, OutputError
from edge_bus.evaluation import ImageResult
from edge_bus.golden import GOLDEN_ROLE, Golden, decision_settings, golden_paths
from edge_bus.telemetry.hardware import CLASS_CAPS
from edge_bus.zoo import load_manifest, resolve_model


def _result(label: str, malignancy: float, lesion_prob: float) -> ImageResult:
    return ImageResult(name=f"{label}-{malignancy}", label=label, lesion_prob=lesion_prob, malignancy=malignancy,
                       predicted=label, dice=None, iou=None)


def _site(n: int = 60, normals: int = 20, seed: int = 0) -> list[ImageResult]:
    rng = np.random.default_rng(seed)
    out = [_result("benign", float(rng.beta(2, 5)), float(rng.uniform(0.6, 1.0))) for _ in range(n)]
    out += [_result("malignant", float(rng.beta(5, 2)), float(rng.uniform(0.6, 1.0))) for _ in range(n // 2)]
    out += [_result("normal", 0.0, float(rng.uniform(0.0, 0.7))) for _ in range(normals)]
    return out


def test_operating_points_meet_their_definitions_on_the_calibration_images() -> None:
    t = choose_thresholds(_site(), "site A")
    ops = t["operating_points"]
    assert ops["sensitive"]["val_sensitivity"] >= 0.94 and ops["specific"]["val_specificity"] >= 0.94
    assert ops["sensitive"]["threshold"] <= ops["balanced"]["threshold"] <= ops["specific"]["threshold"]
    assert all(op["data"] == "site A" for op in ops.values()) and t["default_operating_point"] == "balanced"
    assert t["lesion_val"]["data"] == "site A" and 0.0 <= t["lesion_val"]["normal_flagged"] <= 1.0


def test_without_normals_the_models_lesion_threshold_is_kept_and_said() -> None:
    lesions = [r for r in _site() if r.label != "normal"]
    t = choose_thresholds(lesions, "site B", keep_lesion=0.77)
    assert t["lesion"] == 0.77 and "no normal images" in t["lesion_val"]["data"]
    with pytest.raises(DataError, match="no normal images"):
        choose_thresholds(lesions, "site B")


def test_one_class_of_lesion_is_not_enough() -> None:
    benign_only = [r for r in _site() if r.label != "malignant"]
    with pytest.raises(DataError, match="benign and malignant"):
        choose_thresholds(benign_only, "site C")


def test_calibrating_into_the_models_own_folder_is_refused(tmp_path: Path) -> None:
    folder = tiny_model_dir(tmp_path / "tiny")
    with pytest.raises(OutputError, match="own folder"):
        calibrate(str(folder), tmp_path, folder)


def test_calibrating_over_a_model_needs_overwrite_and_never_replaces_other_files(tmp_path: Path) -> None:
    """Both refused before any image is scored (the data folder here does not even exist)."""
    folder = tiny_model_dir(tmp_path / "tiny")
    other = tiny_model_dir(tmp_path / "other")
    with pytest.raises(OutputError, match="already holds a model: pass --overwrite"):
        calibrate(str(folder), tmp_path / "no-data", other)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("x")
    with pytest.raises(OutputError, match="not empty and holds no model"):
        calibrate(str(folder), tmp_path / "no-data", notes, overwrite=True)


def test_shipped_thresholds_are_reproduced_on_busi_fold_1(shared_data: Path, tmp_path: Path) -> None:
    """The shipped manifest's thresholds were chosen on BUSI fold 1 (INT8 OpenVINO) on a CPU of the
    ISA class its ``measured_on`` names: calibrating there with the INT8 kernels of that class gives
    them back, and the copy loads, verifies and records where they came from. (INT8 outputs differ
    by ISA: on an AVX512-VNNI CPU the same IR moved P(malignant) by ~0.01 and the Youden-J lesion
    threshold from 0.983 to 0.966; an AVX2 CPU runs the recorded kernels whatever the cap.)"""
    busi = shared_data / "busi"
    out = tmp_path / "emt_net_busi"
    isa = read_json(resolve_model("emt_net").folder / "manifest.json")["measured_on"]["isa"]
    # ONEDNN_MAX_CPU_ISA caps the kernels OpenVINO's CPU plugin picks: a newer CPU computes as that class
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": CLASS_CAPS[isa]}
    result = subprocess.run([sys.executable, "-m", "edge_bus", "models", "calibrate", "emt_net", "--data",
                             str(busi / "Dataset_BUSI_with_GT"), "--folds", str(busi / "folds.csv"), "--fold", "1",
                             "--out", str(out), "--name", "emt_net_site"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "156 images" in result.stdout and "sensitive" in result.stdout
    assert f"wrote {out / 'golden_demo.npz'}: 270 frames" in result.stdout.replace("\n", "")
    shipped = resolve_model("emt_net")
    copy = load_manifest(out)
    copy.verify()  # every file copied, sha256 as recorded
    assert copy.name == "emt_net_site"
    model_files = {r: f for r, f in shipped.files.items() if not r.startswith(GOLDEN_ROLE)}
    assert {r: f for r, f in copy.files.items() if not r.startswith(GOLDEN_ROLE)} == model_files
    assert copy.lesion_threshold == pytest.approx(shipped.lesion_threshold, abs=1e-4)
    for name, op in shipped.operating_points.items():
        assert copy.operating_points[name].threshold == pytest.approx(op.threshold, abs=1e-4), name
    record = read_json(out / "manifest.json")["site_calibration"]
    assert record["images"] == 156 and record["counts"] == {"normal": 27, "benign": 87, "malignant": 42}
    assert record["from_model"]["name"] == "emt_net" and record["precision"].startswith("int8")
    # the copy's thresholds were chosen here, with the kernels of this (capped) class; the original's
    # record is kept beside it
    assert read_json(out / "manifest.json")["measured_on"]["isa"] == isa
    assert record["from_measured_on"] == read_json(shipped.folder / "manifest.json")["measured_on"]
    # its own golden references, made under its thresholds with this class's kernels: the shipped
    # ones record the old thresholds' labels, and doctor failed the copy against them (94% agreement)
    goldens = [Golden.load(p) for p in golden_paths(copy)]
    assert [g.kernel_class for g in goldens] == [isa]  # the cap leaves no class below it
    assert all(g.meta["decisions"] == decision_settings(copy) for g in goldens)
    doctor = subprocess.run([sys.executable, "-m", "edge_bus", "doctor", "--model", str(out), "--no-report",
                             "--max-frames", "120", "--budget-ms", "100000"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr


def test_calibrate_cli_bad_data_folder_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["models", "calibrate", "emt_net", "--data", str(tmp_path / "nope"),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_changes_put_each_threshold_before_and_after_side_by_side() -> None:
    """The CLI read these out of the two manifest dicts itself."""
    from edge_bus.calibrate import CalibrationResult, ThresholdChange

    result = CalibrationResult(
        model="m", out_dir=Path("out"), data="site", n_images=10, counts={"benign": 5, "malignant": 5},
        thresholds={"lesion": 0.4, "lesion_val": {"data": "kept from the model: site has no normal images"},
                    "operating_points": {"balanced": {"threshold": 0.6, "val_sensitivity": 0.8,
                                                      "val_specificity": 0.9},
                                         "specific": {"threshold": 0.9, "val_sensitivity": 0.5,
                                                      "val_specificity": 1.0}}},
        previous={"lesion": 0.4, "operating_points": {"balanced": {"threshold": 0.5}}},
    )
    assert result.changes == (
        ThresholdChange("lesion", "P(lesion)", 0.4, 0.4, "kept from the model: site has no normal images"),
        ThresholdChange("balanced", "P(malignant)", 0.5, 0.6, "0.8 / 0.9"),
        ThresholdChange("specific", "P(malignant)", None, 0.9, "0.5 / 1.0"),
    )


def test_measured_on_names_the_kernel_class_that_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU whose kernels are capped (ONEDNN_MAX_CPU_ISA, which OpenVINO honours) computes as the
    capped class: that is the class a site calibration records."""
    from edge_bus.telemetry.hardware import isa_class, kernel_class, measured_on

    vnni = {"avx2": True, "avx512f": True, "avx512_vnni": True}
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    assert kernel_class(vnni) == isa_class(vnni) == "vnni"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert kernel_class(vnni) == "avx2" and measured_on()["isa"] in ("avx2", "unknown")
    assert kernel_class({"avx2": True}) == "avx2"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")  # a cap above the CPU changes nothing
    assert kernel_class(vnni) == "vnni"


def test_the_calibrated_copy_keeps_files_in_their_subfolders(tmp_path: Path) -> None:
    """A model with its ONNX in onnx/ streamed, but calibrate failed after scoring every image: "cannot write
    the calibrated model to cal/.n.partial-7687-...: No such file or directory"."""
    import json

    from edge_bus.calibrate import _write_copy

    folder = tiny_model_dir(tmp_path / "tiny")
    (folder / "onnx").mkdir()
    (folder / "model_fp32.onnx").rename(folder / "onnx" / "model_fp32.onnx")
    data = read_json(folder / "manifest.json")
    data["files"]["onnx_fp32"] = "onnx/model_fp32.onnx"
    data["sha256"] = {"onnx/model_fp32.onnx": data["sha256"]["model_fp32.onnx"]}
    (folder / "manifest.json").write_text(json.dumps(data))
    manifest = load_manifest(folder)
    out = tmp_path / "copy"
    out.mkdir()
    _write_copy(manifest, out, dict(data["thresholds"]), {"data": "test"}, None)
    copy = load_manifest(out)
    copy.verify()
    assert copy.path("onnx_fp32") == out / "onnx" / "model_fp32.onnx"


def test_normal_images_alone_are_one_data_error_not_a_traceback() -> None:
    """No lesion image made an empty float array, and the error message's ~ on it a TypeError traceback."""
    from edge_bus.errors import DataError
    from edge_bus.evaluation import ImageResult

    normals = [ImageResult(f"n{i}.png", "normal", 0.1, 0.5, "normal", None, None) for i in range(3)]
    with pytest.raises(DataError, match=r"needs benign and malignant images; site has 0 malignant and 0 benign"):
        choose_thresholds(normals, "site")
