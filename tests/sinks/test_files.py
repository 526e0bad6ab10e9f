from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from edge_bus.errors import OutputError
from edge_bus.sinks import files
from edge_bus.sinks.files import atomic_write_text, output_error


def test_atomic_write_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "report.html"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new ✓")
    assert target.read_text(encoding="utf-8") == "new ✓"
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.html"
    target.write_text("old")

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "write", full)
    with pytest.raises(OutputError, match=r"disk full writing .*report\.html"):
        atomic_write_text(target, "new" * 1000)
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


@pytest.mark.parametrize(
    ("err", "words"),
    [(errno.ENOSPC, "disk full"), (errno.EACCES, "permission denied"), (errno.EROFS, "read-only file system")],
)
def test_output_error_is_one_line_naming_the_file(err: int, words: str) -> None:
    msg = str(output_error(Path("/x/out/frames.jsonl"), OSError(err, os.strerror(err))))
    assert words in msg and "frames.jsonl" in msg and "\n" not in msg and " — " in msg


def test_atomic_write_refuses_a_device_or_folder_target(tmp_path: Path) -> None:
    """As root, os.replace would swap /dev/full (or any device) for a plain file."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="not a regular file — choose another"):
        atomic_write_text(fifo, "x", hint="choose another --json/--html path")
    assert fifo.exists() and not fifo.is_file()
    (tmp_path / "dir").mkdir()
    with pytest.raises(OutputError, match="it is a folder"):
        atomic_write_text(tmp_path / "dir", "x")


def test_a_read_only_file_system_is_an_output_error_not_a_traceback(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """On a read-only mount the temporary file's clean-up raised EROFS too, and that escaped as a
    traceback (doctor printed no PASS/FAIL)."""
    real_open = os.open

    def read_only(path: object, *args: object, **kw: object) -> int:
        if str(path).endswith(".tmp"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, *args, **kw)  # type: ignore[arg-type]

    def unlink(self: Path, missing_ok: bool = False) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(os, "open", read_only)
    monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.raises(OutputError, match=r"can't write .*r\.html: read-only file system — choose another"):
        atomic_write_text(tmp_path / "r.html", "x", hint="choose another --html path")


def test_a_report_path_too_long_for_the_file_system_is_an_output_error(tmp_path: Path) -> None:
    """``bench --json <300 characters>`` ended in an OSError traceback from Path.exists."""
    from edge_bus.sinks.files import check_report_paths

    with pytest.raises(OutputError, match="File name too long"):
        check_report_paths(tmp_path / ("x" * 300 + ".json"), None)


def test_the_same_file_for_json_and_html_is_refused(tmp_path: Path) -> None:
    """``bench --json r --html r`` printed "wrote r" twice, and r held only the HTML."""
    from edge_bus.sinks.files import check_report_paths

    with pytest.raises(OutputError, match="--json and --html are the same file"):
        check_report_paths(tmp_path / "r", tmp_path / "sub" / ".." / "r")
    check_report_paths(tmp_path / "r.json", tmp_path / "r.html")


def test_a_report_path_inside_the_other_is_refused_before_any_folder_is_made(tmp_path: Path) -> None:
    """``--json r/a.json --html r/a.json/b.html`` made the folder a.json/ for the HTML, then failed to
    write the JSON there, after every check had run."""
    from edge_bus.sinks.files import check_report_paths

    for json_path, html_path in ((tmp_path / "r" / "a.json", tmp_path / "r" / "a.json" / "b.html"),
                                 (tmp_path / "r" / "x" / "a.json", tmp_path / "r" / "x")):
        with pytest.raises(OutputError, match="one is inside the other"):
            check_report_paths(json_path, html_path)
    assert not (tmp_path / "r").exists()


def test_checking_a_report_path_makes_no_folder(tmp_path: Path) -> None:
    """The check made the --json folder at once: a run stopped before it wrote (Ctrl-C in bench) left it
    empty. A file where a folder must be made is refused up front; the writer makes the folder."""
    from edge_bus.sinks.files import atomic_write_text, check_report_paths

    check_report_paths(tmp_path / "a" / "b" / "r.json", tmp_path / "a" / "r.html")
    assert not (tmp_path / "a").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"file is a file, where a folder is needed — choose another --json path"):
        check_report_paths(tmp_path / "file" / "sub" / "r.json", None)
    assert atomic_write_text(tmp_path / "a" / "b" / "r.json", "{}").read_text() == "{}"
