"""A folder of still images (or one image file), in natural order.

Frames are BGR uint8 HxWx3 (grayscale files are expanded to three channels) and keep each
file's own size: ``info`` reports the first image's. Files are taken in natural order
(``benign (2).png`` before ``benign (10).png``); mask files (``X_mask.png``, ``X_mask_1.png``, as in
BUSI's class folders) and hidden files are skipped, so a BUSI class folder can be played directly.
A JPEG cut short is refused, not played half grey.

A file may hold many frames: a DICOM cine (``.dcm``, ``.dicom``, or no suffix with the DICM marker
as a scanner's export names them, its DICOMDIR index skipped; played with its pixel spacing, so
``lesion_mm`` is filled in) or a multi-page TIFF (a stack, one page a frame). A folder of DICOM
files alone plays in acquisition order (series, then InstanceNumber) when every file has one.

- Every file holding one frame: ``still=True``, the images are independent, so the pipeline turns
  temporal smoothing off; ``t_source`` is ``index / fps``, or one nominal second per image.
- Any file holding more (a cine): ``still=False``, a clip per file. The first frame of each file
  after the first has ``cut`` set (smoothing starts afresh, the scan area is detected again), and
  ``t_source`` runs on from file to file with each file's own timing (a DICOM's FrameTime etc.,
  else one nominal second a frame). ``info.fps`` is the files' rate when they are all cines of one
  rate, else 0.

An image that can't be decoded mid-folder raises :class:`~edge_bus.errors.SourceEndedEarly` after
the images before it were yielded.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_bus.datasets import MASK_SUFFIX
from edge_bus.errors import SourceEndedEarly, SourceError
from edge_bus.imaging import cut_short_jpeg, opencv_path, opencv_settings_note, read_image, to_bgr
from edge_bus.sources._common import make_frame, natural_key
from edge_bus.sources.base import FrameSource, SourceInfo
from edge_bus.sources.dicom import (
    DICOM_SUFFIXES,
    DicomSource,
    acquisition_order,
    frames_and_fps,
    is_dicom_file,
    read_header,
)
from edge_bus.types import Frame

__all__ = ["IMAGE_SUFFIXES", "FolderSource", "list_images"]

IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
#: image files that may hold several pages, each a frame
_STACK_SUFFIXES = frozenset({".tif", ".tiff"})
#: a frame of one file: (pixels, pixel spacing or None, seconds into the file)
_FileFrame = tuple[np.ndarray, tuple[float, float] | None, float]
_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR  # any depth: a 16-bit image is scaled by its own range


def _is_image(path: Path) -> bool:
    name = path.name
    if name.startswith(".") or MASK_SUFFIX.search(path.stem):  # BUSI's masks (not Case_MASKED.png)
        return False
    if path.suffix.lower() in IMAGE_SUFFIXES | DICOM_SUFFIXES:
        return path.is_file() or path.is_symlink()  # a broken link is an image that can't be read, not skipped
    # a scanner's export names its DICOM files without an extension (IM000000, beside a DICOMDIR index that
    # holds no image) or by UID (1.2.840.113619...5): the DICM marker says what they are
    return name.upper() != "DICOMDIR" and path.is_file() and is_dicom_file(path)


def _is_dicom(path: Path) -> bool:
    """A file :func:`list_images` took is DICOM unless it has an image's suffix."""
    return path.suffix.lower() not in IMAGE_SUFFIXES


def list_images(folder: Path) -> list[Path]:
    """The playable images of ``folder`` (not recursive), naturally sorted, masks skipped."""
    return sorted((p for p in folder.iterdir() if _is_image(p)), key=lambda p: natural_key(p.name))


@dataclass(frozen=True)
class _Read:
    """A frame as the folder read it."""

    pixels: np.ndarray
    spacing: tuple[float, float] | None  # (row, col) mm, a DICOM's
    name: str  # the file's
    t_folder: float  # seconds into the folder, each file at its own timing
    first_of_file: bool
    decode_ms: float


def _read(path: Path, page: int | None = None) -> np.ndarray | None:
    """The image (or page ``page`` of a stack), BGR uint8: 16 bits are scaled by their own range (to_bgr),
    not cut to their top 8. None when it can't be decoded, or is a JPEG cut short."""
    if page is None:
        img = read_image(path, _FLAGS)
    else:  # only a name OpenCV takes has pages counted (_pages)
        try:
            ok, pages = cv2.imreadmulti(opencv_path(path) or "", start=page, count=1, flags=_FLAGS)
        except cv2.error:
            return None
        img = pages[0] if ok and pages else None
    return None if img is None else to_bgr(img)


def _pages(path: Path) -> int:
    """How many pages a TIFF holds (1 when it can't be told: it fails where it is played, and a name that
    is not UTF-8, which only :func:`~edge_bus.imaging.read_image` reads, plays its first page)."""
    text = opencv_path(path)
    try:
        return max(1, int(cv2.imcount(text))) if text is not None else 1
    except cv2.error:
        return 1


def _has_images(folder: Path) -> bool:
    try:
        return any(_is_image(p) for p in folder.iterdir())
    except OSError:
        return False


#: what a folder of clips holds instead (``--source`` takes one video file, not a folder of them)
VIDEO_SUFFIXES = frozenset({".avi", ".mp4", ".mov", ".m4v", ".mkv", ".wmv", ".mpg", ".mpeg", ".webm"})


def _no_images_message(folder: Path) -> str:
    subdirs = sorted((p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=natural_key)
    with_images = [d for d in subdirs if _has_images(folder / d)]
    if with_images:
        shown = ", ".join(with_images[:5]) + (", ..." if len(with_images) > 5 else "")
        return f"image folder '{folder}' has no images, only sub-folders ({shown}) — point --source at one of them"
    videos = sorted((p.name for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()),
                    key=natural_key)
    if videos:
        shown = ", ".join(videos[:3]) + (", ..." if len(videos) > 3 else "")
        return (f"'{folder}' holds {len(videos)} video file{'s' if len(videos) > 1 else ''} ({shown}), not images — "
                f"give one as --source, e.g. --source {folder / videos[0]}")
    suffixes = " ".join(sorted(IMAGE_SUFFIXES | DICOM_SUFFIXES))
    return (f"image folder '{folder}' has no images ({suffixes}, or DICOM files without a suffix; X_mask.png and "
            "X_mask_N.png files are skipped) — check the path")


class FolderSource(FrameSource):
    """Play the images of a folder (or a single image file) as frames (see the module doc)."""

    def __init__(self, path: str | Path, *, fps: float = 0.0) -> None:
        self._path = Path(path)
        if fps < 0:
            raise SourceError(f"image folder fps must be >= 0, got {fps} — pass a positive rate or 0 for none")
        if not self._path.exists():
            raise SourceError(f"cannot open image folder '{self._path}': not found — check the path")
        if self._path.is_dir():
            try:
                files = list_images(self._path)
            except OSError as exc:
                raise SourceError(
                    f"cannot list image folder '{self._path}': {exc.strerror or exc} — check its permissions"
                ) from None
            if not files:
                raise SourceError(_no_images_message(self._path))
        elif self._path.suffix.lower() in IMAGE_SUFFIXES:
            files = [self._path]
        else:
            raise SourceError(
                f"cannot open '{self._path}' as an image: not a folder or an image file "
                f"({' '.join(sorted(IMAGE_SUFFIXES))}) — check the path"
            )
        headers = {f: read_header(f) for f in files if _is_dicom(f)}
        if len(headers) == len(files):
            files = acquisition_order(files, [headers[f] for f in files])
        # (frames, fps) of each file, from the headers: a cine is a clip, a folder of single frames stills
        timing = [frames_and_fps(headers[f]) if f in headers
                  else (_pages(f), 0.0) if f.suffix.lower() in _STACK_SUFFIXES else (1, 0.0) for f in files]
        still = all(n == 1 for n, _ in timing)
        rates = {rate for _, rate in timing}
        self._files = files
        self._counts = [n for n, _ in timing]  # frames of each file (a stack's pages are counted once, here)
        self._rates = [rate for _, rate in timing]
        self._fps = float(fps)
        self._still = still
        self._index = 0  # frames yielded
        self._file_index = 0  # the file the next frame comes from
        self._file_frames: Generator[_FileFrame, None, None] | None = None
        self._offset = 0.0  # t_source where the file being played starts (clips; stills count frames)
        self._file_end = 0.0  # where the next file starts: the last frame's time plus one frame interval
        self._closed = False
        try:
            first = self._next_pixels()
        except SourceEndedEarly as exc:
            raise SourceError(str(exc)) from None
        if first is None:
            raise SourceError(f"cannot read '{files[0]}': it holds no frame — remove or replace it")
        self._pending: _Read | None = first
        name = self._path.name or str(self._path)
        self._info = SourceInfo(
            kind="folder", name=name, width=int(first.pixels.shape[1]), height=int(first.pixels.shape[0]),
            fps=self._fps or (rates.pop() if not still and len(rates) == 1 else 0.0), still=still,
            frame_count=sum(self._counts),
        )

    @property
    def info(self) -> SourceInfo:
        return self._info

    @property
    def files(self) -> tuple[Path, ...]:
        """The images that will be played, in order."""
        return tuple(self._files)

    def _frames_of(self, path: Path, k: int) -> Generator[_FileFrame, None, None]:
        """The frames of ``path``, file ``k``: (pixels, spacing, seconds into the file)."""
        if _is_dicom(path):
            dicom: DicomSource | None = None
            try:
                dicom = DicomSource(path)
                for frame in dicom:
                    yield frame.pixels, frame.pixel_spacing_mm, frame.t_source
            except SourceError as exc:
                raise SourceEndedEarly(f"{exc} ({k + 1} of {len(self._files)} files in '{self._path}'; "
                                       f"the {self._index} frames before it were read)") from None
            finally:
                if dicom is not None:
                    dicom.close()
            return
        pages = self._counts[k]
        for page in range(pages):
            img = _read(path, page if pages > 1 else None)
            if img is None:
                what = f"page {page + 1} of {pages} of image" if pages > 1 else "image"
                broken = ("a link to nothing" if path.is_symlink() and not path.exists()
                          else "a JPEG cut short (truncated)" if cut_short_jpeg(path)
                          else f"corrupt or not an image{opencv_settings_note()}")
                raise SourceEndedEarly(
                    f"cannot read {what} '{path.name}' ({k + 1} of {len(self._files)}) in '{self._path}': {broken} "
                    f"(the {self._index} frames before it were read) — remove or replace it"
                )
            yield img, None, float(page)

    def _next_pixels(self) -> _Read | None:
        """The next frame's pixels and what goes with them, or None after the last file."""
        while True:
            k = self._file_index
            if self._file_frames is None:
                if k >= len(self._files):
                    return None
                self._file_frames = self._frames_of(self._files[k], k)
                self._offset, first = self._file_end, True
            else:
                first = False
            start = time.perf_counter()
            try:
                pixels, spacing, t = next(self._file_frames)
            except StopIteration:
                self._file_frames = None
                self._file_index += 1
                continue
            except SourceEndedEarly:
                self.close()
                raise
            rate = self._rates[k]
            self._file_end = self._offset + t + (1.0 / rate if rate > 0 else 1.0)
            return _Read(pixels, spacing, self._files[k].name, self._offset + t, first,
                         (time.perf_counter() - start) * 1e3)

    def __next__(self) -> Frame:
        if self._closed:
            raise StopIteration
        item, self._pending = (self._pending, None) if self._pending is not None else (self._next_pixels(), None)
        if item is None:
            self.close()
            raise StopIteration
        i = self._index
        self._index += 1
        t = i / self._fps if self._fps else float(i) if self._still else item.t_folder
        # its own decode time: the first image is read before the pipeline times the source
        return make_frame(i, item.pixels, t, pixel_spacing_mm=item.spacing, file=item.name,
                          cut=item.first_of_file and i > 0, decode_ms=item.decode_ms)

    def close(self) -> None:
        self._closed = True
        frames, self._file_frames = self._file_frames, None
        if frames is not None:
            frames.close()
