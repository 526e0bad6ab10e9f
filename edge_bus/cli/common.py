"""What every CLI command shares: turning domain errors into one line and an exit code."""

from __future__ import annotations

import inspect
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from edge_bus.errors import EdgeBusError, Interrupted, Terminated, error_for_signal, stop_signals

T = TypeVar("T")

class _OutputConsole(Console):
    """A console that its stream closing or filling silences, instead of ending the command: a pipe read by
    ``head`` or ``true``, ``2>>log`` on a full disk. Rich exits 1 at once on a broken pipe (a stream run
    then ended before its first frame, its latency.json saying "end of source"; ``doctor | head -1`` exited
    1 on a passing machine), and a full disk raised an OSError traceback. What a command does, and its
    exit code, no longer depend on who reads its output."""

    def _check_buffer(self) -> None:
        try:
            super()._check_buffer()
        except OSError:  # ENOSPC, EIO (a BrokenPipeError comes to on_broken_pipe)
            self.on_broken_pipe()

    def on_broken_pipe(self) -> None:
        self.quiet = True
        del self._buffer[:]
        try:  # the interpreter's last flush of the stream, at exit, would fail again and say so
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.file.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # not a file with a descriptor (a test's capture)
            pass


err_console = _OutputConsole(stderr=True, highlight=False, soft_wrap=True)
console = _OutputConsole(highlight=False, soft_wrap=True)


_errors_said: list[str] = []  # every line fail() printed in this process


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on stderr (one line: a newline in it, from a path, is shown as ``\\n``) and
    return the Exit to raise."""
    message = message.replace("\r", "\\r").replace("\n", "\\n")
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True)
    _errors_said.append(message)
    return typer.Exit(code)


def errors_said() -> int:
    """How many one-line errors fail() has printed in this process."""
    return len(_errors_said)


def parse_capture_size(text: str | None) -> tuple[int | None, int | None]:
    """``--capture-size WxH`` → (width, height); (None, None) when not given; a usage error otherwise."""
    if not text:
        return None, None
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise fail(f"--capture-size must be WxH, e.g. 1280x720, got {text!r}", 2) from None
    return width, height


def run_or_exit(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Call one library function; an :class:`EdgeBusError` becomes a one-line error and its
    exit code, Ctrl-C becomes exit 130. Anything else is a bug and keeps its traceback."""
    try:
        return fn(*args, **kwargs)
    except Interrupted as exc:
        raise fail(str(exc) or "interrupted", exc.exit_code) from None
    except KeyboardInterrupt:
        raise fail("interrupted (Ctrl-C)", 130) from None
    except EdgeBusError as exc:
        raise fail(str(exc), exc.exit_code) from None


class _SigTerm(BaseException):
    """Raised by the SIGTERM (or SIGHUP) handler; a BaseException, so no ``except Exception`` on the way
    swallows or re-labels it (it became "ONNX Runtime inference failed: stopped by SIGTERM")."""

    def __init__(self, kind: type[Terminated]) -> None:
        super().__init__(kind.stopped_by)
        self.kind = kind


@contextmanager
def terminated_as_error() -> Iterator[None]:
    """While inside, SIGTERM (exit 143) and SIGHUP (the terminal closed, exit 129; not under ``nohup``)
    unwind the stack (``finally`` blocks and temporary folders clean up) and end in one line, instead
    of killing the process at once. (``stream`` handles signals itself, between frames.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: object) -> None:
        kind = error_for_signal(signum)
        raise _SigTerm(kind if issubclass(kind, Terminated) else Terminated)

    previous = {s: signal.signal(s, on_term) for s in stop_signals() if s != signal.SIGINT}
    try:
        yield
    except _SigTerm as exc:
        raise fail(exc.kind.stopped_by, exc.kind.exit_code) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def reflow_help(app: typer.Typer) -> typer.Typer:
    """Join the wrapped lines of each command's docstring into paragraphs (Typer's rich help keeps a
    docstring's line breaks, so 110-column source lines came out ragged in an 80-column terminal).
    Paragraphs stay apart; ``app``'s sub-apps are reflowed too."""
    for command in app.registered_commands:
        text = command.help or (command.callback.__doc__ if command.callback is not None else None)
        if text:
            command.help = "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(text).split("\n\n"))
    for group in app.registered_groups:
        if group.typer_instance is not None:
            reflow_help(group.typer_instance)
    return app
