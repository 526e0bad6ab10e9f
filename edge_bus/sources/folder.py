"""A folder of still images (or one image file), in natural order.

Frames are BGR uint8 HxWx3 (grayscale files are expanded to three channels) and keep each
file's own size: ``info`` reports the first image's. ``still=True``: the images are independent,
so the pipeline turns temporal smoothing off. ``t_source`` is ``index / fps``, or one nominal
second per image when no ``fps`` is given.

Files are taken in natural order (``benign (2).png`` before ``benign (10).png``); mask files
(``*_mask*``, as in BUSI's class folders) and hidden files are skipped, so a BUSI class folder
can be played directly. DICOM files (``.dcm``, ``.dicom``: a scanner's study export) are played
too, every frame of each, with their pixel spacing (so ``lesion_mm`` is filled in); a folder of
DICOM files alone plays in acquisition order (series, then InstanceNumber) when every file has one. An image that
can't be decoded mid-folder raises :class:`~edge_bus.errors.SourceEndedEarly` after the images
before it were yielded.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import NoReturn

import cv2
import numpy as np

from edge_bus.errors import SourceEndedEarly, SourceError
from edge_bus.imaging import to_bgr
from edge_bus.sources._common import make_frame, natural_key
from edge_bus.sources.base import FrameSource, SourceInfo
from edge_bus.sources.dicom import DICOM_SUFFIXES, DicomSource, acquisition_order
from edge_bus.types import Frame

__all__ = ["IMAGE_SUFFIXES", "FolderSource", "list_images"]

IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


def _is_image(path: Path) -> bool:
    name = path.name
    return (
        path.suffix.lower() in IMAGE_SUFFIXES | DICOM_SUFFIXES
        and not name.startswith(".")
        and not fnmatch.fnmatch(name.lower(), "*_mask*")
        and (path.is_file() or path.is_symlink())  # a broken link is an image that can't be read, not skipped
    )


def list_images(folder: Path) -> list[Path]:
    """The playable images of ``folder`` (not recursive), naturally sorted, masks skipped."""
    return sorted((p for p in folder.iterdir() if _is_image(p)), key=lambda p: natural_key(p.name))


def _read(path: Path) -> np.ndarray | None:
    try:
        # any depth: a 16-bit image is scaled by its own range (to_bgr), not cut to its top 8 bits
        img = cv2.imread(str(path), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    except cv2.error:
        return None
    return None if img is None else to_bgr(img)


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
    return f"image folder '{folder}' has no images ({suffixes}; *_mask* files are skipped) — check the path"


class FolderSource(FrameSource):
    """Play the images of a folder (or a single image file) as frames."""

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
            if all(f.suffix.lower() in DICOM_SUFFIXES for f in files):
                files = acquisition_order(files)
        elif self._path.suffix.lower() in IMAGE_SUFFIXES:
            files = [self._path]
        else:
            raise SourceError(
                f"cannot open '{self._path}' as an image: not a folder or an image file "
                f"({' '.join(sorted(IMAGE_SUFFIXES))}) — check the path"
            )
        self._files = files
        self._fps = float(fps)
        self._index = 0  # frames yielded
        self._file_index = 0  # the file the next frame comes from
        self._dicom: DicomSource | None = None  # the DICOM file being played
        self._closed = False
        try:
            first = self._next_pixels()
        except SourceEndedEarly as exc:
            raise SourceError(str(exc)) from None
        if first is None:
            raise SourceError(f"cannot read '{files[0]}': it holds no frame — remove or replace it")
        self._pending: tuple[np.ndarray, tuple[float, float] | None, str] | None = first
        name = self._path.name or str(self._path)
        self._info = SourceInfo(
            kind="folder", name=name, width=int(first[0].shape[1]), height=int(first[0].shape[0]),
            # a DICOM file may hold many frames: the count is known only for plain images
            fps=self._fps, still=True,
            frame_count=None if any(f.suffix.lower() in DICOM_SUFFIXES for f in files) else len(files),
        )

    @property
    def info(self) -> SourceInfo:
        return self._info

    @property
    def files(self) -> tuple[Path, ...]:
        """The images that will be played, in order."""
        return tuple(self._files)

    def _next_pixels(self) -> tuple[np.ndarray, tuple[float, float] | None, str] | None:
        """(pixels, spacing, file name) of the next frame, or None after the last file."""
        while True:
            if self._dicom is not None:
                try:
                    frame = next(self._dicom)
                except StopIteration:
                    self._dicom = None
                    continue
                except SourceError as exc:
                    self._fail_dicom(exc)
                return frame.pixels, frame.pixel_spacing_mm, self._dicom.path.name
            k = self._file_index
            if k >= len(self._files):
                return None
            path = self._files[k]
            self._file_index += 1
            if path.suffix.lower() in DICOM_SUFFIXES:
                try:
                    self._dicom = DicomSource(path)
                except SourceError as exc:
                    self._fail_dicom(exc)
                continue
            img = _read(path)
            if img is None:
                self.close()
                raise SourceEndedEarly(
                    f"cannot read image '{path.name}' ({k + 1} of {len(self._files)}) in '{self._path}': "
                    f"{'a link to nothing' if path.is_symlink() and not path.exists() else 'corrupt or not an image'} "
                    f"(the {self._index} frames before it were read) — remove or replace it"
                )
            return img, None, path.name

    def _fail_dicom(self, exc: SourceError) -> NoReturn:
        k = self._file_index
        self.close()
        raise SourceEndedEarly(
            f"{exc} ({k} of {len(self._files)} files in '{self._path}'; the {self._index} frames before it were read)"
        ) from None

    def __next__(self) -> Frame:
        if self._closed:
            raise StopIteration
        item, self._pending = (self._pending, None) if self._pending is not None else (self._next_pixels(), None)
        if item is None:
            self.close()
            raise StopIteration
        img, spacing, name = item
        i = self._index
        self._index += 1
        t = i / self._fps if self._fps else float(i)
        return make_frame(i, img, t, pixel_spacing_mm=spacing, file=name)

    def close(self) -> None:
        self._closed = True
        self._pending = None
        dicom, self._dicom = self._dicom, None
        if dicom is not None:
            dicom.close()
