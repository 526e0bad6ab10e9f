"""File helpers shared by the sinks: one-line :class:`OutputError` messages, atomic text writes, and
the space a run keeps back for its last writes (:class:`SpaceReserve`)."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from pathlib import Path

from edge_bus.errors import OutputError

__all__ = [
    "SpaceReserve",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_file",
    "check_report_paths",
    "discard_temp",
    "ensure_parent",
    "nearest_existing",
    "output_error",
    "unwritable_reason",
]

_FULL = {errno.ENOSPC, errno.EDQUOT}
_DENIED = {errno.EACCES, errno.EPERM}


def output_error(path: str | os.PathLike[str], exc: OSError, hint: str | None = None) -> OutputError:
    """An :class:`OutputError` with one line naming ``path`` and saying what to do (``hint``, or
    advice for an ``--out`` folder)."""
    name = os.fspath(path)
    if exc.errno in _FULL:
        detail = f" ({exc.strerror})" if exc.strerror and exc.strerror != os.strerror(exc.errno) else ""
        return OutputError(f"disk full writing {name}{detail} — " + (f"free space, or {hint}" if hint else
                                                                      "free space and re-run"))
    if exc.errno in _DENIED:
        return OutputError(f"can't write {name}: permission denied — {hint or 'choose a writable --out folder'}")
    if exc.errno == errno.EROFS:
        return OutputError(f"can't write {name}: read-only file system — {hint or 'choose a writable --out folder'}")
    if exc.errno == errno.ENOENT:
        return OutputError(f"can't write {name}: the folder does not exist or takes no files — "
                           f"{hint or 'create it or choose another --out'}")
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):  # creating a folder where a file already is
        return OutputError(f"can't write {name}: a file is in the way of a folder there — "
                           f"{hint or 'choose another path'}")
    if exc.errno == errno.EISDIR:
        return OutputError(f"can't write {name}: it is a folder — {hint or 'choose another file name'}")
    reason = exc.strerror or type(exc).__name__
    return OutputError(f"can't write {name}: {reason} — {hint or 'check the --out folder'}")


def free_bytes(folder: str | os.PathLike[str]) -> int | None:
    """Free space on ``folder``'s file system, or None when it can't be told (the writer will try)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def ensure_parent(path: str | os.PathLike[str], hint: str | None = None) -> Path:
    """Create ``path``'s parent folder if needed; :class:`OutputError` when that fails."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(p.parent, exc, hint) from None
    return p


def _refuse_non_file(target: Path, hint: str | None) -> Path:
    """``target``, unless a folder or a device is in its place (os.replace would swap it for a file)."""
    try:
        in_the_way = target.exists() and not target.is_file()
    except OSError as exc:  # a name too long for the file system, a loop of links
        raise output_error(target, exc, hint) from None
    if in_the_way:
        kind = "a folder" if target.is_dir() else "not a regular file"
        raise OutputError(f"can't write {target}: it is {kind} — {hint or 'choose another file name'}")
    return target


def nearest_existing(folder: Path) -> Path:
    """``folder``, or the nearest of its parents that exists (where the missing ones would be made; a
    file there is in their way). Raises OSError for a name too long or a loop of links."""
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder


def check_output_file(path: str | os.PathLike[str], hint: str | None = None) -> Path:
    """Fail now, not after minutes of work, when ``path`` can't be written: a folder or device is in
    the way, a file is where a folder must be made, or the folder it would be written in (or made in)
    can't be written. Nothing is created: a run stopped before it writes leaves no empty folder (the
    writer makes the folder, :func:`ensure_parent`)."""
    target = _refuse_non_file(Path(path), hint)
    try:
        folder = nearest_existing(target.parent)
        in_the_way = not folder.is_dir()
    except OSError as exc:  # a name too long for the file system, a loop of links
        raise output_error(target, exc, hint) from None
    if in_the_way:
        raise OutputError(f"can't write {target}: {folder} is a file, where a folder is needed — "
                          f"{hint or 'choose another path'}")
    why = unwritable_reason(folder)
    if why is not None:
        raise OutputError(f"can't write {target}: {why} ({folder}) — {hint or 'choose another folder'}")
    return target


def unwritable_reason(folder: Path) -> str | None:
    """Why nothing can be created in the existing ``folder``, or None when it can (writing a name in a
    folder needs both its write and its search permission)."""
    if os.access(folder, os.W_OK | os.X_OK):
        return None
    return "it is on a read-only file system" if _read_only(folder) else "no permission to write in it"


def check_report_paths(json_path: str | os.PathLike[str] | None, html_path: str | os.PathLike[str] | None,
                       hint: str | None = None) -> None:
    """:func:`check_output_file` for a command's ``--json`` and ``--html`` paths (either may be None), before
    its minutes of work; ``hint`` (default: "choose another --json path" or "... --html path"). The same
    file for both is refused: the HTML would overwrite the JSON; so is one inside the other (the folder
    made for one was in the way of the other, found only after the run). Both are refused before
    any folder is made."""
    if json_path is not None and html_path is not None:
        real_json, real_html = Path(os.path.realpath(json_path)), Path(os.path.realpath(html_path))
        if real_json == real_html:
            raise OutputError(f"--json and --html are the same file ({json_path}): the HTML would overwrite the JSON "
                              "— give each its own name")
        if real_json in real_html.parents or real_html in real_json.parents:
            raise OutputError(f"--json {json_path} and --html {html_path}: one is inside the other, and a file can't "
                              "be a folder too — give each its own name")
    for path, flag in ((json_path, "--json"), (html_path, "--html")):
        if path is not None:
            check_output_file(path, hint=hint or f"choose another {flag} path")


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows)
        return False


def discard_temp(path: Path) -> None:
    """Remove a temporary file left by a failed write, if it is there. Its own failure (EROFS: nothing
    was created on a read-only file system) is ignored: the write's error is the one to report."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8",
                      hint: str | None = None) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded with ``encoding``. A file name the locale could not
    decode (bytes that are not UTF-8, or any non-ASCII under ``LC_ALL=C PYTHONUTF8=0``) is written as its
    own bytes: a report naming its source failed in a UnicodeEncodeError traceback."""
    return atomic_write_bytes(path, text.encode(encoding, "surrogateescape"), hint)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, hint: str | None = None) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then ``os.replace`` it into place.

    A crash or a full disk never leaves a half-written ``path``: either the old file or the new
    one. The new file gets the usual umask permissions. Raises :class:`OutputError` (with ``hint``).
    """
    target = _refuse_non_file(ensure_parent(path, hint), hint)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as exc:
        discard_temp(tmp)
        raise output_error(target, exc, hint) from None
    return target


RESERVE_BYTES = 8_000_000
"""What a run holds in its --out folder (:class:`SpaceReserve`) for its last writes."""


class SpaceReserve:
    """A file of ``nbytes`` that a run holds in its ``--out`` folder and deletes before its last writes
    (the overlay video's index, latency.json, report.html). The sinks' free-space checks stop a run
    before a disk that fills gradually is full; this is for a disk filled at once by something else
    (another program's download, a ``dd``), when every write of the run fails and only space the run
    already holds can take those files. Allocated with ``posix_fallocate`` where the file system has it,
    else written with zeros (a compressing file system may then not hold the space). A run killed with
    SIGKILL leaves the file; the next run into the folder, or ``edge-bus report``, deletes it."""

    NAME = ".edge-bus-reserve"

    def __init__(self, folder: str | os.PathLike[str], nbytes: int = RESERVE_BYTES) -> None:
        self.path = Path(folder) / self.NAME
        self.nbytes = nbytes
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:
            raise output_error(self.path, exc) from None
        try:
            _allocate(fd, nbytes)
        except OSError as exc:
            os.close(fd)
            discard_temp(self.path)
            if exc.errno in _FULL:
                raise OutputError(f"disk full: edge-bus keeps {nbytes / 1e6:g} MB in {self.path.parent} for a run's "
                                  "last files (latency.json, report.html, the video's index) and could not — free "
                                  "space") from None
            raise output_error(self.path, exc) from None
        os.close(fd)

    def release(self) -> None:
        """Delete the file, giving its space back (idempotent)."""
        discard_temp(self.path)


def _allocate(fd: int, nbytes: int) -> None:
    try:
        os.posix_fallocate(fd, 0, nbytes)
        return
    except AttributeError:  # not on this platform
        pass
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    chunk = bytes(1 << 20)
    left = nbytes
    while left > 0:
        left -= os.write(fd, chunk[: min(left, len(chunk))])
    os.fsync(fd)
