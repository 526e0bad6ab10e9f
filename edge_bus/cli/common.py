"""What every CLI command shares: turning domain errors into one line and an exit code."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from edge_bus.errors import EdgeBusError, Interrupted

T = TypeVar("T")

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
console = Console(highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on stderr (one line) and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True)
    return typer.Exit(code)


def run_or_exit(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Call one library function; an :class:`EdgeBusError` becomes a one-line error and its
    exit code, Ctrl-C becomes exit 130. Anything else is a bug and keeps its traceback."""
    try:
        return fn(*args, **kwargs)
    except Interrupted as exc:
        raise fail(str(exc) or "interrupted", exc.exit_code) from None
    except KeyboardInterrupt:
        raise fail("interrupted (Ctrl-C); outputs written so far were flushed", 130) from None
    except EdgeBusError as exc:
        raise fail(str(exc), exc.exit_code) from None
