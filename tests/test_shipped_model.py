"""The shipped model: loads, matches its manifest's sha256, and reproduces its recorded metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_bus.evaluation import evaluate
from edge_bus.zoo import load_manifest


def test_shipped_ir_reproduces_recorded_metrics_on_fixed_subset(shared_data: Path, shipped_model_dir: Path,
                                                               tmp_path: Path) -> None:
    m = load_manifest(shipped_model_dir)
    m.verify()  # every file matches its sha256
    recorded = m.raw["metrics"]["ci_subset"]
    busi = shared_data / "busi"
    report = evaluate(busi / "Dataset_BUSI_with_GT", busi / "folds.csv", 0, str(shipped_model_dir),
                      stride=recorded["stride"], json_path=tmp_path / "new" / "eval.json")  # folder created
    assert report.n_images == recorded["n_images"] and report.counts == recorded["counts"]
    # INT8 kernels differ slightly between CPUs (AVX2 / VNNI / AMX): small tolerances, not equality
    assert report.dice == pytest.approx(recorded["dice"], abs=0.01)
    assert report.auc == pytest.approx(recorded["auc"], abs=0.02)
    assert report.normal_fp_rate == pytest.approx(recorded["normal_fp_rate"], abs=0.15)
    for name, op in recorded["operating_points"].items():
        assert report.operating_points[name].accuracy == pytest.approx(op["accuracy"], abs=0.05)
    written = json.loads((tmp_path / "new" / "eval.json").read_text())
    assert {"model", "n_images", "dice", "iou", "auc", "normal_fp_rate", "accuracy_3class",
            "operating_points"} <= set(written)
    assert set(written["operating_points"]["sensitive"]) == {"threshold", "accuracy", "sensitivity", "specificity"}


def test_eval_cli_on_busbra_layout(shared_data: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edge_bus.cli import app

    html = tmp_path / "eval" / "report.html"
    result = CliRunner().invoke(app, ["eval", "--data", str(shared_data / "busbra"), "--folds",
                                      str(shared_data / "busbra" / "5-fold-cv.csv"), "--fold", "1", "--limit", "12",
                                      "--html", str(html)])
    assert result.exit_code == 0, result.output
    assert "12 images" in result.output and "sensitive" in result.output and f"report: {html}" in result.output
    page = html.read_text()
    assert "ROC curve, benign vs malignant" in page and "Lowest Dice (12 of 12 lesion images)" in page
    assert page.count("<figure>") >= 12 and "bus_" in page  # pictures named by their image
    assert "rows: truth" not in page  # BUS-BRA has no normal images: no 3-class table
    assert "GE Logiq" in result.output and "By scanner" in page  # four scanners: scores for each
    assert "lesion-free crops of the lesion images" in result.output  # BUS-BRA's normal tissue, no normal image
    assert "lesion-free crops flagged" in page.split("By scanner", 1)[1]  # per scanner too
    text = result.output.split("12 images (", 1)[1].split(")", 1)[0]  # "0 normal, 8 benign, 4 malignant"
    counts = {name: int(n) for n, name in (part.split() for part in text.split(", "))}
    assert counts["benign"] > 0 and counts["malignant"] > 0  # spread over the list, not its first 12


def test_eval_bad_dataset_folder(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edge_bus.cli import app

    result = CliRunner().invoke(app, ["eval", "--data", str(tmp_path)])
    assert result.exit_code != 0 and "neither a BUSI layout" in result.output


def test_eval_refuses_a_fold_without_folds_before_scoring(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edge_bus.cli import app

    result = CliRunner().invoke(app, ["eval", "--data", str(tmp_path), "--fold", "1"])
    assert result.exit_code == 2 and "--fold needs --folds" in result.output
    # and the other way round: the CSV was read, then every image scored, the CSV doing nothing
    (tmp_path / "folds.csv").write_text("image,fold\n")
    result = CliRunner().invoke(app, ["eval", "--data", str(tmp_path), "--folds", str(tmp_path / "folds.csv")])
    assert result.exit_code == 2 and "--folds needs --fold" in result.output


@pytest.mark.parametrize("flag", ["--json", "--html"])
def test_eval_refuses_an_unwritable_report_path_before_scoring(tmp_path: Path, flag: str) -> None:
    from typer.testing import CliRunner

    from edge_bus.cli import app

    (tmp_path / "taken").write_text(f"a file where {flag} needs a folder")
    result = CliRunner().invoke(app, ["eval", "--data", str(tmp_path / "no-such-data"),
                                      flag, str(tmp_path / "taken" / "eval.out")])
    # the output is checked first: the missing dataset would otherwise be reported
    assert result.exit_code == 5 and "taken" in result.output and "Traceback" not in result.output
