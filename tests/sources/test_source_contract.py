"""The FrameSource contract, checked identically for every kind of source."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from edge_bus.errors import SourceError
from edge_bus.sources import (
    CaptureSource,
    DemoSource,
    DicomSource,
    FolderSource,
    FrameSource,
    SourceInfo,
    VideoSource,
    demo_scene,
)
from edge_bus.types import Frame

KINDS = ("video", "folder", "dicom", "demo")


@pytest.fixture(params=KINDS)
def source(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    make_video: Callable[..., Path],
    make_image: Callable[..., Path],
    make_dicom: Callable[..., Path],
    cine_rgb: np.ndarray,
) -> Iterator[FrameSource]:
    kind = request.param
    src: FrameSource
    if kind == "video":
        src = VideoSource(make_video(tmp_path / "clip.avi", n=12))
    elif kind == "folder":
        for i in range(5):
            make_image(tmp_path / f"img ({i}).png", 20 * i)
        src = FolderSource(tmp_path)
    elif kind == "dicom":
        src = DicomSource(make_dicom(tmp_path / "cine.dcm", cine_rgb[:6], FrameTime=33.3))
    else:
        src = DemoSource()
    yield src
    src.close()


def _one_line(err: pytest.ExceptionInfo[SourceError]) -> str:
    msg = str(err.value)
    assert msg and "\n" not in msg, msg
    assert " — " in msg, f"message should say what to do: {msg}"
    return msg


class TestFrameSourceContract:
    def test_info(self, source: FrameSource) -> None:
        info = source.info
        assert isinstance(info, SourceInfo)
        assert info.kind in KINDS
        assert isinstance(info.name, str) and info.name
        assert isinstance(info.width, int) and info.width > 0
        assert isinstance(info.height, int) and info.height > 0
        assert isinstance(info.fps, float) and info.fps >= 0
        assert info.frame_count is None or (isinstance(info.frame_count, int) and info.frame_count > 0)
        assert info.live is False
        assert set(info.to_json()) >= {"kind", "name", "width", "height", "fps", "frames", "live"}

    def test_frames(self, source: FrameSource) -> None:
        assert iter(source) is source
        started = time.perf_counter()
        frames: list[Frame] = list(source)
        assert len(frames) == source.info.frame_count
        last_capture, last_t = started, -1.0
        for i, frame in enumerate(frames):
            assert isinstance(frame, Frame)
            assert frame.index == i
            px = frame.pixels
            assert isinstance(px, np.ndarray) and px.dtype == np.uint8
            assert px.ndim == 3 and px.shape[2] == 3 and px.flags.c_contiguous
            assert px.shape[:2] == (source.info.height, source.info.width)
            assert isinstance(frame.t_source, float) and frame.t_source > last_t
            assert frame.t_capture >= last_capture
            assert abs(frame.wall_time - time.time()) < 60
            last_capture, last_t = frame.t_capture, frame.t_source
        with pytest.raises(StopIteration):
            next(source)

    def test_close_is_idempotent_and_ends_iteration(self, source: FrameSource) -> None:
        first = next(source)
        assert first.index == 0
        source.close()
        source.close()
        with pytest.raises(StopIteration):
            next(source)

    def test_context_manager_closes(self, source: FrameSource) -> None:
        with source as entered:
            assert entered is source
            assert next(entered).index == 0
        with pytest.raises(StopIteration):
            next(source)

    @pytest.mark.parametrize("kind", [*KINDS, "capture"])
    def test_missing_input_is_a_one_line_source_error(
        self, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        missing = tmp_path / "nope"
        opener: dict[str, Callable[[], FrameSource]] = {
            "video": lambda: VideoSource(missing.with_suffix(".avi")),
            "folder": lambda: FolderSource(missing),
            "dicom": lambda: DicomSource(missing.with_suffix(".dcm")),
            "capture": lambda: CaptureSource("/dev/video987"),
            "demo": DemoSource,
        }
        if kind == "demo":

            def no_assets(name: str) -> bytes:
                raise FileNotFoundError(name)

            monkeypatch.setattr(demo_scene, "_asset_bytes", no_assets)
            demo_scene.load_scene.cache_clear()
            demo_scene.load_demo_images.cache_clear()
        try:
            with pytest.raises(SourceError) as err:
                opener[kind]()
        finally:
            demo_scene.load_scene.cache_clear()
            demo_scene.load_demo_images.cache_clear()
        msg = _one_line(err)
        assert "not found" in msg or "no capture device" in msg or "missing" in msg, msg
