"""FolderSource: natural order, BUSI mask files skipped, bad images, empty folders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge_bus.errors import SourceEndedEarly, SourceError
from edge_bus.sources import FolderSource, open_source, unwrap
from edge_bus.sources._common import natural_key


def _busi_like(folder: Path, make_image: Callable[..., Path], numbers: list[int]) -> None:
    folder.mkdir(exist_ok=True)
    for n in numbers:
        make_image(folder / f"benign ({n}).png", n)
        make_image(folder / f"benign ({n})_mask.png", 255)
    make_image(folder / f"benign ({numbers[0]})_mask_1.png", 255)
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(b"")


def test_natural_order_and_masks_skipped(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    _busi_like(tmp_path, make_image, [10, 2, 1, 21, 3])
    with FolderSource(tmp_path, fps=10.0) as src:
        assert [p.name for p in src.files] == [f"benign ({n}).png" for n in (1, 2, 3, 10, 21)]
        info = src.info
        assert (info.kind, info.still, info.live, info.frame_count, info.fps) == ("folder", True, False, 5, 10.0)
        frames = list(src)
    assert [int(f.pixels[0, 0, 0]) for f in frames] == [1, 2, 3, 10, 21]  # each file's gray level
    assert all(f.pixels.shape == (30, 40, 3) for f in frames)  # gray files come back as BGR
    assert [f.t_source for f in frames] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_natural_key() -> None:
    names = ["img10.png", "IMG2.png", "img1.png", "b (1).png", "a.png"]
    assert sorted(names, key=natural_key) == ["a.png", "b (1).png", "img1.png", "IMG2.png", "img10.png"]


def test_without_fps_one_nominal_second_per_image(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    for n in range(3):
        make_image(tmp_path / f"{n}.png", n)
    with FolderSource(tmp_path) as src:
        assert src.info.fps == 0.0
        assert [f.t_source for f in src] == [0.0, 1.0, 2.0]


def test_images_keep_their_own_size(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    make_image(tmp_path / "1.png", 1, size=(40, 30))
    make_image(tmp_path / "2.jpg", 2, size=(64, 48), gray=False)
    with FolderSource(tmp_path) as src:
        assert (src.info.width, src.info.height) == (40, 30)
        assert [f.pixels.shape for f in src] == [(30, 40, 3), (48, 64, 3)]


def test_single_image_file(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    path = make_image(tmp_path / "lesion.png", 7)
    with open_source(str(path)) as src:
        assert src.info.kind == "folder" and src.info.frame_count == 1
        assert int(next(src).pixels.max()) == 7


def test_unreadable_image_mid_folder_ends_early(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    for n in (1, 2, 4):
        make_image(tmp_path / f"benign ({n}).png", n)
    (tmp_path / "benign (3).png").write_bytes(b"\x89PNG this is not really a png")
    src = FolderSource(tmp_path)
    got = []
    with pytest.raises(SourceEndedEarly) as err:
        for frame in src:
            got.append(int(frame.pixels[0, 0, 0]))
    assert got == [1, 2]
    msg = str(err.value)
    assert "'benign (3).png' (3 of 4)" in msg and "the 2 frames before it were read" in msg and "\n" not in msg
    with pytest.raises(StopIteration):
        next(src)


def test_unreadable_first_image_fails_at_open(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"garbage")
    with pytest.raises(SourceError, match=r"cannot read image 'a\.png' \(1 of 1\)"):
        FolderSource(tmp_path)


def test_empty_folder(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    with pytest.raises(SourceError, match="has no images .* — check the path"):
        FolderSource(tmp_path)
    make_image(tmp_path / "x_mask.png", 255)  # masks only: still no images
    with pytest.raises(SourceError, match="has no images"):
        FolderSource(tmp_path)


def test_dataset_root_suggests_a_class_folder(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    for label in ("benign", "malignant", "normal"):
        _busi_like(tmp_path / label, make_image, [1, 2])
    with pytest.raises(SourceError) as err:
        FolderSource(tmp_path)
    assert "only sub-folders (benign, malignant, normal) — point --source at one of them" in str(err.value)


def test_a_folder_of_clips_names_one_to_give(tmp_path: Path) -> None:
    """--source ../shared/data/cine (18 .avi clips) said the folder had no images and to check the path."""
    for name in ("Pid_2_VID_10.avi", "Pid_1_VID_5.avi", "Pid_1_VID_6.AVI", "Pid_3_VID_1.mp4", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(SourceError) as err:
        FolderSource(tmp_path)
    message = str(err.value)
    assert "holds 4 video files (Pid_1_VID_5.avi, Pid_1_VID_6.AVI, Pid_2_VID_10.avi, ...), not images" in message
    assert f"--source {tmp_path / 'Pid_1_VID_5.avi'}" in message and "\n" not in message


def test_not_an_image_or_folder(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(SourceError, match="not a folder or an image file"):
        FolderSource(tmp_path / "x.csv")
    with pytest.raises(SourceError, match="not found — check the path"):
        FolderSource(tmp_path / "missing")
    with pytest.raises(SourceError, match="fps must be >= 0"):
        FolderSource(tmp_path, fps=-1)


@pytest.mark.data
def test_real_busi_class_folder(shared_data: Path) -> None:
    folder = shared_data / "busi" / "Dataset_BUSI_with_GT" / "benign"
    with open_source(str(folder), max_frames=3) as src:
        inner = unwrap(src)
        assert isinstance(inner, FolderSource)
        names = [p.name for p in inner.files[:3]]
        frames = list(src)
    assert names == ["benign (1).png", "benign (2).png", "benign (3).png"]
    assert len(frames) == 3 and all(f.pixels.ndim == 3 for f in frames)


def test_dicom_files_in_a_folder_play_with_their_spacing(
    tmp_path: Path, make_image: Callable[..., Path], make_dicom: Callable[..., Path], make_region: Callable[..., object]
) -> None:
    """A scanner's study export: single- and multi-frame .dcm files beside a PNG, in natural order. The
    cine makes the folder a clip per file, not stills: each file after the first starts with a cut."""
    gray = np.full((40, 50), 90, np.uint8)
    make_dicom(tmp_path / "IM1.dcm", gray, multiframe=False, regions=[make_region(0.01, 0.02)])
    make_dicom(tmp_path / "IM2.dcm", np.stack([gray, gray + 10, gray + 20]))  # 3 frames, no spacing or timing
    make_image(tmp_path / "IM3.png", 7)
    with FolderSource(tmp_path) as src:
        assert (src.info.frame_count, src.info.still, src.info.fps) == (5, False, 0.0)  # counted from the headers
        frames = list(src)
    assert [f.file for f in frames] == ["IM1.dcm", "IM2.dcm", "IM2.dcm", "IM2.dcm", "IM3.png"]
    assert [f.index for f in frames] == list(range(5))
    assert [f.cut for f in frames] == [False, True, False, False, True]
    assert [f.t_source for f in frames] == [0.0, 1.0, 2.0, 3.0, 4.0]  # a nominal second a frame, without timing
    assert frames[0].pixel_spacing_mm == pytest.approx((0.2, 0.1)) and frames[1].pixel_spacing_mm is None
    assert [int(f.pixels[0, 0, 0]) for f in frames] == [90, 90, 100, 110, 7]


def test_a_folder_of_dicom_cines_plays_each_at_its_own_timing(tmp_path: Path, make_dicom: Callable[..., Path]) -> None:
    """Two 20 fps cines: t_source runs on from one file to the next at their rate (they played as stills,
    at 1 s a frame, with smoothing off), and the folder reports their rate."""
    gray = np.full((24, 32), 50, np.uint8)
    make_dicom(tmp_path / "a.dcm", np.stack([gray] * 3), FrameTime=50.0)
    make_dicom(tmp_path / "b.dcm", np.stack([gray + 9] * 2), FrameTime=50.0)
    with FolderSource(tmp_path) as src:
        assert (src.info.still, src.info.fps, src.info.frame_count) == (False, pytest.approx(20.0), 5)
        frames = list(src)
    assert [f.t_source for f in frames] == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    assert [f.cut for f in frames] == [False, False, False, True, False]
    make_dicom(tmp_path / "c.dcm", np.stack([gray] * 2), FrameTime=40.0)  # another rate: none for the folder
    with FolderSource(tmp_path) as src:
        assert src.info.fps == 0.0 and not src.info.still


def test_every_page_of_a_tiff_stack_is_a_frame(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    """A multi-page TIFF played its first page only."""
    import cv2

    pages = [np.full((30, 40), 20 * k, np.uint8) for k in range(4)]
    assert cv2.imwritemulti(str(tmp_path / "stack.tif"), pages)
    make_image(tmp_path / "z.png", 7)
    with FolderSource(tmp_path) as src:
        assert (src.info.still, src.info.frame_count) == (False, 5)
        frames = list(src)
    assert [int(f.pixels[0, 0, 0]) for f in frames] == [0, 20, 40, 60, 7]
    assert [f.t_source for f in frames] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [f.cut for f in frames] == [False, False, False, False, True]
    with open_source(str(tmp_path / "stack.tif")) as src:  # the file alone: a clip of its pages
        assert [int(f.pixels[0, 0, 0]) for f in src] == [0, 20, 40, 60]


def test_a_tiff_stack_page_that_cannot_be_read_names_the_page(tmp_path: Path) -> None:
    import cv2

    path = tmp_path / "stack.tif"
    assert cv2.imwritemulti(str(path), [np.full((64, 64), 20 * k, np.uint8) for k in range(3)])
    data = path.read_bytes()
    with FolderSource(tmp_path) as src:
        next(src)
        path.write_bytes(data[: len(data) // 2])  # the stack cut short while it plays
        with pytest.raises(SourceEndedEarly, match=r"cannot read page 2 of 3 of image 'stack.tif' \(1 of 1\)"):
            next(src)


def test_a_folder_of_dicom_frames_plays_in_instance_order(tmp_path: Path, make_dicom: Callable[..., Path]) -> None:
    """One frame per file, named by UID as a PACS export names them: InstanceNumber sets the order."""
    gray = np.full((24, 32), 50, np.uint8)
    names = {3: "1.2.840.99.7.dcm", 1: "1.2.840.99.12.dcm", 2: "1.2.840.99.9.dcm", 10: "1.2.840.99.1.dcm"}
    for number, name in names.items():
        make_dicom(tmp_path / name, gray + number, multiframe=False, InstanceNumber=number,
                   SeriesInstanceUID="1.2.3")
    frames = list(FolderSource(tmp_path))
    assert [f.file for f in frames] == [names[n] for n in (1, 2, 3, 10)]
    assert [int(f.pixels[0, 0, 0]) for f in frames] == [51, 52, 53, 60]


def test_dicom_files_without_instance_numbers_keep_natural_order(
    tmp_path: Path, make_dicom: Callable[..., Path]
) -> None:
    gray = np.full((24, 32), 50, np.uint8)
    make_dicom(tmp_path / "IM10.dcm", gray, multiframe=False, InstanceNumber=1)
    make_dicom(tmp_path / "IM2.dcm", gray, multiframe=False)  # no InstanceNumber: names decide for all
    assert [f.file for f in FolderSource(tmp_path)] == ["IM2.dcm", "IM10.dcm"]


def test_a_16_bit_image_is_scaled_by_its_own_range_not_cut_to_its_top_8_bits(tmp_path: Path) -> None:
    """10-bit data in a 16-bit PNG read as 0-3 (OpenCV keeps the top 8 bits): a black frame, called normal."""
    import cv2

    ramp = (np.arange(64, dtype=np.uint16)[None, :].repeat(32, axis=0) * 16)  # 0..1008: 10-bit data
    cv2.imwrite(str(tmp_path / "a.png"), ramp)
    with FolderSource(tmp_path) as src:
        (frame,) = list(src)
    assert frame.pixels.dtype == np.uint8 and frame.pixels.min() == 0 and frame.pixels.max() == 255

    from edge_bus.datasets import read_gray

    assert read_gray(tmp_path / "a.png").max() == 255  # eval and calibration read it the same way


def test_a_broken_link_is_an_image_that_cannot_be_read_not_a_frame_skipped(tmp_path: Path) -> None:
    """A corrupt .png stopped the run, but a link to a deleted .png was skipped without a word."""
    import cv2

    for name in ("a.png", "c.png"):
        cv2.imwrite(str(tmp_path / name), np.full((32, 32), 80, np.uint8))
    (tmp_path / "b.png").symlink_to(tmp_path / "gone.png")
    with FolderSource(tmp_path) as src:
        assert [p.name for p in src.files] == ["a.png", "b.png", "c.png"]
        next(src)
        with pytest.raises(SourceError, match=r"cannot read image 'b.png' \(2 of 3\) .*: a link to nothing"):
            next(src)


def test_every_image_carries_its_own_decode_time(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    """The first image is read when the folder is opened, so the pipeline's timing of the source gave frame 0
    a decode of 0.02 ms where the others took 2-22 ms (a BUSI PNG); the folder now times each read itself."""
    for n in range(3):
        make_image(tmp_path / f"{n}.png", n, size=(400, 300))
    with FolderSource(tmp_path) as src:
        frames = list(src)
    assert all(f.decode_ms > 0 for f in frames)


def test_dicom_files_named_without_an_extension_play_and_the_dicomdir_index_is_skipped(
    tmp_path: Path, make_dicom: Callable[..., Path]
) -> None:
    """A scanner's export (IM000000, ... beside a DICOMDIR index): the folder "had no images"."""
    gray = np.full((24, 32), 50, np.uint8)
    for k in range(2):
        make_dicom(tmp_path / f"IM00000{k}", gray + k, multiframe=False, InstanceNumber=k + 1)
    make_dicom(tmp_path / "DICOMDIR", gray, multiframe=False)  # an index holds no image: never played
    (tmp_path / "README").write_text("not DICOM")  # no extension, no DICM marker: skipped
    with FolderSource(tmp_path) as src:
        assert [p.name for p in src.files] == ["IM000000", "IM000001"]
        assert [int(f.pixels[0, 0, 0]) for f in src] == [50, 51]


def test_only_busi_style_mask_names_are_skipped(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    """Every name with "_mask" in it was skipped without a word (Case_MASKED.png, tumor_mask_removed.png)."""
    for name in ("a_mask.png", "a_MASK_2.png", "Case_MASKED.png", "tumor_mask_removed.png", "a.png"):
        make_image(tmp_path / name, 9)
    with FolderSource(tmp_path) as src:
        assert [p.name for p in src.files] == ["a.png", "Case_MASKED.png", "tumor_mask_removed.png"]


def test_a_jpeg_cut_short_is_refused_not_played_half_grey(tmp_path: Path) -> None:
    """libjpeg decodes the part that is there and fills the rest grey, saying only "Premature end of JPEG
    file": a malignant lesion cut two thirds in streamed as normal, exit 0."""
    import cv2

    ok, data = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8))
    assert ok
    (tmp_path / "a.jpg").write_bytes(data.tobytes() + bytes(100))  # data after the end marker, as phones append
    (tmp_path / "b.jpg").write_bytes(data.tobytes()[: len(data) // 3])
    with FolderSource(tmp_path) as src:
        next(src)
        with pytest.raises(SourceEndedEarly, match=r"cannot read image 'b.jpg' \(2 of 2\) .*: a JPEG cut short"):
            next(src)
    from edge_bus.datasets import read_gray
    from edge_bus.errors import DataError

    with pytest.raises(DataError, match=r"b\.jpg: a JPEG cut short \(truncated\)"):
        read_gray(tmp_path / "b.jpg")  # eval and calibration too
    assert read_gray(tmp_path / "a.jpg").shape == (64, 64)


def test_an_opencv_setting_in_the_environment_is_named_when_a_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPENCV_IO_MAX_IMAGE_PIXELS=1 made a good PNG "corrupt", OPENCV_VIDEOIO_PRIORITY_FFMPEG=0 a good AVI
    "not a video": the message blamed the file and said nothing of the setting."""
    import os

    from edge_bus.imaging import opencv_settings_note
    from edge_bus.sources import VideoSource

    for name in [k for k in os.environ if k.startswith("OPENCV_")]:  # what this machine's environment may set
        monkeypatch.delenv(name)
    monkeypatch.setenv("OPENCV_FFMPEG_LOGLEVEL", "-8")
    monkeypatch.setenv("OPENCV_VIDEOIO_PRIORITY_FFMPEG", "0")
    assert opencv_settings_note() == (" (OpenCV settings in the environment, which may be why: "
                                      "OPENCV_VIDEOIO_PRIORITY_FFMPEG=0)")
    (tmp_path / "bad.avi").write_bytes(b"not a video at all")
    with pytest.raises(SourceError, match=r"FFmpeg can read \(OpenCV settings .*: OPENCV_VIDEOIO_PRIORITY_FFMPEG=0\)"):
        VideoSource(tmp_path / "bad.avi")
    monkeypatch.delenv("OPENCV_VIDEOIO_PRIORITY_FFMPEG")
    assert opencv_settings_note() == ""  # edge-bus's own (OPENCV_FFMPEG_LOGLEVEL, OPENCV_LOG_LEVEL) are not named
