"""The capture device's in-package fake: ``replay:clip`` runs a video file through CaptureSource."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_bus.config import build_config
from edge_bus.errors import ConfigError, SourceError
from edge_bus.pipeline import run_stream
from edge_bus.sources import open_source
from edge_bus.sources.capture import CaptureSource
from edge_bus.sources.replay_capture import ReplayCapture


def test_replay_is_a_live_capture_source_at_the_files_fps(tmp_path: Path, make_video: Callable[..., Path]) -> None:
    clip = make_video(tmp_path / "clip.avi", n=10, fps=50.0)
    with open_source(f"replay:{clip}") as src:
        info = src.info
        assert (info.kind, info.live, info.fps, info.frame_count) == ("capture", True, 50.0, None)  # endless
        frames = [next(src) for _ in range(6)]
    assert [f.index for f in frames] == list(range(6))
    gaps = [b.t_capture - a.t_capture for a, b in zip(frames, frames[1:], strict=False)]
    assert 0.012 < sorted(gaps)[len(gaps) // 2] < 0.045  # paced at 50 fps (20 ms), not as fast as decoded (~0.1 ms)


def test_a_replayed_file_with_an_unbelievable_rate_runs_at_30_fps(tmp_path: Path,
                                                                 make_video: Callable[..., Path]) -> None:
    """A header saying 0.5 fps (a broken one says 0.001) was taken: frames 2 s apart, and with 0.001 the
    overlay video could not be opened, blamed on a missing encoder."""
    clip = make_video(tmp_path / "clip.avi", n=4, fps=0.5)
    import cv2

    cap = ReplayCapture(clip)
    try:
        assert cap.get(cv2.CAP_PROP_FPS) == 30.0
    finally:
        cap.release()


def test_a_slow_reader_misses_acquisitions_and_gets_the_newest(tmp_path: Path,
                                                               make_video: Callable[..., Path]) -> None:
    clip = make_video(tmp_path / "clip.avi", n=40, fps=50.0)
    fake = ReplayCapture(clip)
    try:
        assert fake.grab()
        time.sleep(0.1)  # five acquisitions at 50 fps go by
        assert fake.grab()
        ok, img = fake.retrieve()
        assert ok and img is not None and img.shape == (64, 96, 3)
        assert fake.missed >= 3 and fake.handed_over == 2  # (more if the sleep overran on a loaded machine)
    finally:
        fake.release()


def test_requested_mode_and_an_unplugged_grabber(tmp_path: Path, make_video: Callable[..., Path]) -> None:
    clip = make_video(tmp_path / "clip.avi", n=5, fps=100.0)
    src = CaptureSource("replay", size=(48, 32), opener=lambda _name: ReplayCapture(clip, stop_after=7))
    frames = [next(src) for _ in range(7)]  # past the end of the 5-frame file: it loops
    assert frames[0].pixels.shape == (32, 48, 3) and (src.info.width, src.info.height) == (48, 32)
    with pytest.raises(SourceError, match="capture device replay stopped delivering frames after 7 frames"):
        next(src)


def test_replay_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"cannot open video '.*nope.avi': file not found"):
        open_source(f"replay:{tmp_path / 'nope.avi'}")


def test_stream_from_a_replayed_grabber_runs_live(tmp_path: Path, make_video: Callable[..., Path]) -> None:
    clip = make_video(tmp_path / "clip.avi", n=30, fps=30.0, size=(128, 96))
    out = tmp_path / "run"
    result = run_stream(build_config(source=f"replay:{clip}", max_frames=20, out=out, video=False,
                                     capture_format="MJPG"))
    latency = json.loads((out / "latency.json").read_text())
    assert latency["mode"] == "live" and latency["source"]["kind"] == "capture"
    assert latency["source"]["pixel_format"] == "MJPG"  # what the device delivered, as asked
    assert result.frames + result.dropped == 20
    lines = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    assert len(lines) == result.frames
    # a live run's FPS is its rate of answers: frame intervals between its first and last overlay (frames
    # over first capture to last overlay read a 30 fps probe as 30.29 FPS over 90 frames)
    done = [r["t_capture"] + r["e2e_ms"] / 1e3 for r in lines]
    answers = (len(done) - 1) / (done[-1] - done[0])
    whole_run = len(done) / (done[-1] - lines[0]["t_capture"])  # the count it replaced
    assert abs(latency["fps"] - answers) < abs(latency["fps"] - whole_run)


def test_the_pixel_format_asked_for_is_delivered_or_refused(tmp_path: Path, make_video: Callable[..., Path]) -> None:
    clip = make_video(tmp_path / "clip.avi", n=5, fps=30.0)
    with CaptureSource("replay", opener=lambda _name: ReplayCapture(clip)) as default:
        assert default.info.pixel_format == "YUYV"  # the device's first format
    with CaptureSource("replay", pixel_format="MJPG", opener=lambda _name: ReplayCapture(clip)) as mjpg:
        assert mjpg.info.pixel_format == "MJPG" and next(mjpg).pixels.shape == (64, 96, 3)
    with pytest.raises(SourceError, match=r"capture device replay does not deliver NV12 \(it gives YUYV\) — "
                                          r"`v4l2-ctl --list-formats-ext -d replay`"):
        CaptureSource("replay", pixel_format="NV12", opener=lambda _name: ReplayCapture(clip))
    with pytest.raises(SourceError, match=r"does not deliver mjpg \(it gives YUYV; formats are case-sensitive: MJPG\)"):
        CaptureSource("replay", pixel_format="mjpg", opener=lambda _name: ReplayCapture(clip))
    with pytest.raises(SourceError, match="four-character pixel format such as MJPG"):
        CaptureSource("replay", pixel_format="MJPEG", opener=lambda _name: ReplayCapture(clip))
    with pytest.raises(ConfigError, match="'MJPEG' is not a four-character pixel format"):
        build_config(source="0", capture_format="MJPEG")
    toml = tmp_path / "grabber.toml"
    toml.write_text('[source]\nsource = "0"\ncapture_format = "MJPG"\n')
    assert build_config(toml).capture_format == "MJPG"


def test_a_usb2_grabber_in_yuyv_is_slow_and_the_log_says_to_ask_for_mjpg(
        tmp_path: Path, make_video: Callable[..., Path], caplog: pytest.LogCaptureFixture) -> None:
    """A USB 2 HDMI grabber at 1920x1080: 5 fps in YUYV (which OpenCV picks first), 30 in MJPG."""
    clip = make_video(tmp_path / "clip.avi", n=5, fps=30.0)
    usb2 = {"YUYV": 5.0, "MJPG": 30.0}
    with caplog.at_level(logging.WARNING, logger="edge_bus.sources.capture"):
        with CaptureSource("grabber", fps=30, opener=lambda _name: ReplayCapture(clip, formats=usb2)) as slow:
            assert (slow.info.fps, slow.info.pixel_format) == (5.0, "YUYV")
        assert [r.getMessage() for r in caplog.records] == [
            "capture device grabber delivers 5 fps at 96x64 in YUYV, not the 30 asked — USB 2 grabbers give high "
            "resolutions at full frame rate only in MJPG: --capture-format MJPG"]
        caplog.clear()
        with CaptureSource("grabber", fps=30, pixel_format="MJPG",
                           opener=lambda _name: ReplayCapture(clip, formats=usb2)) as fast:
            assert (fast.info.fps, fast.info.pixel_format) == (30.0, "MJPG")
            frames = [next(fast) for _ in range(4)]
        assert not caplog.records
    gaps = [b.t_capture - a.t_capture for a, b in zip(frames, frames[1:], strict=False)]
    assert max(gaps) < 0.2  # paced at 30 fps, not 5 (0.2 s)


def test_a_one_frame_file_replays_and_an_empty_one_says_so(tmp_path: Path) -> None:
    """OpenCV can't seek back in a one-frame file: it read as a device that "stopped delivering frames
    after 0 frames — check its cable"; so did a file with no frame at all."""
    import cv2
    import numpy as np

    from edge_bus.sources.replay_capture import ReplayCapture

    one, zero = tmp_path / "one.avi", tmp_path / "zero.avi"
    writer = cv2.VideoWriter(str(one), cv2.VideoWriter.fourcc(*"MJPG"), 200, (64, 48))
    writer.write(np.full((48, 64, 3), 90, np.uint8))
    writer.release()
    cv2.VideoWriter(str(zero), cv2.VideoWriter.fourcc(*"MJPG"), 200, (64, 48)).release()
    cap = ReplayCapture(one)
    assert all(cap.grab() for _ in range(5)) and cap.retrieve()[0]
    with pytest.raises(SourceError, match="holds no frame that can be decoded"):
        ReplayCapture(zero).grab()
