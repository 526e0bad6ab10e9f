"""DicomSource: single/multi-frame, photometric conversions, timing, ultrasound-region spacing,
and damaged files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import convert_color_space, get_decoder
from pydicom.uid import JPEGBaseline8Bit

from edge_bus.errors import SourceEndedEarly, SourceError
from edge_bus.sources import DicomSource, open_source

MakeDicom = Callable[..., Path]


def us_region(dx_cm: float, dy_cm: float, **kw: object) -> dict[str, object]:
    """Region parameters, turned into a dataset by the make_region fixture inside each test."""
    return {"dx_cm": dx_cm, "dy_cm": dy_cm, **kw}


def test_multiframe_rgb_with_region_spacing(
    tmp_path: Path, make_dicom: MakeDicom, make_region: Callable[..., Dataset], cine_rgb: np.ndarray
) -> None:
    path = make_dicom(tmp_path / "cine.dcm", cine_rgb, FrameTime=33.333, regions=[make_region(0.012, 0.01)])
    with DicomSource(path) as src:
        n, h, w = cine_rgb.shape[:3]
        info = src.info
        assert (info.kind, info.frame_count, info.width, info.height, info.still) == ("dicom", n, w, h, False)
        assert info.fps == pytest.approx(30.0, rel=1e-3)
        frames = list(src)
    assert len(frames) == n
    for frame, rgb in zip(frames, cine_rgb, strict=True):
        assert np.array_equal(frame.pixels, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert frame.pixel_spacing_mm == pytest.approx((0.1, 0.12))  # (row, col) in mm from cm
    assert [f.t_source for f in frames] == pytest.approx([i * 0.033333 for i in range(n)])


def test_single_frame_monochrome_without_regions(tmp_path: Path, make_dicom: MakeDicom, cine_rgb: np.ndarray) -> None:
    gray = cv2.cvtColor(cine_rgb[0], cv2.COLOR_RGB2GRAY)
    path = make_dicom(tmp_path / "still.dcm", gray, multiframe=False)
    with DicomSource(path) as src:
        assert src.info.frame_count == 1 and src.info.still and src.info.fps == 0.0
        assert src.pixel_spacing_mm is None
        frames = list(src)
    assert len(frames) == 1
    assert frames[0].pixel_spacing_mm is None and frames[0].t_source == 0.0
    assert np.array_equal(frames[0].pixels, cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))


def test_ybr_full_is_converted(tmp_path: Path, make_dicom: MakeDicom, cine_rgb: np.ndarray) -> None:
    ybr = convert_color_space(cine_rgb[:3], "RGB", "YBR_FULL")
    path = make_dicom(tmp_path / "ybr.dcm", ybr, photometric="YBR_FULL", CineRate=25)
    with DicomSource(path) as src:
        assert src.info.fps == 25.0
        frames = list(src)
    expected = cv2.cvtColor(cine_rgb[2], cv2.COLOR_RGB2BGR).astype(int)
    assert np.abs(frames[2].pixels.astype(int) - expected).max() <= 2
    assert frames[2].t_source == pytest.approx(2 / 25)


def test_deep_and_inverted_monochrome(tmp_path: Path, make_dicom: MakeDicom) -> None:
    ramp = np.tile(np.linspace(0, 4095, 64).astype(np.uint16), (2, 16, 1))  # 12 bits stored in 16
    with DicomSource(make_dicom(tmp_path / "deep.dcm", ramp, bits_stored=12)) as src:
        px = next(src).pixels
    assert px.dtype == np.uint8 and px[0, 0, 0] == 0 and px[0, -1, 0] == 255
    windowed = make_dicom(tmp_path / "win.dcm", ramp, bits_stored=12, WindowCenter=1024, WindowWidth=2048)
    with DicomSource(windowed) as src:
        row = next(src).pixels[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and row[len(row) // 2] == 255  # saturates above the window
    assert 100 < row[len(row) // 4] < 155
    flat = np.full((1, 8, 8), 200, np.uint8)
    with DicomSource(make_dicom(tmp_path / "mono1.dcm", flat, photometric="MONOCHROME1")) as src:
        assert int(next(src).pixels[0, 0, 0]) == 55


def test_frame_time_vector(tmp_path: Path, make_dicom: MakeDicom, cine_rgb: np.ndarray) -> None:
    path = make_dicom(tmp_path / "vec.dcm", cine_rgb[:4], FrameTimeVector=[0, 40, 40, 60])
    with DicomSource(path) as src:
        assert [f.t_source for f in src] == pytest.approx([0.0, 0.04, 0.08, 0.14])


@pytest.mark.parametrize("implicit", [True, False])
def test_a_dataset_without_the_part_10_header_plays(
    tmp_path: Path, make_dicom: MakeDicom, cine_rgb: np.ndarray, implicit: bool
) -> None:
    """No preamble, no DICM, no transfer syntax (an old system's dump): "not a DICOM file — check the path"."""
    import pydicom

    path = make_dicom(tmp_path / "cine.dcm", cine_rgb[:3], FrameTime=40)
    ds = pydicom.dcmread(path)
    del ds.file_meta
    ds.preamble = None
    pydicom.dcmwrite(tmp_path / "bare.dcm", ds, implicit_vr=implicit, little_endian=True)
    assert (tmp_path / "bare.dcm").read_bytes()[128:132] != b"DICM"
    with DicomSource(tmp_path / "bare.dcm") as src:
        assert src.info.fps == pytest.approx(25.0)
        frames = list(src)
    assert [f.pixels.tobytes() for f in frames] == [cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).tobytes()
                                                   for rgb in cine_rgb[:3]]
    from edge_bus.sources import FolderSource

    folder = tmp_path / "exam"
    folder.mkdir()
    (tmp_path / "bare.dcm").rename(folder / "bare.dcm")
    with FolderSource(folder) as src:  # the folder reads its header as DicomSource reads it: a cine, not a still
        assert (src.info.still, src.info.frame_count, src.info.fps) == (False, 3, pytest.approx(25.0))
    (tmp_path / "text.dcm").write_text("not DICOM at all")
    with pytest.raises(SourceError, match=r"text\.dcm': not a DICOM file \(no DICM header\)"):
        DicomSource(tmp_path / "text.dcm")


@pytest.mark.parametrize(
    ("timing", "fps", "times"),
    [
        ({"FrameTimeVector": [0, 0, 0, 0]}, 0.0, [0.0, 1.0, 2.0, 3.0]),  # every frame at 0: --realtime dropped most
        ({"FrameTimeVector": [0, 33.3, -20, 33.3], "CineRate": 25}, 25.0, [0.0, 0.04, 0.08, 0.12]),  # backwards
        ({"FrameTimeVector": [0, 40, 1e6, 40], "FrameTime": 40}, 25.0, [0.0, 0.04, 0.08, 0.12]),  # a 1000 s step
        ({"FrameTime": 1e6}, 0.0, [0.0, 1.0, 2.0, 3.0]),  # 0.001 fps: 1000 s a frame, and no video writer opened
        ({"FrameTime": 0.001, "RecommendedDisplayFrameRate": 20}, 20.0, [0.0, 0.05, 0.1, 0.15]),  # 10^6 fps
    ],
)
def test_timing_that_is_not_believable_is_not_used(
    tmp_path: Path, make_dicom: MakeDicom, cine_rgb: np.ndarray, timing: dict[str, object], fps: float,
    times: list[float],
) -> None:
    with DicomSource(make_dicom(tmp_path / "t.dcm", cine_rgb[:4], **timing)) as src:
        assert src.info.fps == pytest.approx(fps)
        assert [f.t_source for f in src] == pytest.approx(times)


def test_every_frame_of_a_native_ybr_full_422_cine_is_decoded(
    tmp_path: Path, make_dicom: MakeDicom, cine_rgb: np.ndarray
) -> None:
    """4:2:2 stored natively (Y0 Y1 Cb Cr for each pair of pixels): pydicom's iter_pixels stepped through
    it 3 bytes a pixel, so frames 1 on were scrambled and the file "broke off" two thirds in."""
    import pydicom

    ybr = convert_color_space(cine_rgb[:4], "RGB", "YBR_FULL")
    packed = np.empty((*ybr.shape[:2], ybr.shape[2] // 2, 4), np.uint8)
    packed[..., 0], packed[..., 1] = ybr[:, :, 0::2, 0], ybr[:, :, 1::2, 0]
    packed[..., 2] = (ybr[:, :, 0::2, 1].astype(int) + ybr[:, :, 1::2, 1]) // 2
    packed[..., 3] = (ybr[:, :, 0::2, 2].astype(int) + ybr[:, :, 1::2, 2]) // 2
    path = make_dicom(tmp_path / "ybr422.dcm", ybr, photometric="YBR_FULL_422", FrameTime=40)
    ds = pydicom.dcmread(path)
    ds.PixelData = packed.tobytes()  # 2 bytes a pixel, as DICOM stores 4:2:2
    ds.save_as(path)
    with DicomSource(path) as src:
        frames = list(src)
    assert len(frames) == 4
    for frame, rgb in zip(frames, cine_rgb[:4], strict=True):
        expected = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(int)
        assert np.abs(frame.pixels.astype(int) - expected).mean() < 6  # the chroma is halved across


@pytest.mark.parametrize(
    ("regions", "expected"),
    [
        ([us_region(0.02, 0.03, units=0)], None),  # no physical units
        ([us_region(0.02, 0.03, units=4)], None),  # seconds, e.g. a spectral Doppler strip
        ([us_region(0.5, 0.5, spatial_format=3, box=(0, 0, 99, 20)), us_region(0.02, 0.03)], (0.3, 0.2)),
        ([us_region(0.01, 0.01, box=(0, 0, 10, 10)), us_region(-0.02, 0.03, box=(0, 0, 90, 90))], (0.3, 0.2)),
    ],
    ids=["no-units", "not-cm", "prefers-2d", "largest-2d"],
)
def test_region_choice(
    tmp_path: Path,
    make_dicom: MakeDicom,
    make_region: Callable[..., Dataset],
    regions: list[dict[str, object]],
    expected: tuple[float, float] | None,
) -> None:
    items = [make_region(**r) for r in regions]
    path = make_dicom(tmp_path / "r.dcm", np.zeros((1, 8, 8), np.uint8), regions=items)
    with DicomSource(path) as src:
        spacing = next(src).pixel_spacing_mm
    assert spacing == (pytest.approx(expected) if expected else None)


def test_dicom_magic_without_suffix_is_detected(tmp_path: Path, make_dicom: MakeDicom, cine_rgb: np.ndarray) -> None:
    path = make_dicom(tmp_path / "IM_0001", cine_rgb[:2])
    with open_source(str(path)) as src:
        assert src.info.kind == "dicom" and len(list(src)) == 2


def test_truncated_pixel_data_yields_good_frames_then_ends_early(
    tmp_path: Path, make_dicom: MakeDicom, cine_rgb: np.ndarray
) -> None:
    path = make_dicom(tmp_path / "cine.dcm", cine_rgb)
    frame_bytes = cine_rgb[0].nbytes
    path.write_bytes(path.read_bytes()[: -(frame_bytes * 3 + frame_bytes // 2)])
    src = DicomSource(path)
    got = []
    with pytest.raises(SourceEndedEarly) as err:
        for frame in src:
            got.append(frame.index)
    assert got == list(range(len(cine_rgb) - 4))
    assert f"at frame {len(got)} of {len(cine_rgb)}" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty"),
        (b"this is not a DICOM file\n" * 20, "not a DICOM file"),
        (b"\0" * 128 + b"DICM" + b"\xff" * 64, "cannot open DICOM file"),
    ],
    ids=["zero-bytes", "text", "garbage-after-magic"],
)
def test_corrupt_files(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "bad.dcm"
    path.write_bytes(content)
    with pytest.raises(SourceError) as err:
        DicomSource(path)
    assert expected in str(err.value) and " — " in str(err.value) and "\n" not in str(err.value)


def test_header_only_has_no_pixel_data(tmp_path: Path, make_dicom: MakeDicom, cine_rgb: np.ndarray) -> None:
    path = make_dicom(tmp_path / "cine.dcm", cine_rgb)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(SourceError, match="no pixel data|corrupt or truncated"):
        DicomSource(path)


def test_compressed_without_decoder(tmp_path: Path, make_dicom: MakeDicom) -> None:
    if get_decoder(JPEGBaseline8Bit).is_available:
        pytest.skip("a JPEG decoder is installed here; this checks the message when none is")
    path = make_dicom(tmp_path / "jpeg.dcm", np.zeros((1, 8, 8), np.uint8))
    from pydicom import dcmread
    from pydicom.encaps import encapsulate

    ds = dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(SourceError, match="no decoder is installed — pip install pylibjpeg"):
        DicomSource(path)


def test_deflated_file_plays(tmp_path: Path, make_dicom: MakeDicom, cine_rgb: np.ndarray) -> None:
    """Deflated Explicit VR Little Endian is inflated in memory, so its frames come from the dataset read,
    not from the file again (which once gave "no pixel data")."""
    from pydicom import dcmread
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    gray = cv2.cvtColor(cine_rgb[0], cv2.COLOR_RGB2GRAY)
    path = make_dicom(tmp_path / "still.dcm", gray, multiframe=False)
    ds = dcmread(path)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    with DicomSource(path) as src:
        frames = list(src)
    assert len(frames) == 1 and np.array_equal(frames[0].pixels, cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))


def test_unknown_transfer_syntax_is_one_line(tmp_path: Path, make_dicom: MakeDicom) -> None:
    """A transfer syntax UID that DICOM does not define: pydicom's ValueError became a traceback."""
    path = make_dicom(tmp_path / "odd.dcm", np.zeros((1, 8, 8), np.uint8))
    data = path.read_bytes()
    assert data.count(b"1.2.840.10008.1.2.1\0") == 1
    path.write_bytes(data.replace(b"1.2.840.10008.1.2.1\0", b"1.2.840.10008.9.9.9\0"))
    with pytest.raises(SourceError, match=r"transfer syntax 1\.2\.840\.10008\.9\.9\.9 is not one DICOM defines"):
        DicomSource(path)
