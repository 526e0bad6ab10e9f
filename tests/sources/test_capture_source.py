"""CaptureSource: no device exists here, so the error paths, with a fake driver for the rest."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_bus.errors import SourceError
from edge_bus.sources import CaptureSource, capture, list_capture_devices
from edge_bus.sources.capture import device_path

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="V4L2 device nodes are Linux-only")


class FakeCapture:
    """Stands in for cv2.VideoCapture: delivers ``frames`` frames, then reads fail."""

    def __init__(self, frames: int, opened: bool = True) -> None:
        self.left = frames
        self.opened = opened
        self.props: dict[int, float] = {}
        self.released = False
        self.decode_s = 0.0

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def get(self, prop: int) -> float:
        return self.props.get(prop, 0.0)

    def grab(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(self.decode_s)  # an MJPEG decode, say
        h, w = int(self.props.get(cv2.CAP_PROP_FRAME_HEIGHT, 48)), int(self.props.get(cv2.CAP_PROP_FRAME_WIDTH, 64))
        return True, np.zeros((h, w, 3), np.uint8)

    def release(self) -> None:
        self.released = True


@pytest.fixture
def fake_node(tmp_path: Path) -> Path:
    node = tmp_path / "video5"
    node.write_bytes(b"")
    return node


@linux_only
def test_missing_device_says_how_to_list_them() -> None:
    with pytest.raises(SourceError) as err:
        CaptureSource("/dev/video987")
    msg = str(err.value)
    assert msg.startswith("no capture device /dev/video987")
    assert "is it plugged in? `v4l2-ctl --list-devices` lists them" in msg and "\n" not in msg


@linux_only
def test_device_number_means_dev_video_n() -> None:
    assert device_path(0) == "/dev/video0"
    assert device_path("3") == "/dev/video3"
    assert device_path("/dev/video2") == "/dev/video2"
    with pytest.raises(SourceError, match="no capture device /dev/video986"):
        CaptureSource("986")


def test_list_capture_devices_sorted_naturally(monkeypatch: pytest.MonkeyPatch) -> None:
    assert all(isinstance(d, str) for d in list_capture_devices())
    monkeypatch.setattr(capture.glob, "glob", lambda pattern: ["/dev/video10", "/dev/video2", "/dev/video0"])
    assert list_capture_devices() == ["/dev/video0", "/dev/video2", "/dev/video10"]


def test_stream_then_device_stops_delivering(fake_node: Path) -> None:
    fake = FakeCapture(frames=3)
    src = CaptureSource(str(fake_node), size=(320, 240), fps=25.0, opener=lambda target: fake)
    assert fake.props[cv2.CAP_PROP_BUFFERSIZE] == 1
    info = src.info
    assert (info.kind, info.live, info.frame_count, info.width, info.height, info.fps) == (
        "capture",
        True,
        None,
        320,
        240,
        25.0,
    )
    fake.decode_s = 0.003
    before = time.perf_counter()
    frames = [next(src) for _ in range(3)]
    assert [f.index for f in frames] == [0, 1, 2]
    # stamped when the grabber handed the frame over; the decode after it is measured and counts
    # towards end-to-end latency (the pipeline's e2e starts at t_capture)
    assert before <= frames[0].t_capture < frames[1].t_capture
    assert all(f.decode_ms >= 3.0 for f in frames)
    assert frames[1].t_capture - frames[0].t_capture >= 0.003
    assert frames[0].pixels.shape == (240, 320, 3)
    assert 0 <= frames[0].t_source <= frames[1].t_source <= frames[2].t_source
    with pytest.raises(SourceError) as err:
        next(src)
    assert f"capture device {fake_node} stopped delivering frames after 3 frames" in str(err.value)
    assert fake.released
    with pytest.raises(StopIteration):
        next(src)


def test_device_that_will_not_open(fake_node: Path) -> None:
    with pytest.raises(SourceError, match="is another program using it"):
        CaptureSource(str(fake_node), opener=lambda target: FakeCapture(0, opened=False))


@pytest.mark.parametrize(("size", "fps"), [((0, 480), None), ((640, 480), 0.0)])
def test_bad_requests(fake_node: Path, size: tuple[int, int], fps: float | None) -> None:
    with pytest.raises(SourceError, match="must be"):
        CaptureSource(str(fake_node), size=size, fps=fps)


def test_the_pixel_format_is_asked_for_before_the_size(fake_node: Path) -> None:
    """V4L2 sets the pixel format and the size in one request: a size set first would be negotiated in
    the device's default format (YUYV, where a USB 2 grabber caps 1920x1080 at 5-10 fps)."""
    fake = FakeCapture(frames=1)
    order: list[int] = []
    plain_set = fake.set
    fake.set = lambda prop, value: order.append(prop) or plain_set(prop, value)  # type: ignore[method-assign]
    src = CaptureSource(str(fake_node), size=(1920, 1080), fps=30.0, pixel_format="MJPG", opener=lambda target: fake)
    assert order.index(cv2.CAP_PROP_FOURCC) < order.index(cv2.CAP_PROP_FRAME_WIDTH)
    assert fake.props[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter.fourcc(*"MJPG") and src.info.pixel_format == "MJPG"
    src.close()
    assert capture.fourcc_text(0.0) == "" and capture.fourcc_text(float("nan")) == ""  # the backend does not say


def test_a_file_given_as_a_capture_device_says_what_to_give_instead(tmp_path: Path) -> None:
    """``--source capture:clip.avi`` asked "is another program using it?"."""
    clip = tmp_path / "clip.avi"
    clip.write_bytes(b"not a device")
    with pytest.raises(SourceError, match=r"clip.avi is a file, not a capture device — give it as --source .*replay:"):
        CaptureSource(str(clip))
