"""open_source: choosing a source from a --source string."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge_bus.errors import SourceError
from edge_bus.sources import SOURCE_KINDS, detect_kind, open_source


@pytest.fixture
def files(
    tmp_path: Path, make_video: Callable[..., Path], make_image: Callable[..., Path], make_dicom: Callable[..., Path]
) -> dict[str, Path]:
    (tmp_path / "imgs").mkdir()
    make_image(tmp_path / "imgs" / "1.png", 1)
    return {
        "video": make_video(tmp_path / "clip.avi", n=5),
        "mp4": make_video(tmp_path / "clip.mp4", n=5, fourcc="mp4v"),
        "folder": tmp_path / "imgs",
        "image": make_image(tmp_path / "one.png", 3),
        "dicom": make_dicom(tmp_path / "cine.dcm", np.zeros((2, 8, 8), np.uint8)),
        "dicom-magic": make_dicom(tmp_path / "IM0001", np.zeros((2, 8, 8), np.uint8)),
        "odd-name": make_video(tmp_path / "take:1.avi", n=3),
    }


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("video", "video"), ("mp4", "video"), ("folder", "folder"), ("image", "folder"),
        ("dicom", "dicom"), ("dicom-magic", "dicom"), ("odd-name", "video"),
    ],
)
def test_auto_detection_opens_the_right_kind(files: dict[str, Path], key: str, kind: str) -> None:
    assert detect_kind(str(files[key])) == kind
    with open_source(str(files[key])) as src:
        assert src.info.kind == kind
        assert next(src).index == 0


def test_detect_demo_and_devices() -> None:
    assert detect_kind("demo") == "demo"
    assert detect_kind("0") == "capture"
    assert detect_kind("/dev/video12") == "capture"


@pytest.mark.parametrize(("prefix", "kind"), [("video", "video"), ("folder", "folder"), ("dicom", "dicom")])
def test_prefix_forces_the_kind(files: dict[str, Path], prefix: str, kind: str) -> None:
    with open_source(f"{prefix}:{files[kind]}") as src:
        assert src.info.kind == kind


def test_a_prefixed_path_expands_home(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The shell leaves ``folder:~/scans`` as typed: it read as a folder named "~"."""
    monkeypatch.setenv("HOME", str(files["folder"].parent))
    with open_source("folder:~/imgs") as src:
        assert src.info.kind == "folder" and next(src).index == 0


def test_prefix_that_does_not_fit_the_file(files: dict[str, Path]) -> None:
    with pytest.raises(SourceError, match="not a DICOM file"):
        open_source(f"dicom:{files['video']}")
    with pytest.raises(SourceError, match="not a video"):
        open_source(f"video:{files['dicom']}")


def test_demo_prefix() -> None:
    for spec in ("demo", "demo:", "DEMO", "demo:7"):
        with open_source(spec, max_frames=1) as src:
            assert src.info.kind == "demo"


@pytest.mark.parametrize("spec", ["rtsp://camera/1", "webcam:0", "vid:clip.avi"])
def test_unknown_prefix_lists_the_kinds(spec: str) -> None:
    with pytest.raises(SourceError) as err:
        open_source(spec)
    msg = str(err.value)
    assert "unknown source kind" in msg and "valid kinds: " + ", ".join(SOURCE_KINDS) in msg


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("missing.avi", "no such file or folder — check the path"),
        ("video:missing.avi", "no such file or folder — check the path"),
        ("folder:", "needs a path after the colon"),
        ("capture:/dev/video55", "no capture device /dev/video55"),
        ("   ", "--source is empty"),
        ("demo:abc", "optional integer seed"),
    ],
)
def test_errors_are_one_line(spec: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SourceError) as err:
        open_source(spec)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_max_frames_must_be_positive() -> None:
    with pytest.raises(SourceError, match="--max-frames must be at least 1"):
        open_source("demo", max_frames=0)
