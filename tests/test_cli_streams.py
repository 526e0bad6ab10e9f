"""The command's own output: a closed pipe, a full disk behind a redirection, an encoding without "→",
and file names that are not UTF-8 (OpenCV crashed the process on them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "edge_bus"]
RUN = ["stream", "--source", "demo", "--max-frames", "3", "--no-video"]


def _latency(out: Path) -> dict:
    return json.loads((out / "latency.json").read_text())


def test_a_closed_stdout_pipe_changes_nothing_the_run_does(tmp_path: Path) -> None:
    """`edge-bus stream ... | true`: rich exited 1 at the first line it could not write, silently."""
    out = tmp_path / "run"
    proc = subprocess.Popen([*CLI, *RUN, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the first line
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err and _latency(out)["frames"] == 3


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_behind_stdout_or_stderr_is_no_traceback_and_no_lost_run(tmp_path: Path) -> None:
    """`> /dev/full` gave an OSError traceback after the run; `2> /dev/full` (the "writing to" line) ended the
    run before its first frame, exit 1, its latency.json saying it ended at the end of the source."""
    for stream in ("stdout", "stderr"):
        out = tmp_path / stream
        with open("/dev/full", "w") as full:
            done = subprocess.run([*CLI, *RUN, "--out", str(out)], capture_output=False, timeout=120,
                                  **{stream: full, ("stderr" if stream == "stdout" else "stdout"): subprocess.PIPE})
        said = done.stderr or done.stdout or b""
        assert done.returncode == 0 and b"Traceback" not in said, said.decode()
        assert _latency(out)["frames"] == 3 and _latency(out)["ended"] == "max frames"


def test_an_output_that_cannot_encode_the_summary_is_no_traceback(tmp_path: Path) -> None:
    """PYTHONIOENCODING=ascii (or cp1252, Windows' for a redirection): the summary's "→" was a
    UnicodeEncodeError traceback after the run."""
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    done = subprocess.run([*CLI, *RUN, "--out", str(tmp_path / "run")], capture_output=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert b"\\u2192" in done.stdout and b"Traceback" not in done.stderr


def test_names_that_are_not_utf8_are_one_line_or_read(tmp_path: Path) -> None:
    """OpenCV given a name whose bytes are not UTF-8 crashed the process (a segfault, exit 139, no word):
    a video is now refused in one line, an image is read (through Python), and a report names it."""
    import cv2
    import numpy as np

    video = os.fsdecode(os.fsencode(tmp_path) + b"/lat\xe9.avi")
    writer = cv2.VideoWriter(str(tmp_path / "ok.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (64, 64))
    for k in range(3):
        writer.write(np.full((64, 64, 3), 40 * k, np.uint8))
    writer.release()
    os.rename(tmp_path / "ok.avi", video)
    done = subprocess.run([*CLI, "stream", "--source", video, "--out", str(tmp_path / "v"), "--no-video"],
                          capture_output=True, timeout=120)
    assert done.returncode == 3 and done.stderr.count(b"\n") == 1, done.stderr.decode()
    assert b"lat\\xe9.avi': its path is not UTF-8 text" in done.stderr

    folder = tmp_path / "imgs"
    folder.mkdir()
    ok, png = cv2.imencode(".png", np.full((48, 64), 90, np.uint8))
    assert ok
    Path(os.fsdecode(os.fsencode(folder) + b"/b\xe9.png")).write_bytes(png.tobytes())
    out = tmp_path / "stills"
    done = subprocess.run([*CLI, "stream", "--source", str(folder), "--out", str(out)], capture_output=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    frame = json.loads((out / "frames.jsonl").read_text().splitlines()[0])
    assert os.fsencode(frame["file"]) == b"b\xe9.png" and (out / "report.html").stat().st_size > 0
