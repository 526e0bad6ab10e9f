"""The edge-bus exception tree.

Every error a user can cause derives from :class:`EdgeBusError`; the CLI prints its message on
one line and exits non-zero (no traceback). Anything else is a bug.

::

    EdgeBusError
    ├── ConfigError        bad option, config file value or settings object (also a ValueError)
    ├── DataError          dataset folder / file unreadable or in an unknown layout
    ├── SourceError        video, folder, capture device or DICOM can't be opened or read
    │   └── SourceEndedEarly   a file stream broke off mid-way (corrupt or truncated frame)
    ├── ModelError         unknown model name, missing file, sha256 or manifest mismatch
    ├── EngineError        the inference runtime refused the model or the device
    ├── OutputError        --out not writable, or the disk filled up
    ├── BridgeError        serial link to the controller board failed (see firmware_bridge)
    └── Interrupted        Ctrl-C (exit 130); outputs were flushed
        └── Terminated     SIGTERM (exit 143); outputs were flushed
            └── HungUp     SIGHUP, the terminal or SSH session closed (exit 129); outputs were flushed
"""

from __future__ import annotations

import signal


class EdgeBusError(Exception):
    """Base of every user-facing error; ``str(err)`` is a one-line message that says what to do."""

    exit_code = 1


class ConfigError(EdgeBusError, ValueError):
    """An option, config-file value or settings object (``StreamConfig``, ``ROI``, ``OverlayStyle``)
    is invalid. It is also a :class:`ValueError`, which those objects raised before."""

    exit_code = 2


class DataError(EdgeBusError):
    """A dataset folder or file is missing, unreadable or in an unknown layout."""


class SourceError(EdgeBusError):
    """A frame source can't be opened or read."""

    exit_code = 3


class SourceEndedEarly(SourceError):
    """A file source broke off mid-stream (corrupt or truncated data)."""


class ModelError(EdgeBusError):
    """A model can't be found, or its files don't match the manifest."""

    exit_code = 4


class EngineError(EdgeBusError):
    """The inference runtime refused the model, the device or the input."""

    exit_code = 4


class OutputError(EdgeBusError):
    """An output folder or file can't be written (permissions, full disk)."""

    exit_code = 5


class BridgeError(EdgeBusError):
    """The serial link to the controller board failed."""

    exit_code = 6


class Interrupted(EdgeBusError):
    """The run was stopped by the user (Ctrl-C); outputs were flushed."""

    exit_code = 130
    stopped_by = "interrupted (Ctrl-C)"  #: the start of its message


class Terminated(Interrupted):
    """The run was stopped by SIGTERM (``timeout``, ``systemctl stop``, ``docker stop``); outputs were flushed."""

    exit_code = 143
    stopped_by = "stopped by SIGTERM"


class HungUp(Terminated):
    """The run was stopped by SIGHUP: the terminal or SSH session it ran in closed; outputs were flushed."""

    exit_code = 129
    stopped_by = "stopped by SIGHUP (the terminal or SSH session closed; run it under nohup or tmux to keep it going)"


def stop_signals() -> tuple[int, ...]:
    """The signals that end a run cleanly (:class:`Interrupted` and its kinds): SIGINT, SIGTERM and, where
    it exists, SIGHUP, less any that this process was started ignoring: ``nohup`` ignores SIGHUP so that
    a run outlives its terminal, and a handler installed over that would undo it."""
    wanted = (signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else []))
    return tuple(s for s in wanted if signal.getsignal(s) is not signal.SIG_IGN)


def error_for_signal(signum: int | None) -> type[Interrupted]:
    """The error a run stopped by ``signum`` ends in: :class:`Terminated` for SIGTERM, :class:`HungUp`
    for SIGHUP, else :class:`Interrupted` (Ctrl-C)."""
    if signum == signal.SIGTERM:
        return Terminated
    if signum is not None and signum == getattr(signal, "SIGHUP", None):
        return HungUp
    return Interrupted


def interrupted_saying(exc: Interrupted, what: str) -> Interrupted:
    """The same kind of interruption (Ctrl-C, SIGTERM or SIGHUP, same exit code), its message saying
    ``what`` became of the outputs: for a run whose folder was temporary, "outputs in /tmp/... cover the
    N frames" would name a folder already deleted."""
    return type(exc)(f"{exc.stopped_by}: {what}")
