"""Fixtures for the frame-source tests: the shared real data, and writers for small test files
(videos, image folders, DICOM) so every test builds exactly the input it needs in tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import SHARED_DATA, require_shared_data  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"  # Ultrasound Multi-frame Image Storage
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"  # Ultrasound Image Storage


@pytest.fixture
def shared_data_check() -> Callable[[Path], Path]:
    """The check behind ``shared_data``, for testing it with a path that doesn't exist."""
    return require_shared_data


def write_video(
    path: Path, n: int = 40, size: tuple[int, int] = (96, 64), fps: float = 25.0, fourcc: str = "MJPG"
) -> Path:
    """A small video whose frame i is filled with gray level 5*i (+ a little noise)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f"OpenCV can't write {fourcc} here"
    rng = np.random.default_rng(0)
    for i in range(n):
        frame = np.full((size[1], size[0], 3), (5 * i) % 230, np.uint8)
        frame += rng.integers(0, 20, frame.shape, dtype=np.uint8)
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def make_video() -> Callable[..., Path]:
    return write_video


def write_image(path: Path, value: int, size: tuple[int, int] = (40, 30), gray: bool = True) -> Path:
    """A flat image of gray level ``value`` (so tests can tell which file a frame came from)."""
    shape = (size[1], size[0]) if gray else (size[1], size[0], 3)
    assert cv2.imwrite(str(path), np.full(shape, value, np.uint8))
    return path


@pytest.fixture
def make_image() -> Callable[..., Path]:
    return write_image


def us_region(
    dx_cm: float, dy_cm: float, units: int = 3, spatial_format: int = 1, box: tuple[int, int, int, int] = (0, 0, 99, 99)
) -> Dataset:
    """One item of the Sequence of Ultrasound Regions (0018,6011)."""
    region = Dataset()
    region.RegionSpatialFormat = spatial_format
    region.RegionDataType = 1
    region.RegionLocationMinX0, region.RegionLocationMinY0, region.RegionLocationMaxX1, region.RegionLocationMaxY1 = box
    region.PhysicalUnitsXDirection = units
    region.PhysicalUnitsYDirection = units
    region.PhysicalDeltaX = dx_cm
    region.PhysicalDeltaY = dy_cm
    return region


@pytest.fixture
def make_region() -> Callable[..., Dataset]:
    return us_region


def write_dicom(
    path: Path,
    frames: np.ndarray,
    *,
    photometric: str | None = None,
    multiframe: bool = True,
    regions: Sequence[Dataset] = (),
    bits_stored: int | None = None,
    **attrs: object,
) -> Path:
    """An uncompressed ultrasound DICOM. ``frames``: [N,H,W] or [N,H,W,3] (uint8 or uint16) — or
    [H,W(,3)] with ``multiframe=False``. Extra keyword arguments become dataset attributes."""
    if not multiframe:
        frames = frames[None]
    n, rows, cols = frames.shape[:3]
    color = frames.ndim == 4
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(US_MULTIFRAME if multiframe else US_IMAGE)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = UID(ExplicitVRLittleEndian)
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.Rows, ds.Columns = rows, cols
    bits = 8 * frames.dtype.itemsize
    ds.BitsAllocated, ds.BitsStored = bits, bits_stored or bits
    ds.HighBit, ds.PixelRepresentation = ds.BitsStored - 1, 0
    ds.SamplesPerPixel = 3 if color else 1
    ds.PhotometricInterpretation = photometric or ("RGB" if color else "MONOCHROME2")
    if color:
        ds.PlanarConfiguration = 0
    if multiframe:
        ds.NumberOfFrames = n
    if regions:
        ds.SequenceOfUltrasoundRegions = list(regions)
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = np.ascontiguousarray(frames).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def make_dicom() -> Callable[..., Path]:
    return write_dicom


@pytest.fixture(scope="session")
def cine_rgb() -> np.ndarray:
    """Eight RGB frames [8,H,W,3] uint8: from a real cine clip when ../shared/data is present,
    else synthetic (a moving gradient), so DICOM tests run everywhere."""
    clips = sorted((SHARED_DATA / "cine").glob("*.avi")) if SHARED_DATA.is_dir() else []
    if clips:
        cap = cv2.VideoCapture(str(clips[0]))
        frames: list[np.ndarray] = []
        while len(frames) < 8:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        cap.release()
        if len(frames) == 8:
            return np.stack(frames)
    y, x = np.mgrid[0:48, 0:64]
    return np.stack([np.dstack([(x * 3 + 8 * i) % 256, (y * 5) % 256, (x + y + i) % 256]) for i in range(8)]).astype(
        np.uint8
    )
