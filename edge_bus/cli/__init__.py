"""The ``edge-bus`` command line: thin Typer commands that parse options and call one library function."""

from __future__ import annotations

import typer

from edge_bus import __version__
from edge_bus.cli.bench import bench_cmd
from edge_bus.cli.common import errors_said, fail, reflow_help
from edge_bus.cli.device import app as device_app
from edge_bus.cli.doctor import doctor_cmd
from edge_bus.cli.evaluate import eval_cmd
from edge_bus.cli.models import app as models_app
from edge_bus.cli.report import report_cmd
from edge_bus.cli.stream import stream

app = typer.Typer(
    name="edge-bus",
    help="Real-time breast-ultrasound inference: lesion mask + normal/benign/malignant per frame, "
    "OpenVINO INT8, overlays, per-frame logs and latency reports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("stream")(stream)
app.command("eval")(eval_cmd)
app.command("bench")(bench_cmd)
app.command("doctor")(doctor_cmd)
app.command("report")(report_cmd)
app.add_typer(models_app, name="models")
app.add_typer(device_app, name="device")
reflow_help(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edge-bus {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """edge-bus: stream, report, eval, models, device, bench, doctor."""


def main() -> None:
    """The console script: like ``app()``, but a bad option or argument is one ``error:`` line (Typer
    draws it in a box, with the usage, over several lines) and the exit code is the same (2)."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    said = errors_said()
    try:
        code = app(standalone_mode=False)
    except typer.Abort:  # click's name for a Ctrl-C that reached it (commands that don't turn it into a result)
        raise SystemExit(fail("interrupted (Ctrl-C)", 130).exit_code) from None
    except typer.TyperException as exc:  # Typer's (vendored click's) usage errors: a bad option or value
        raise SystemExit(_usage_error(exc)) from None
    if code == 130 and errors_said() == said:
        # Typer turns a Ctrl-C outside a command's own handling (while it parses, or imports the
        # runtime) into a silent exit 130: say what happened
        fail("interrupted (Ctrl-C)")
    raise SystemExit(code if isinstance(code, int) else 0)


def _usage_error(exc: typer.TyperException) -> int:
    """Print a command-line usage error as one line; its exit code."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # `edge-bus` alone: the help was shown, as it should be
        return exc.exit_code
    ctx = getattr(exc, "ctx", None)
    see = f" (see {ctx.command_path} --help)" if ctx is not None else ""
    return fail(" ".join(exc.format_message().split()) + see, exc.exit_code).exit_code
