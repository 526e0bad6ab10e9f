"""reproduce.sh: it refuses to replace the shipped models without --yes (however models/ is spelled),
says what is missing in one line, and runs its steps in order into OUT. A stand-in ``python`` logs
the steps instead of training, so these tests need neither torch nor the data."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "models" / "training" / "reproduce.sh"


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    """Answers the script's ``-c`` checks with the real interpreter (the torch/nncf import check
    passes) and logs every ``-m`` step to ``steps.log``."""
    path = tmp_path / "python"
    path.write_text(f"""#!/usr/bin/env bash
if [ "$1" = -c ]; then
    case "$2" in *"import torch"*) exit 0 ;; esac
    exec {sys.executable} "$@"
fi
echo "$@" >> {tmp_path / "steps.log"}
echo "${{ONEDNN_MAX_CPU_ISA:-none}}" >> {tmp_path / "kernels.log"}
""")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    (tmp_path / "data" / "busi").mkdir(parents=True)
    (tmp_path / "data" / "busi" / "folds.csv").write_text("")
    return tmp_path / "data"


def _run(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**os.environ, **env})


@pytest.mark.parametrize("out", ["", "models", "models/", "./models", str(ROOT / "models")])
def test_without_yes_it_replaces_nothing_and_says_how(out: str, fake_python: Path, data: Path,
                                                      tmp_path: Path) -> None:
    """OUT=models/ went past the guard (a string compare) and would have trained over the shipped models."""
    env = {"PYTHON": str(fake_python), "DATA": str(data), **({"OUT": out} if out else {})}
    result = _run(**env)
    assert result.returncode == 2 and "replaces the shipped models" in result.stderr
    assert "--yes" in result.stderr and "--smoke" in result.stderr
    assert not (tmp_path / "steps.log").exists()  # no step ran


def test_out_elsewhere_runs_every_step_into_it(fake_python: Path, data: Path, tmp_path: Path) -> None:
    result = _run(cwd=tmp_path, PYTHON=str(fake_python), DATA="data", OUT="run")  # relative to the caller
    assert result.returncode == 0, result.stderr
    steps = (tmp_path / "steps.log").read_text().splitlines()
    modules = [line.split()[1] for line in steps]
    assert modules == ["models.training.train"] * 3 + ["models.training.export"] * 2 + [
        "edge_bus.golden", "edge_bus.golden", "models.training.wp_sweep", "models.training.wp_sweep",
        "models.training.cine_check", "models.training.bootstrap",
        "models.training.mask_sweep", "models.training.presence_check", "models.training.near_duplicates",
        "models.training.model_card"]
    assert all(str(ROOT / "models") not in line for line in steps)  # the shipped folder is left alone
    train_full, train_compact, train_hgm, export_emt, export_hgm = steps[:5]
    assert f"--out {tmp_path / 'run'}/emt_net" in export_emt and f"--data {tmp_path / 'data'}" in train_full
    # the full network (the teacher): one stage, per-image Dice, BUSI drawn 2.5x
    assert "--dice image --busi-weight 2.5" in train_full and "--init" not in train_full
    # the shipped emt_net: the compact encoder, the same recipe, distilled from that network; exported as 1.2.0
    assert "--encoder efficientnet_lite0_compact" in train_compact and "--dice image --busi-weight 2.5" in train_compact
    assert "--distill 1.0 --teacher" in train_compact and "emt_net_long/best.pt" in train_compact
    assert "emt_net_compact/best.pt" in export_emt and "--version 1.2.0" in export_emt
    # hgm_net: Stage 2 from the full network, the same loss and sampling; exported as 1.1.0 from its checkpoint
    assert "--init" in train_hgm and "emt_net_long/best.pt" in train_hgm
    assert "--dice image --busi-weight 2.5" in train_hgm
    assert "hgm_net/best.pt" in export_hgm and "--version 1.1.0" in export_hgm
    # the two Wp sweeps: a head on frozen features, then the whole network fine-tuned per Wp; both on emt_net
    assert "--finetune-epochs" not in steps[7] and "--finetune-epochs 2" in steps[8]
    assert all("emt_net_compact/best.pt" in steps[i] for i in (7, 8)) and "--wp-finetune" in steps[-1]
    assert "--duplicates" in steps[-1] and f"--pairs {tmp_path / 'run'}" in steps[-2]  # the card gets the section
    # what scores INT8 runs OpenVINO's AVX2 kernels on any CPU; the golden step makes every class itself
    kernels = dict(zip(range(len(steps)), (tmp_path / "kernels.log").read_text().split(), strict=True))
    capped = {modules[i] for i, k in kernels.items() if k == "AVX2"}
    assert capped == {"models.training.export", "models.training.cine_check", "models.training.bootstrap",
                      "models.training.mask_sweep", "models.training.presence_check",
                      "models.training.near_duplicates"}


def test_missing_data_and_unknown_options_are_one_line_errors(tmp_path: Path) -> None:
    result = _run("--smoke", PYTHON=sys.executable, DATA=str(tmp_path / "nope"))
    assert result.returncode == 2 and result.stderr.startswith("error: no data at") and "set DATA" in result.stderr
    result = _run("--fast")
    assert result.returncode == 2 and "unknown option --fast" in result.stderr


def test_help_lists_the_environment() -> None:
    result = _run("--help")
    assert result.returncode == 0 and "--smoke" in result.stdout and "EMT_EPOCHS" in result.stdout
