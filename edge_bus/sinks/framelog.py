"""frames.jsonl: one JSON object per processed frame, one write per line.

Each line goes to the OS in a single unbuffered write, so a crash of this process leaves only
complete lines. When a write fails (full disk), the partial line is cut off again before
:class:`OutputError` is raised, so the file stays valid JSONL up to the last good frame.
The log also stops itself (the same error) while ``reserve_bytes`` are still free, so that the
run's latency.json and report.html can be written after it.
"""

from __future__ import annotations

import errno
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO, NoReturn

from edge_bus.errors import OutputError
from edge_bus.sinks.files import ensure_parent, free_bytes, output_error
from edge_bus.types import FrameRecord

__all__ = ["FrameLog", "dumps_line"]


def _finite(obj: object) -> object:
    """``obj`` with NaN/inf floats replaced by ``None`` (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def dumps_line(obj: Mapping[str, object]) -> bytes:
    """One compact JSON line (UTF-8, ``\\n``-terminated); NaN/inf become ``null``."""
    try:
        text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(obj), separators=(",", ":"), allow_nan=False)
    return (text + "\n").encode("utf-8")


LOG_RESERVE_BYTES = 4_000_000
"""The frame log stops while this much is still free, so latency.json and report.html fit after it."""


class FrameLog:
    """Appends :class:`FrameRecord` lines to ``path`` (created, or truncated unless ``append``).

    Use as a context manager or call :meth:`close`; both are idempotent. Raises :class:`OutputError`.
    """

    def __init__(self, path: str | os.PathLike[str], *, append: bool = False, reserve_bytes: int = LOG_RESERVE_BYTES,
                 check_every: int = 30) -> None:
        self.path = ensure_parent(path)
        self.lines = 0
        self._reserve = reserve_bytes
        self._check_every = max(1, check_every)
        self._error: OutputError | None = None
        free = free_bytes(self.path.parent) if reserve_bytes else None
        if free is not None and free < reserve_bytes:  # refused before the file is made
            why = f"{free / 1e6:.1f} MB free; edge-bus keeps {reserve_bytes / 1e6:g} MB for latency.json, report.html"
            raise output_error(self.path, OSError(errno.ENOSPC, why))
        try:
            self._fh: BinaryIO | None = open(self.path, "ab" if append else "wb", buffering=0)  # noqa: SIM115
            self._good = self._fh.seek(0, os.SEEK_END)
        except OSError as exc:
            raise output_error(self.path, exc) from None

    @property
    def closed(self) -> bool:
        return self._fh is None

    def write(self, record: FrameRecord) -> None:
        """Append one frame's line (``record.to_json()``)."""
        self.write_obj(record.to_json())

    def write_obj(self, obj: Mapping[str, object]) -> None:
        """Append any JSON-able mapping as one line."""
        if self._error is not None:
            raise self._error
        if self._fh is None:
            raise ValueError(f"write to a closed FrameLog ({self.path})")
        if self.lines and self.lines % self._check_every == 0:
            self._check_still_there()
            if self._reserve:
                self._check_space()  # before writing: a frame whose line is refused is not in the log
        line = dumps_line(obj)
        view = memoryview(line)
        try:
            while view:
                n = self._fh.write(view)
                if not n:  # a regular file never does this; don't spin if something odd does
                    raise OSError(errno.EIO, "write made no progress")
                view = view[n:]
        except OSError as exc:
            self._fail(exc)
        self._good += len(line)
        self.lines += 1

    def _check_still_there(self) -> None:
        """Writes to a file deleted under it (its folder removed mid-run) succeed and keep nothing."""
        assert self._fh is not None
        try:
            links = os.fstat(self._fh.fileno()).st_nlink
        except OSError as exc:
            self._fail(exc)
        if links == 0:
            self._fail(None, OutputError(f"{self.path} was deleted during the run (or its folder was): what it "
                                         "held is gone — keep --out in place while a run writes to it"))

    def _check_space(self) -> None:
        free = free_bytes(Path(self.path).parent)
        if free is not None and free < self._reserve:
            self._fail(OSError(errno.ENOSPC, f"stopped with {free / 1e6:.1f} MB free, kept for latency.json and "
                                             "report.html"))

    def _fail(self, exc: OSError | None, error: OutputError | None = None) -> NoReturn:
        """Cut off the partial line, close, remember and raise ``error`` (or one made from ``exc``)."""
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                os.ftruncate(fh.fileno(), self._good)
            except OSError:
                pass
            try:
                fh.close()
            except OSError:
                pass
        self._error = error or output_error(self.path, exc or OSError(errno.EIO, "write failed"))
        raise self._error from None

    def close(self) -> None:
        if self._fh is None:
            return
        # deleted after the last periodic check (a short run, or the last frames): the run must not
        # report a log it no longer has
        self._check_still_there()
        fh, self._fh = self._fh, None
        try:
            os.fsync(fh.fileno())
            fh.close()
        except OSError as exc:
            raise output_error(self.path, exc) from None

    def __enter__(self) -> FrameLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FrameLog({str(Path(self.path))!r}, lines={self.lines}, closed={self.closed})"
