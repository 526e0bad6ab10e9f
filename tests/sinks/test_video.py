"""overlay.mp4: frames round-trip, close() is idempotent, a full disk leaves a playable file."""

from __future__ import annotations

import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_bus.errors import OutputError
from edge_bus.sinks import files as files_mod
from edge_bus.sinks.video import VideoSink

SIZE = (160, 120)


def _frame(i: int) -> np.ndarray:
    img = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    cv2.circle(img, (20 + i * 2, 60), 12, (0, 0, 255), -1)
    return img


def count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} does not open"
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


@pytest.mark.parametrize("background", [False, True])
def test_round_trip_counts_frames(tmp_path: Path, background: bool) -> None:
    sink = VideoSink(tmp_path / "overlay.mp4", 30.0, SIZE, background=background)
    for i in range(40):
        sink.write(_frame(i))
    sink.close()
    sink.close()  # idempotent
    assert sink.path.suffix in {".mp4", ".avi"} and sink.frames == 40
    assert count_frames(sink.path) == 40
    with pytest.raises(ValueError):
        sink.write(_frame(0))


def test_gray_and_other_sizes_are_converted(tmp_path: Path) -> None:
    with VideoSink(tmp_path / "o.mp4", 0, SIZE) as sink:  # fps 0 (unknown) → 30
        sink.write(np.full((240, 320), 90, np.uint8))
        sink.write(np.zeros((50, 50, 3), np.uint8))
    assert sink.fps == 30.0
    assert count_frames(sink.path) == 2


@pytest.mark.parametrize("size", [(321, 241), (320, 241), (321, 240)])
def test_an_odd_sized_frame_keeps_its_last_column_and_row(tmp_path: Path, size: tuple[int, int]) -> None:
    """OpenCV's writer dropped the last column and row of an odd-sized frame (321x241 came out 320x240):
    the frame is now padded with a black column or row instead, so every pixel of it is in the video."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:, -1] = 255  # the last column and row, white: the ones OpenCV dropped
    img[-1, :] = 255
    with VideoSink(tmp_path / "odd.mp4", 30.0, size) as sink:
        for _ in range(3):
            sink.write(img)
    assert sink.size == size and sink.video_size == (w + w % 2, h + h % 2)
    cap = cv2.VideoCapture(str(sink.path))
    ok, got = cap.read()
    cap.release()
    assert ok and (got.shape[1], got.shape[0]) == sink.video_size
    assert got[: h - 8, w - 1].mean() > 150 and got[h - 1, : w - 8].mean() > 150  # kept (mp4v blurs edges a little)


@pytest.mark.parametrize("background", [False, True])
def test_disk_full_closes_a_playable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, background: bool) -> None:
    sink = VideoSink(tmp_path / "overlay.mp4", 30.0, SIZE, check_every=10, background=background)
    monkeypatch.setattr(files_mod.shutil, "disk_usage", lambda _p: types.SimpleNamespace(total=1, used=1, free=1024))
    with pytest.raises(OutputError, match=r"disk full writing overlay\.mp4: .*— free space or use --no-video"):
        for i in range(25):
            sink.write(_frame(i))
        sink.close()  # background: the worker's error surfaces here at the latest
    sink.close()  # no second error
    assert count_frames(sink.path) == 10


def test_unwritable_path_is_an_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="file"):
        VideoSink(blocker / "overlay.mp4", 30, SIZE)


def test_no_space_at_start_is_an_output_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files_mod.shutil, "disk_usage", lambda _p: types.SimpleNamespace(total=1, used=1, free=0))
    with pytest.raises(OutputError, match="disk full"):
        VideoSink(tmp_path / "overlay.mp4", 30, SIZE)


def test_a_video_without_frames_leaves_no_file(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path / "overlay.mp4", 30.0, SIZE, background=True)
    sink.close()  # stopped before the first frame (Ctrl-C during warm-up): no unplayable stub
    assert not (tmp_path / "overlay.mp4").exists()


def test_an_unplayable_finished_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenCV reports no write error: an mp4 whose index never reached the disk (filled by another
    process between two free-space checks) was counted as kept. close() now opens it to check."""
    from edge_bus.sinks import video as video_mod

    good = VideoSink(tmp_path / "good.mp4", 30.0, (64, 48))
    for i in range(5):
        good.write(np.full((48, 64, 3), 20 * i, np.uint8))
    good.close()
    assert video_mod.playable(good.path) and good.playable
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.path.read_bytes()[: good.path.stat().st_size // 3])  # no index: what a full disk leaves
    assert not video_mod.playable(cut)

    monkeypatch.setattr(video_mod, "playable", lambda path: False)
    sink = VideoSink(tmp_path / "overlay.mp4", 30.0, (64, 48))
    sink.write(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(OutputError, match="was written but does not play"):
        sink.close()
    assert not sink.playable


def test_a_frame_of_another_shape_keeps_its_aspect() -> None:
    """A folder of stills is written at the first image's size: a later landscape image in a portrait video
    was squeezed to fit (the lesion's shape and the label distorted)."""
    from edge_bus.sinks.video import letterbox

    wide = np.full((100, 200, 3), 200, np.uint8)  # 2:1, into a 1:2 frame
    out = letterbox(wide, (100, 200))
    assert out.shape == (200, 100, 3)
    rows = np.flatnonzero(out[:, 50, 0] > 100)
    assert (rows[0], rows[-1]) == (75, 124)  # 50 rows of picture, centred; black above and below
    assert letterbox(wide, (200, 100)).min() == 200  # the same shape: the whole frame
