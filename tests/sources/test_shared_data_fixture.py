"""The shared_data fixture: skip when ../shared/data is absent, but fail under CI=true."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


def test_present_folder_is_returned(tmp_path: Path, shared_data_check: Callable[[Path], Path]) -> None:
    assert shared_data_check(tmp_path) == tmp_path


def test_absent_folder_skips(
    tmp_path: Path, shared_data_check: Callable[[Path], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs the real data"):
        shared_data_check(tmp_path / "absent")


@pytest.mark.parametrize("value", ["true", "TRUE"])
def test_absent_folder_fails_under_ci(
    tmp_path: Path, shared_data_check: Callable[[Path], Path], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="CI=true but the shared data folder"):
        shared_data_check(tmp_path / "absent")

