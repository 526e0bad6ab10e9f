"""Writing a model folder (``models quantize``, ``models calibrate``) so that nothing ever reads half of one.

The files are built in a hidden staging folder beside ``--out`` (hidden: the zoo skips folders whose
name starts with "."), and put in place by renaming the folder: a failure, Ctrl-C or a kill leaves
the model that was there as it was, or the new one whole (a kill in the microseconds between the
two renames leaves the old one in a hidden ``.NAME.old-*`` beside it). A folder is replaced only when
it holds nothing but a model's own files. Files were once moved in one by one, so a
failure half-way left a mix of old and new files that no longer matched the manifest.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PureWindowsPath

from edge_bus.errors import Interrupted, OutputError, interrupted_saying
from edge_bus.sinks.files import nearest_existing, unwritable_reason
from edge_bus.zoo import MANIFEST

__all__ = ["check_model_out", "staged_model_folder"]


def check_model_out(out_dir: Path, overwrite: bool) -> None:
    """Before minutes of work: ``out_dir`` can take a model. It is new, empty, or (with ``overwrite``)
    a model folder holding nothing but its model's files; anything else there is never deleted."""
    try:
        here = Path.cwd().resolve()
        if out_dir.resolve() == here or out_dir.resolve() in here.parents:
            # built beside it and renamed onto it: "." named the staging folder inside itself, and failed
            # after all the work with "already holds a model"
            raise OutputError(f"--out {out_dir} is the folder you are in (or holds it): the model replaces its "
                              "folder as a whole — give a new folder, such as --out my_model")
        if out_dir.exists() and not out_dir.is_dir():
            raise OutputError(f"cannot write the model to {out_dir}: it is a file — pass a folder")
        # the model is built beside out_dir: a read-only one was found only after minutes of converting
        parent = nearest_existing(out_dir.resolve().parent)
        why = unwritable_reason(parent) if parent.is_dir() else None
        if why is not None:
            raise OutputError(f"cannot write the model to {out_dir}: {why} ({parent}) — give --out a folder you can "
                              "write in")
        if not out_dir.is_dir() or not any(out_dir.iterdir()):
            return
        if not (out_dir / MANIFEST).is_file():
            raise OutputError(f"{out_dir} is not empty and holds no model: give a new or empty folder for the model "
                              "(it would be replaced as a whole)")
        others = sorted(p.name for p in out_dir.iterdir() if p.name not in _model_files(out_dir))
    except OSError as exc:
        raise OutputError(f"cannot write the model to {out_dir}: {exc.strerror or exc}") from None
    if not overwrite:
        raise OutputError(f"{out_dir} already holds a model: pass --overwrite to replace it, or give a new folder")
    if others:  # replaced as a whole, they would be deleted with it
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise OutputError(f"{out_dir} holds files that are not its model's ({shown}): move them out first, or give "
                          "a new folder — the folder is replaced as a whole")


def _model_files(folder: Path) -> set[str]:
    """The names a model folder's manifest lists, with the manifest itself (an unreadable one lists none)."""
    try:
        files = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("files", {})
    except (OSError, ValueError, AttributeError, RecursionError):
        files = {}
    # a file in a subfolder ("onnx/model_fp32.onnx") makes its top folder the model's
    names = {PureWindowsPath(str(f)).parts[0] for f in files.values() if str(f)} if isinstance(files, dict) else set()
    return names | {MANIFEST}


@contextmanager
def staged_model_folder(out_dir: Path, overwrite: bool) -> Iterator[Path]:
    """A new hidden folder beside ``out_dir`` to build the model in; when the block ends without an
    error it becomes ``out_dir``, replacing the model there only with ``overwrite`` (a model another run
    wrote there meanwhile was replaced silently, both runs saying they wrote it). Removed in every case.
    An ``out_dir`` that is a symbolic link stands for the folder it points to (the link was replaced by
    a folder, the model it pointed to left as it was). Errors name ``out_dir``, not the staging folder."""
    # absolute, ".." collapsed: "m/onnx/.." built its staging folder inside m/onnx, and the rename onto m
    # failed after all the work
    out_dir = out_dir.resolve() if out_dir.is_symlink() else Path(os.path.abspath(out_dir))
    parent = out_dir.parent
    _remove_stale_partials(parent, out_dir.name)
    staging = parent / f".{out_dir.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()  # not mkdtemp: its 0700 would become the model folder's mode
    except OSError as exc:
        raise OutputError(f"cannot write to {parent}: {exc.strerror or exc}") from None
    try:
        yield staging
        _replace_folder(staging, out_dir, overwrite)
    except Interrupted as exc:
        raise interrupted_saying(exc, f"nothing was written; {out_dir} is as it was") from None
    except OutputError as exc:  # "no space left" while writing the model named the hidden staging folder
        if str(staging) not in str(exc):
            raise
        raise OutputError(str(exc).replace(str(staging), str(out_dir))) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_stale_partials(parent: Path, name: str) -> None:
    """Remove the hidden ``.NAME.partial-PID-*`` folders of runs that were killed (their process is
    gone): each held a half-built model, up to the size of one, and a kill skipped its clean-up."""
    for folder in parent.glob(f".{glob.escape(name)}.partial-*"):
        pid = folder.name.rsplit(".partial-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by someone else (EPERM), or the check can't be made: keep its folder
        return True
    return True


def _replace_folder(staging: Path, out_dir: Path, overwrite: bool) -> None:
    """``staging`` renamed to ``out_dir``. With ``overwrite``, a folder already there is renamed aside
    first, put back if the second rename fails or is interrupted (Ctrl-C), and removed after it succeeds;
    only a kill between the two renames (microseconds) leaves the old model in the hidden
    ``.NAME.old-*``. Without it, the one rename fails on a folder that is not empty."""
    if not overwrite:
        try:
            if out_dir.is_dir() and not any(out_dir.iterdir()):
                out_dir.rmdir()  # Windows renames onto nothing only
            os.rename(staging, out_dir)  # fails on a folder that holds something: never onto a model
        except OSError as exc:
            if out_dir.is_dir() and any(out_dir.iterdir()):
                raise OutputError(f"{out_dir} already holds a model (another run wrote it meanwhile?): pass "
                                  "--overwrite to replace it, or give a new folder") from None
            raise OutputError(f"cannot write to {out_dir}: {exc.strerror or exc}; it is as it was") from None
        return
    aside = out_dir.parent / f".{out_dir.name}.old-{secrets.token_hex(4)}"
    moved = emptied = False
    try:
        if out_dir.is_dir() and any(out_dir.iterdir()):
            os.replace(out_dir, aside)
            moved = True
        elif out_dir.is_dir():
            out_dir.rmdir()
            emptied = True
        os.replace(staging, out_dir)
    except BaseException as exc:
        if not out_dir.exists():
            if moved:
                os.replace(aside, out_dir)
            elif emptied:
                out_dir.mkdir()
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write to {out_dir}: {exc.strerror or exc}; it is as it was") from None
        raise
    shutil.rmtree(aside, ignore_errors=True)  # a file that can't be deleted stays in a hidden folder
