"""reproduce.sh refuses to replace the shipped models without --yes, and says what is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "models" / "training" / "reproduce.sh"


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHON": sys.executable, **env})


@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "busi" / "folds.csv").is_file(),
                    reason="../shared/data is absent: the script stops at the data check first")
def test_without_yes_it_replaces_nothing_and_says_how() -> None:
    pytest.importorskip("torch", reason="the script checks for the train extra before asking")
    pytest.importorskip("nncf", reason="the script checks for the quantize extra before asking")
    before = {p: p.stat().st_mtime_ns for p in (ROOT / "models" / "emt_net").iterdir()}
    result = _run()
    assert result.returncode == 2 and "replaces the shipped models" in result.stderr
    assert "--yes" in result.stderr and "--smoke" in result.stderr
    assert {p: p.stat().st_mtime_ns for p in (ROOT / "models" / "emt_net").iterdir()} == before


def test_missing_data_and_unknown_options_are_one_line_errors(tmp_path: Path) -> None:
    result = _run("--smoke", DATA=str(tmp_path / "nope"))
    assert result.returncode == 2 and result.stderr.startswith("error: no data at") and "set DATA" in result.stderr
    result = _run("--fast")
    assert result.returncode == 2 and "unknown option --fast" in result.stderr


def test_help_lists_the_environment() -> None:
    result = _run("--help")
    assert result.returncode == 0 and "--smoke" in result.stdout and "EMT_EPOCHS" in result.stdout
