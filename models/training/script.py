"""How the training scripts end on a user error: one ``error:`` line and the error's exit code,
like the ``edge-bus`` commands, instead of a traceback (a wrong ``--data`` folder, a missing
checkpoint). Bugs keep their traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

from edge_bus.errors import EdgeBusError

__all__ = ["run_script"]


def run_script(main: Callable[[], object]) -> None:
    """Run a script's ``main``; an :class:`EdgeBusError` exits with one line, Ctrl-C with 130."""
    try:
        main()
    except EdgeBusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C)", file=sys.stderr)
        raise SystemExit(130) from None
