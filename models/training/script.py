"""How the training scripts end on a user error: one ``error:`` line and the error's exit code,
like the ``edge-bus`` commands, instead of a traceback (a wrong ``--data`` folder, a missing
checkpoint). Bugs keep their traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from edge_bus.errors import EdgeBusError
from edge_bus.sinks.files import atomic_write_text

__all__ = ["run_script", "section_parser", "write_section"]


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


def section_parser(doc: str | None, data_help: str = "the shared data folder",
                   models: bool = False) -> argparse.ArgumentParser:
    """The command line of a script that writes one section of the model card: ``--data`` and ``--out``,
    and with ``models`` the shipped models it scores (``--models``)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=Path("../shared/data"), type=Path, help=data_help)
    if models:
        p.add_argument("--models", nargs="+", default=["emt_net", "hgm_net"], help="the models to score")
    p.add_argument("--out", default=None, type=Path,
                   help="write the markdown here (written whole at the end); default stdout")
    return p


def write_section(text: str, out: Path | None) -> None:
    """``text`` to ``out`` (a failed run leaves the previous file as it was; a shell redirect had emptied
    it first), or to stdout."""
    if out is not None:
        atomic_write_text(out, text)
    else:
        sys.stdout.write(text)
