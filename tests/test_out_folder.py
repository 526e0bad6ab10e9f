"""The run folder under real-world faults: two runs into one folder, a disk too full to start, a
folder deleted mid-run, reports that could not be written, and a source that is not a file."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge_bus import OutputError, SourceError, StreamConfig, run_stream
from edge_bus.engines.fake import FakeBehaviour, fake_engine_factory
from edge_bus.run_outputs import open_run_files
from edge_bus.sources import FrameSource, SourceInfo, open_source
from edge_bus.sources._common import make_frame
from edge_bus.types import Frame


class Frames(FrameSource):
    """``n`` gray frames; ``at(i)`` is called before frame i (a fault to inject there)."""

    def __init__(self, n: int, at: Callable[[int], None] = lambda i: None) -> None:
        self.n, self.i, self.at = n, 0, at

    @property
    def info(self) -> SourceInfo:
        return SourceInfo(kind="grabber", name="sdk", width=96, height=96, fps=30.0, frame_count=self.n)

    def __next__(self) -> Frame:
        if self.i >= self.n:
            raise StopIteration
        self.at(self.i)
        self.i += 1
        return make_frame(self.i - 1, np.full((96, 96, 3), 60, np.uint8), self.i / 30)

    def close(self) -> None:
        pass


def _run(out: Path, source: FrameSource, **config: object):  # type: ignore[no-untyped-def]
    return run_stream(StreamConfig(source="grabber", out=out, video=False, **config),  # type: ignore[arg-type]
                      source=source, handle_signals=False, engine_factory=fake_engine_factory(FakeBehaviour()))


def test_a_second_run_into_the_same_folder_is_refused(tmp_path: Path) -> None:
    """Both used to write: one frames.jsonl interleaving the two runs (and a line of NUL bytes), both
    exiting 0."""
    out = tmp_path / "run"
    started, release = threading.Event(), threading.Event()

    def hold(i: int) -> None:
        if i == 3:
            started.set()
            release.wait(30)

    result: list[object] = []
    first = threading.Thread(target=lambda: result.append(_run(out, Frames(6, hold))))
    first.start()
    try:
        assert started.wait(30)
        with pytest.raises(OutputError, match=f"another edge-bus run is writing to {out}"):
            _run(out, Frames(3))
    finally:
        release.set()
        first.join(30)
    assert result and len((out / "frames.jsonl").read_text().splitlines()) == 6
    assert _run(out, Frames(2)).frames == 2  # the lock went with the first run


def test_a_disk_too_full_to_start_leaves_nothing_even_without_video(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With --no-video the first free-space check came after 30 frames: the run started on a full
    disk and lost report.html."""
    import edge_bus.sinks.framelog as framelog

    monkeypatch.setattr(framelog, "free_bytes", lambda folder: 28_000)
    out = tmp_path / "run"
    with pytest.raises(OutputError, match=r"disk full writing .*frames\.jsonl \(0\.0 MB free; edge-bus keeps 4 MB"):
        _run(out, Frames(5))
    assert list(out.iterdir()) == []


def test_the_write_probe_is_removed_when_the_disk_refuses_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk creates the probe's name but not its bytes: the empty .write-test was left behind."""
    out = tmp_path / "run"
    out.mkdir()

    def full(self: Path, data: bytes) -> int:
        self.touch()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OutputError, match="disk full"):
        open_run_files(out, video=False, fps=30.0, size=(96, 96))
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(("frames", "deleted_before"), [(100, 5), (10, 8)], ids=["mid-run", "after-the-last-check"])
def test_a_folder_deleted_during_the_run_is_an_error_that_says_so(tmp_path: Path, frames: int,
                                                                  deleted_before: int) -> None:
    """Writes into a deleted file succeed: the run used to go on to the end, and its message said the
    outputs covered every frame. The log checks every 30 lines, and again at close: a folder removed
    after the last periodic check (a short run, no video) went unnoticed, exit 0 with no outputs."""
    out = tmp_path / "run"

    def delete(i: int) -> None:
        if i == deleted_before:
            shutil.rmtree(out)

    with pytest.raises(OutputError, match="was deleted during the run") as info:
        _run(out, Frames(frames, delete))
    assert "frames.jsonl is missing" in str(info.value)


def test_the_error_says_which_reports_could_not_be_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edge_bus.run_outputs as run_outputs

    def unwritable(path: Path, document: dict[str, object]) -> None:
        if document["ended"] != run_outputs.RUNNING:  # the one at the end
            raise OutputError(f"can't write {path}: permission denied — choose a writable --out folder")

    monkeypatch.setattr(run_outputs, "write_latency_json", unwritable)

    def broken(i: int) -> None:
        if i == 4:
            raise SourceError("lost sync")

    with pytest.raises(SourceError, match="lost sync") as info:
        _run(tmp_path / "run", Frames(10, broken))
    assert (f"frames.jsonl in {tmp_path / 'run'} covers the 4 frames processed before it; latency.json, "
            "report.html are missing") in str(info.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("prefix", ["", "video:", "replay:", "dicom:", "folder:"])
def test_a_named_pipe_is_refused_before_it_is_opened(tmp_path: Path, prefix: str) -> None:
    """Opening a pipe waits for a writer, in the kernel, where no SIGTERM ends the run (replay: said
    "file is empty" instead)."""
    pipe = tmp_path / "clip.avi"
    os.mkfifo(pipe)
    with pytest.raises(SourceError, match="not a regular file"):
        open_source(prefix + str(pipe))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_named_pipe_inside_an_image_folder_is_passed_over(tmp_path: Path) -> None:
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.full((64, 64, 3), 90, np.uint8))
    os.mkfifo(tmp_path / "b.png")
    source = open_source(str(tmp_path))
    try:
        assert [f.file for f in source] == ["a.png"]
    finally:
        source.close()


def test_a_run_that_ended_before_its_first_frame_misses_no_video(tmp_path: Path) -> None:
    """A video with no frame in it leaves no file by design: the message must not call it missing."""
    def broken(i: int) -> None:
        raise SourceError("first frame unreadable")

    with pytest.raises(SourceError) as info:
        run_stream(StreamConfig(source="grabber", out=tmp_path / "run"), source=Frames(5, broken),
                   handle_signals=False, engine_factory=fake_engine_factory(FakeBehaviour()))
    assert str(info.value).endswith(f"— outputs in {tmp_path / 'run'} cover the 0 frames processed before it")
    assert not (tmp_path / "run" / "overlay.mp4").exists()


def test_an_unplayable_overlay_is_not_counted_as_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The error line listed overlay.mp4 among the outputs that 'cover the frames' on its existence
    alone; a file that does not play is named as such (it was once called missing, though it is there)."""
    from edge_bus.sinks import video as video_mod

    monkeypatch.setattr(video_mod, "playable", lambda path: False)
    out = tmp_path / "run"
    with pytest.raises(OutputError, match="does not play") as info:
        run_stream(StreamConfig(source="grabber", out=out), source=Frames(6), handle_signals=False,
                   engine_factory=fake_engine_factory(FakeBehaviour()))
    assert str(info.value).endswith(f"frames.jsonl, latency.json, report.html in {out} cover the 6 frames processed "
                                    "before it; overlay.mp4 was cut off and does not play")


def test_the_run_holds_space_back_and_gives_it_back_before_its_last_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk filled at once by another program (the free-space checks only see a gradual fill) left no
    latency.json, no report.html and an overlay.mp4 without its index: the run now holds 8 MB in --out and
    deletes that file before it closes the video and writes the summaries."""
    from edge_bus import run_outputs
    from edge_bus.sinks import files as files_mod

    out = tmp_path / "run"
    reserve = out / files_mod.SpaceReserve.NAME
    held: list[int] = []
    order: list[str] = []
    real_release, real_write = files_mod.SpaceReserve.release, run_outputs.write_latency_json

    def release(self: files_mod.SpaceReserve) -> None:
        order.append("reserve released")
        real_release(self)

    def write_latency(path: Path, doc: dict[str, object]) -> None:
        order.append("latency.json" if doc["ended"] != run_outputs.RUNNING else "latency.json started")
        real_write(path, doc)

    monkeypatch.setattr(files_mod.SpaceReserve, "release", release)
    monkeypatch.setattr(run_outputs, "write_latency_json", write_latency)
    result = run_stream(StreamConfig(source="grabber", out=out), handle_signals=False,
                        source=Frames(6, lambda i: held.append(reserve.stat().st_size) if i == 3 else None),
                        engine_factory=fake_engine_factory(FakeBehaviour()))
    assert result.frames == 6 and held == [8_000_000]
    assert not reserve.exists() and order[:3] == ["latency.json started", "reserve released", "latency.json"]
    assert {p.name for p in out.iterdir()} == {"frames.jsonl", "overlay.mp4", "latency.json", "report.html"}


def test_a_disk_without_room_for_the_reserve_refuses_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OutputError, match=r"^disk full: edge-bus keeps 8 MB in .* for a run.s last files"):
        _run(tmp_path / "run", Frames(3))
    assert list((tmp_path / "run").iterdir()) == []  # no reserve left, and no empty frames.jsonl


def test_the_reserve_is_written_where_the_file_system_cannot_allocate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from edge_bus.sinks.files import SpaceReserve

    def unsupported(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    reserve = SpaceReserve(tmp_path, nbytes=3_000_000)
    assert reserve.path.stat().st_size == 3_000_000
    reserve.release()
    reserve.release()  # idempotent
    assert not reserve.path.exists()


def test_a_frame_the_model_cannot_take_is_named(tmp_path: Path) -> None:
    """A folder whose fourth image is 10x10: the error said "a frame ... is too small" without saying which."""
    import cv2

    folder = tmp_path / "stills"
    folder.mkdir()
    for name, side in (("a.png", 64), ("b.png", 64), ("c.png", 10)):
        cv2.imwrite(str(folder / name), np.full((side, side), 90, np.uint8))
    with pytest.raises(SourceError, match=r"too small .*\(file c\.png, frame 2\)"):
        run_stream(StreamConfig(source=str(folder), out=tmp_path / "run", video=False), handle_signals=False,
                   engine_factory=fake_engine_factory(FakeBehaviour()))


def test_a_signal_while_the_pipeline_is_composed_ends_the_run_at_once(tmp_path: Path) -> None:
    """Ctrl-C while the board's handshake waited (a board that never answers) was held until the
    handshake gave up, and the run then exited as a bridge error (6), not as interrupted (130)."""
    import signal
    import time

    from edge_bus import Interrupted

    def slow_engine(manifest, config):  # type: ignore[no-untyped-def]
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, then a set-up step that would take 30 s
        time.sleep(30)
        raise AssertionError("not reached")

    t = time.perf_counter()
    with pytest.raises(Interrupted, match=r"^interrupted \(Ctrl-C\): before the first frame") as info:
        run_stream(StreamConfig(source="grabber", out=tmp_path / "run"), source=Frames(5), engine_factory=slow_engine)
    assert time.perf_counter() - t < 10 and info.value.exit_code == 130
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are given back
    assert not (tmp_path / "run").exists()  # nothing was opened there yet


def test_a_run_needs_room_beyond_what_it_keeps_free_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The start-up check ignored the 8 MB reserve: 69 MB free started a run that the video (which keeps
    64 MB free) stopped at once, and 9 MB a --no-video run refused with a 'disk full writing' halfway."""
    import edge_bus.run_outputs as run_outputs

    monkeypatch.setattr(run_outputs, "free_bytes", lambda folder: 70_000_000)
    out = tmp_path / "new" / "run"
    with pytest.raises(OutputError, match=r"^disk full: 70 MB free for .*run, and a run needs 80 MB to start, 20 MB "
                                          "with --no-video — free space or choose another --out$"):
        open_run_files(out, video=True, fps=30.0, size=(64, 64))
    assert not (tmp_path / "new").exists()  # refused before its folder was made
    files = open_run_files(out, video=False, fps=30.0, size=(64, 64))
    files.close()
    files.release()
    (out / "overlay.mp4").write_bytes(bytes(6_000_000))  # a previous run's video is deleted first and its
    (out / "frames.jsonl").write_bytes(bytes(6_000_000))  # log truncated: their space counts
    files = open_run_files(out, video=True, fps=30.0, size=(64, 64))
    files.close()
    files.release()


def test_a_link_or_a_pipe_named_frames_jsonl_in_out_is_replaced_not_written_through(tmp_path: Path) -> None:
    """A link there had its target overwritten with frame lines; a named pipe there hung the run."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    linked, piped = tmp_path / "linked", tmp_path / "piped"
    linked.mkdir()
    piped.mkdir()
    (linked / "frames.jsonl").symlink_to(victim)
    os.mkfifo(piped / "frames.jsonl")
    for out in (linked, piped):
        assert _run(out, Frames(3)).frames == 3
        assert (out / "frames.jsonl").is_file() and not (out / "frames.jsonl").is_symlink()
        assert len((out / "frames.jsonl").read_text().splitlines()) == 3
    assert victim.read_text() == "keep me"


def test_runs_started_in_one_second_get_folders_of_their_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default --out was runs/<second>: a run started in the second of the one before wrote into its
    folder, replacing its outputs."""
    import time

    from edge_bus.run_outputs import default_out_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20261125-071500")
    first = _run(None, Frames(2)).out_dir  # type: ignore[arg-type]
    second = _run(None, Frames(3)).out_dir  # type: ignore[arg-type]
    assert (first, second) == (Path("runs/20261125-071500"), Path("runs/20261125-071500-2"))
    assert len((first / "frames.jsonl").read_text().splitlines()) == 2 and default_out_dir().name.endswith("-3")


def test_a_read_only_or_virtual_file_system_is_not_called_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--out /proc/x` and a small read-only mount said "disk full: 0 MB free"; a larger read-only one said
    what it was. The place is now named for what it is whatever it reports free."""
    import edge_bus.run_outputs as run_outputs

    monkeypatch.setattr(run_outputs, "free_bytes", lambda folder: 0)
    monkeypatch.setattr(run_outputs, "unwritable_reason", lambda folder: "it is on a read-only file system")
    with pytest.raises(OutputError, match=r"^can't write in .*run: it is on a read-only file system — choose a "):
        open_run_files(tmp_path / "run", video=False, fps=30.0, size=(64, 64))
    monkeypatch.setattr(run_outputs, "unwritable_reason", lambda folder: None)
    if Path("/proc/self").is_dir():
        with pytest.raises(OutputError, match=r"/proc/edge-bus-x: it is on a virtual file system \(such as /proc\)"):
            open_run_files(Path("/proc/edge-bus-x"), video=False, fps=30.0, size=(64, 64))
    with pytest.raises(OutputError, match=r"^disk full: 0 MB free"):  # a disk, writable, full
        open_run_files(tmp_path / "run", video=False, fps=30.0, size=(64, 64))


def test_runs_naming_their_folder_at_once_get_one_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The name was checked, then made later: two runs at once in one second could both take it."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from edge_bus.run_outputs import default_out_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20261125-080000")
    with ThreadPoolExecutor(8) as pool:
        names = list(pool.map(lambda _: default_out_dir(), range(8)))
    assert len(set(names)) == 8 and all(n.is_dir() for n in names)
