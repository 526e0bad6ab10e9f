"""``edge-bus report``: a run's report.html again, from its frames.jsonl."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from edge_bus.cli.common import console, run_or_exit
from edge_bus.recover import rebuild_report


def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="The folder a stream wrote (its --out), holding frames.jsonl.",
                                            show_default=False)],
    model: Annotated[str | None, typer.Option(
        help="For a run that left no latency.json: the model it ran (name, folder or manifest), whose malignancy "
        "threshold the clip verdict uses. A run's own latency.json names it otherwise. \\[default: emt_net]",
        show_default=False)] = None,
    operating_point: Annotated[str | None, typer.Option(
        "--operating-point", "-p", help="For a run that left no latency.json: the operating point it ran. "
        "\\[default: the model's]", show_default=False)] = None,
    lesion_threshold: Annotated[float | None, typer.Option(
        help="For a run that left no latency.json and was given --lesion-threshold: that threshold, so the report "
        "states the one its frames' lesion flags were set with. \\[default: the model's]", show_default=False)] = None,
) -> None:
    """Write a run's report.html (and latency.json's numbers, if the run did not finish it) again from its
    frames.jsonl.

    For a run killed outright (kill -9, the OOM killer, a power cut), which flushed frames.jsonl frame by
    frame but never wrote report.html, and left only the latency.json it started with (its machine, model,
    thresholds and source, which are kept); a torn last line is skipped. A finished run keeps its
    latency.json and gets its report drawn by this version (lesion episodes included). --model,
    --operating-point and --lesion-threshold are for a folder with no latency.json at all.
    """
    result = run_or_exit(rebuild_report, run_dir, model=model, operating_point=operating_point,
                         lesion_threshold=lesion_threshold)
    console.print(escape(result.one_line()))
