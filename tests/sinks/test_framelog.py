"""frames.jsonl: one complete JSON line per record, also when the disk fills up mid-line."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest

from edge_bus.errors import OutputError
from edge_bus.sinks.framelog import FrameLog
from edge_bus.types import Frame, FrameRecord, Prediction, StageTimes


def make_record(i: int, malignancy: float = 0.25) -> FrameRecord:
    frame = Frame(index=i, pixels=np.zeros((4, 4), np.uint8), t_source=i / 30, t_capture=float(i), wall_time=1.7e9 + i)
    pred = Prediction(
        mask=np.zeros((4, 4), bool), probs={"normal": 0.7, "benign": 0.2, "malignant": 0.1}, malignancy=malignancy,
        lesion=False, label="normal", bbox=None, mask_area=0.0,
    )  # fmt: skip
    return FrameRecord(frame, pred, StageTimes({"infer": 4.5, "render": 0.7}, e2e_ms=6.25))


def test_lines_are_the_records_json(tmp_path: Path) -> None:
    path = tmp_path / "run" / "frames.jsonl"  # the folder is created
    with FrameLog(path) as log:
        for i in range(3):
            log.write(make_record(i))
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [make_record(i).to_json() for i in range(3)]
    assert log.lines == 3 and log.closed
    log.close()  # idempotent


def test_nan_becomes_null(tmp_path: Path) -> None:
    with FrameLog(tmp_path / "frames.jsonl") as log:
        log.write(make_record(0, malignancy=float("nan")))
    assert json.loads((tmp_path / "frames.jsonl").read_text())["malignancy"] is None


class _FillsUp:
    """A file object that accepts ``budget`` more bytes (short writes), then raises ENOSPC."""

    def __init__(self, inner: object, budget: int) -> None:
        self.inner, self.budget = inner, budget

    def write(self, data: memoryview) -> int:
        if self.budget <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = min(len(data), self.budget)
        self.budget -= n
        return int(self.inner.write(data[:n]))  # type: ignore[attr-defined]

    def fileno(self) -> int:
        return int(self.inner.fileno())  # type: ignore[attr-defined]

    def close(self) -> None:
        self.inner.close()  # type: ignore[attr-defined]


def test_full_disk_raises_output_error_and_keeps_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "frames.jsonl"
    log = FrameLog(path)
    log.write(make_record(0))
    line_len = path.stat().st_size
    log._fh = _FillsUp(log._fh, budget=line_len + line_len // 3)  # type: ignore[assignment]
    log.write(make_record(1))
    with pytest.raises(OutputError, match=r"disk full writing .*frames\.jsonl"):
        log.write(make_record(2))  # a third of it fits, then the disk is full
    assert [json.loads(line)["frame"] for line in path.read_text().splitlines()] == [0, 1]
    assert path.read_text().endswith("\n")
    with pytest.raises(OutputError):
        log.write(make_record(3))
    log.close()


def test_unwritable_folder_is_an_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="not-a-folder"):
        FrameLog(blocker / "frames.jsonl")


def test_log_stops_while_room_is_left_for_the_summaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from edge_bus.sinks import files as files_mod

    free = {"bytes": 100_000_000}
    monkeypatch.setattr(files_mod.shutil, "disk_usage", lambda _p: types.SimpleNamespace(free=free["bytes"]))
    log = FrameLog(tmp_path / "frames.jsonl", reserve_bytes=4_000_000, check_every=5)
    for i in range(7):
        log.write_obj({"frame": i})
    free["bytes"] = 3_000_000  # the disk fills up: below the reserve kept for latency.json and report.html
    with pytest.raises(OutputError, match=r"disk full writing .*frames\.jsonl \(stopped with 3\.0 MB free"):
        for i in range(7, 20):
            log.write_obj({"frame": i})
    lines = (tmp_path / "frames.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == list(range(len(lines))) and len(lines) == 10


def test_a_full_disk_while_appending_keeps_the_earlier_run_lines(tmp_path: Path) -> None:
    """Cutting off the partial line must cut back to where this log started, not to 0 bytes."""
    path = tmp_path / "frames.jsonl"
    with FrameLog(path) as first:
        first.write(make_record(0))
        first.write(make_record(1))
    log = FrameLog(path, append=True)
    log._fh = _FillsUp(log._fh, budget=10)  # type: ignore[assignment]
    with pytest.raises(OutputError, match="disk full"):
        log.write(make_record(2))
    assert [json.loads(line)["frame"] for line in path.read_text().splitlines()] == [0, 1]


def test_non_finite_numbers_inside_lists_become_null_and_close_syncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edge_bus.sinks.framelog as framelog

    synced: list[int] = []
    real_fsync = framelog.os.fsync
    monkeypatch.setattr(framelog.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    log = FrameLog(tmp_path / "frames.jsonl")
    log.write_obj({"bbox": [1.0, float("nan")], "nested": {"v": (float("inf"), 2)}})
    log.close()
    assert json.loads((tmp_path / "frames.jsonl").read_text()) == {"bbox": [1.0, None], "nested": {"v": [None, 2]}}
    assert len(synced) == 1  # on disk when close returns (a power cut must not lose the run's log)
