"""The ``edge-bus`` console script. It is a light module, so that signals are handled from the
first moment: importing the command line (OpenCV, Typer, rich, numpy) takes about a second, and a
Ctrl-C or SIGTERM in that second printed a ``KeyboardInterrupt`` traceback or killed the process
without a word. Here both end in one ``error:`` line and exit 130 / 143, before any work started."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

__all__ = ["main"]


class _TermDuringStart(BaseException):
    """SIGTERM while the command line was still loading."""


def _is_cv_count(text: str) -> bool:
    """Whether OpenCV's own parser (``std::stoull`` on the whole text) takes ``text``: plain digits only."""
    return text.isascii() and text.isdigit() and len(text) <= 19


def main() -> None:
    """Load the command line, then run it with SIGTERM ending every command in one line and exit
    143 (``stream`` handles signals itself, between frames; the others unwind, cleaning up)."""
    def on_term(signum: int, frame: object) -> None:
        raise _TermDuringStart

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_term)
    # OpenCV's own log printed "[ERROR:0@1.9] global grfmt_png.cpp:297 readHeader ..." above the command's
    # one-line error for a corrupt image; the command says what went wrong itself. Set before OpenCV
    # loads; a value already set (to debug) is kept.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "FATAL")
    for stream in (sys.stdout, sys.stderr):  # an output that can't encode "→" (PYTHONIOENCODING=ascii, cp1252,
        with contextlib.suppress(AttributeError, ValueError):  # LC_ALL=C) failed the last line in a traceback
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    try:
        os.getcwd()
    except FileNotFoundError:  # every relative path (runs/, the report) failed later, in a traceback
        print("error: the current folder no longer exists (it was deleted or moved while this shell was in it) — "
              "cd to an existing folder", file=sys.stderr)
        raise SystemExit(2) from None
    threads = os.environ.get("OPENCV_FOR_THREADS_NUM")
    if threads is not None and not _is_cv_count(threads):  # OpenCV failed every resize with "cv2.error: stoull"
        print(f"error: OPENCV_FOR_THREADS_NUM={threads!r} is not a whole number >= 0 (OpenCV reads it on its first "
              "parallel call) — unset it, or set e.g. OPENCV_FOR_THREADS_NUM=2", file=sys.stderr)
        raise SystemExit(2)
    try:
        from edge_bus.cli import main as cli_main
        from edge_bus.cli.common import terminated_as_error

        with terminated_as_error():  # replaces on_term: from here SIGTERM unwinds the command
            cli_main()
    except KeyboardInterrupt:  # only while loading: every command handles Ctrl-C itself
        print("error: interrupted (Ctrl-C) before the command started; nothing was written", file=sys.stderr)
        raise SystemExit(130) from None
    except _TermDuringStart:
        print("error: stopped by SIGTERM before the command started; nothing was written", file=sys.stderr)
        raise SystemExit(143) from None
    except BaseException as exc:
        import typer  # loaded by now: only the command line raises its Exit

        if isinstance(exc, typer.Exit):  # terminated_as_error printed its one line; its exit code (143)
            raise SystemExit(exc.exit_code) from None
        raise
