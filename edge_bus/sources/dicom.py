"""DICOM ultrasound files, single- or multi-frame, decoded one frame at a time with pydicom.

Frames are BGR uint8 HxWx3: MONOCHROME1/2 is expanded to three channels (MONOCHROME1 inverted),
YBR_FULL/YBR_FULL_422 are converted to RGB by pydicom and then to BGR, PALETTE COLOR goes through
its lookup table, and data deeper than 8 bits is scaled to 8 bits (through the VOI window when the
file has one). ``t_source`` comes from FrameTime, FrameTimeVector, CineRate or
RecommendedDisplayFrameRate, in that order; without any, one nominal second per frame.

``Frame.pixel_spacing_mm`` is ``(row_mm, col_mm)`` from the Sequence of Ultrasound Regions
(0018,6011): the largest 2D region whose PhysicalUnitsX/YDirection are 3 (cm), PhysicalDeltaY /
PhysicalDeltaX converted to mm; ``None`` when no region says so.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_voi_lut, get_decoder, iter_pixels, pixel_array
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from edge_bus.errors import SourceEndedEarly, SourceError
from edge_bus.imaging import to_bgr
from edge_bus.sources._common import check_readable_file, describe_exc, make_frame, plausible_fps
from edge_bus.sources.base import FrameSource, SourceInfo
from edge_bus.types import Frame

__all__ = [
    "DICOM_SUFFIXES", "DicomSource", "acquisition_order", "frames_and_fps", "is_dicom_file", "read_header",
    "ultrasound_spacing_mm",
]

_UNITS_CM = 3
_SPATIAL_2D = 1
#: file suffixes read as DICOM without looking inside (other files need the ``DICM`` magic)
DICOM_SUFFIXES: frozenset[str] = frozenset({".dcm", ".dicom"})


def is_dicom_file(path: Path) -> bool:
    """True when ``path`` carries the DICOM Part 10 magic (``DICM`` at byte 128)."""
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


#: what :func:`read_header` reads: the order of a folder's files and each file's frames and timing
_HEADER_TAGS = ["SeriesInstanceUID", "InstanceNumber", "NumberOfFrames", "FrameTimeVector", "FrameTime", "CineRate",
                "RecommendedDisplayFrameRate", "Rows"]


def read_header(path: Path) -> Dataset | None:
    """The header tags a folder of DICOM files is ordered and timed by, without the pixel data; None when
    the file can't be read here (it fails later, where it is played). A dataset without the Part 10 header
    is read as :class:`DicomSource` reads it, when it holds an image (its cine counted one frame, a still)."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
    except InvalidDicomError:
        pass
    except (OSError, ValueError, TypeError):
        return None
    bare = _read_forced(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
    return bare if bare is not None and "Rows" in bare else None


def _read_forced(path: Path, **kwargs: Any) -> Dataset | None:
    """``path`` read as a dataset without the Part 10 header (``force``); None when pydicom can't."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return pydicom.dcmread(path, force=True, **kwargs)
    except Exception:  # pydicom raises many types for what is not DICOM at all
        return None


def _order_key(header: Dataset | None) -> tuple[str, int] | None:
    """(SeriesInstanceUID, InstanceNumber), or None when unreadable or unnumbered."""
    if header is None:
        return None
    try:
        number = header.get("InstanceNumber")
        return None if number in (None, "") else (str(header.get("SeriesInstanceUID", "")), int(number))
    except (ValueError, TypeError):
        return None


def frames_and_fps(header: Dataset | None) -> tuple[int, float]:
    """(frames, nominal fps) a DICOM file's header gives: (1, 0.0) for an unreadable one (it fails where it
    is played) and fps 0 when it says nothing about timing."""
    if header is None:
        return 1, 0.0
    try:
        n = max(1, int(header.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1, 0.0
    return n, _frame_times(header, n)[1]


def acquisition_order(paths: Sequence[Path], headers: Sequence[Dataset | None] | None = None) -> list[Path]:
    """DICOM files in acquisition order: by series, then InstanceNumber, when every file has one.

    A study exported one frame per file is named by SOP instance UID (``1.2.840...dcm``) or by a
    counter without zero padding; sorting such names scrambles the cine. Files without an
    InstanceNumber (or unreadable here: they fail later, where they are played) keep ``paths``'
    order, and so does everything when any one lacks it. ``headers``: the files' :func:`read_header`
    when the caller has read them already."""
    keys = [_order_key(h) for h in (headers if headers is not None else [read_header(p) for p in paths])]
    if len(paths) < 2 or any(k is None for k in keys):
        return list(paths)
    order = sorted(range(len(paths)), key=lambda i: (keys[i], i))
    return [paths[i] for i in order]


def ultrasound_spacing_mm(ds: Dataset) -> tuple[float, float] | None:
    """``(row_mm, col_mm)`` from the Sequence of Ultrasound Regions, or None (see module doc)."""
    best: tuple[int, tuple[float, float]] | None = None
    for region in ds.get("SequenceOfUltrasoundRegions", None) or []:
        try:
            if int(region.PhysicalUnitsXDirection) != _UNITS_CM or int(region.PhysicalUnitsYDirection) != _UNITS_CM:
                continue
            dx, dy = abs(float(region.PhysicalDeltaX)), abs(float(region.PhysicalDeltaY))
        except (AttributeError, TypeError, ValueError):
            continue
        if dx <= 0 or dy <= 0:
            continue
        is_2d = int(region.get("RegionSpatialFormat", 0) or 0) == _SPATIAL_2D
        try:
            area = (int(region.RegionLocationMaxX1) - int(region.RegionLocationMinX0)) * (
                int(region.RegionLocationMaxY1) - int(region.RegionLocationMinY0)
            )
        except (AttributeError, TypeError, ValueError):
            area = 0
        rank = (2 if is_2d else 1) * 10**9 + max(area, 0)
        if best is None or rank > best[0]:
            best = (rank, (dy * 10.0, dx * 10.0))
    return None if best is None else best[1]


def _frame_times(ds: Dataset, n: int) -> tuple[list[float], float]:
    """Per-frame seconds and nominal fps (0 when the file says nothing usable about timing). A rate
    outside :data:`PLAUSIBLE_FPS` is not believed, nor a FrameTimeVector with a step that is not one
    (0 or less, or over a second: all zeros gave every frame t_source 0, and ``--realtime`` dropped 27 of
    30); the next field is tried instead."""
    try:
        vector = ds.get("FrameTimeVector", None)
        if vector is not None and len(vector) == n and n > 1:
            steps_ms = np.array([float(v) for v in vector[1:]])  # the first entry is the first frame's: 0
            if all(step > 0 and plausible_fps(1000.0 / step) > 0 for step in steps_ms):
                times = np.concatenate([[0.0], np.cumsum(steps_ms) / 1000.0])
                return [float(t) for t in times], (n - 1) / float(times[-1])
        frame_ms = float(ds.get("FrameTime", 0) or 0)
        fps = plausible_fps(1000.0 / frame_ms) if frame_ms > 0 else 0.0
        for key in ("CineRate", "RecommendedDisplayFrameRate"):
            if fps <= 0:
                fps = plausible_fps(float(ds.get(key, 0) or 0))
    except (TypeError, ValueError):
        fps = 0.0
    return [i / fps if fps > 0 else float(i) for i in range(n)], fps


def _to_u8(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """Scale deeper-than-8-bit data to uint8 (through the VOI window when present)."""
    if arr.dtype == np.uint8:
        return arr
    bits = int(ds.get("BitsStored", 8 * arr.itemsize) or 8 * arr.itemsize)
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        arr = apply_voi_lut(arr, ds)
    low = -(2 ** (bits - 1)) if int(ds.get("PixelRepresentation", 0) or 0) == 1 else 0
    scaled = (arr.astype(np.float32) - low) * np.float32(255.0 / (2**bits - 1))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _to_bgr(arr: np.ndarray, ds: Dataset, photometric: str) -> np.ndarray:
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        rgb = rgb if rgb.dtype == np.uint8 else (rgb >> 8).astype(np.uint8)
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    arr = _to_u8(arr, ds)
    if arr.ndim == 3 and arr.shape[2] == 3:  # RGB (pydicom already converted YBR)
        return cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    if photometric == "MONOCHROME1":
        arr = 255 - arr
    return to_bgr(arr)


def _transfer_syntax(ds: Dataset) -> Any:
    """The file's TransferSyntaxUID, or None when its meta has none."""
    return getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)


def _deflated(ds: Dataset) -> bool:
    return bool(_transfer_syntax(ds) == DeflatedExplicitVRLittleEndian)


def _in_memory(ds: Dataset) -> bool:
    """Whether the frames must be decoded from ``ds`` itself, not read again from its file: a deflated file
    (inflated in memory) and one without a Part 10 header (the file says nothing of its encoding)."""
    return _deflated(ds) or not ds.preamble


def _open(path: Path) -> Dataset:
    try:
        with warnings.catch_warnings():  # damaged files warn, then fail below with our own message
            warnings.simplefilter("ignore", UserWarning)
            ds = pydicom.dcmread(path, defer_size=1024)
            # a deflated file is inflated in memory: its pixel data can't be read again from the file
            return pydicom.dcmread(path) if _deflated(ds) else ds
    except InvalidDicomError:
        bare = _bare_dataset(path)
        if bare is not None:
            return bare
        raise SourceError(
            f"cannot open DICOM file '{path}': not a DICOM file (no DICM header) — check the path"
        ) from None
    except Exception as exc:  # pydicom raises many types for damaged files
        raise SourceError(
            f"cannot open DICOM file '{path}': corrupt or truncated ({describe_exc(exc)}) "
            "— copy or export it again"
        ) from None


def _bare_dataset(path: Path) -> Dataset | None:
    """A dataset written without the Part 10 header (no preamble, no DICM, no transfer syntax: an old
    system's or a script's dump), read whole with its encoding as pydicom found it; None when it holds no
    image (so not a DICOM file at all, as far as playing goes)."""
    ds = _read_forced(path)
    if ds is None or "PixelData" not in ds or "Rows" not in ds:
        return None
    implicit, little = ds.original_encoding
    if not little:  # big endian: retired long ago; said as not DICOM rather than decoded wrongly
        return None
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    return ds


def _check_decodable(path: Path, ds: Dataset) -> None:
    syntax = _transfer_syntax(ds)
    try:
        if syntax is None or not syntax.is_compressed:
            return
    except ValueError:  # a UID that is no transfer syntax pydicom knows
        raise SourceError(
            f"cannot decode DICOM file '{path}': its transfer syntax {syntax} is not one DICOM defines "
            "— export it again, uncompressed or as JPEG"
        ) from None
    try:
        decoder: Any = get_decoder(syntax)
    except Exception:  # unknown or unsupported transfer syntax
        raise SourceError(
            f"cannot decode DICOM file '{path}': transfer syntax {syntax.name} is not supported "
            "— export it uncompressed or as JPEG"
        ) from None
    if not decoder.is_available:
        raise SourceError(
            f"cannot decode DICOM file '{path}': its pixel data is {syntax.name} and no decoder is installed "
            "— pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg (or pillow)"
        )


class DicomSource(FrameSource):
    """Play a DICOM file's frames (one frame for a single-frame image)."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        check_readable_file(self._path, "DICOM file", "point --source at one .dcm file")
        ds = _open(self._path)
        if "PixelData" not in ds:
            raise SourceError(
                f"cannot open DICOM file '{self._path}': it has no pixel data (a report or structured document?) "
                "— export the image or cine loop"
            )
        try:
            rows, cols = int(ds.Rows), int(ds.Columns)
            n = int(ds.get("NumberOfFrames", 1) or 1)
        except (AttributeError, TypeError, ValueError):
            raise SourceError(
                f"cannot open DICOM file '{self._path}': Rows/Columns/NumberOfFrames missing or invalid "
                "— the file is damaged; export it again"
            ) from None
        _check_decodable(self._path, ds)
        self._photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
        self._ds = ds
        self._n = n
        self._times, fps = _frame_times(ds, n)
        self._spacing = ultrasound_spacing_mm(ds)
        self._frames: Iterator[np.ndarray] | None = None
        self._index = 0
        self._closed = False
        self._info = SourceInfo(
            kind="dicom", name=self._path.name, width=cols, height=rows, fps=fps, frame_count=n,
            still=n == 1,
        )

    @property
    def info(self) -> SourceInfo:
        return self._info

    @property
    def path(self) -> Path:
        return self._path

    @property
    def pixel_spacing_mm(self) -> tuple[float, float] | None:
        """``(row_mm, col_mm)`` from the ultrasound regions, or None."""
        return self._spacing

    def __next__(self) -> Frame:
        i = self._index
        if self._closed or i >= self._n:
            self.close()
            raise StopIteration
        if self._frames is None:
            self._frames = self._frame_arrays()
        try:
            with warnings.catch_warnings():  # pydicom's warnings about odd headers: we decode anyway
                warnings.simplefilter("ignore", UserWarning)
                arr = next(self._frames)
                pixels = _to_bgr(arr, self._ds, self._photometric)
        except StopIteration:
            self.close()
            raise SourceEndedEarly(
                f"DICOM file '{self._path.name}' ended at frame {i} of {self._n} — "
                "the file is truncated; copy or export it again"
            ) from None
        except Exception as exc:  # pydicom/numpy errors on damaged pixel data
            self.close()
            raise SourceEndedEarly(
                f"DICOM file '{self._path.name}' broke off at frame {i} of {self._n} "
                f"({describe_exc(exc)}) — the file is truncated or corrupt; copy or export it again"
            ) from None
        self._index += 1
        return make_frame(i, pixels, self._times[i], pixel_spacing_mm=self._spacing)

    def _frame_arrays(self) -> Iterator[np.ndarray]:
        """The frames' pixel arrays, one at a time (a deflated file's from the dataset in memory)."""
        src = self._ds if _in_memory(self._ds) else self._path
        syntax = _transfer_syntax(self._ds)
        if self._n > 1 and self._photometric == "YBR_FULL_422" and not (syntax is not None and syntax.is_compressed):
            # pydicom 3.0's iter_pixels steps through native 4:2:2 data 3 bytes a pixel, not 2: frames 1 on
            # came out scrambled (62 grey levels off), then "truncated" two thirds in; by index they decode
            return (pixel_array(self._path, index=i) if src is self._path else self._ds.pixel_array[i]
                    for i in range(self._n))
        return iter_pixels(src)

    def close(self) -> None:
        self._closed = True
        frames, self._frames = self._frames, None
        if frames is not None and hasattr(frames, "close"):
            frames.close()
