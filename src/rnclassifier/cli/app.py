"""The command line: parse arguments, call one function, map errors to exit codes.

Exit status: 0 success; 2 bad input (one line per problem, naming the file, row or column; no
traceback unless --debug); 1 internal error; 130 interrupted. Nothing here does science: each
command (one module each, beside this one) calls one function of the package, imported when
the command runs, so that `--help` and `check` do not pay for xgboost, shap, mlflow or dask.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import click

from rnclassifier.cli.check import check
from rnclassifier.cli.demo import demo
from rnclassifier.cli.evaluate import evaluate
from rnclassifier.cli.extract import extract
from rnclassifier.cli.score import score
from rnclassifier.cli.serve import serve
from rnclassifier.cli.synth import synth
from rnclassifier.cli.train import train
from rnclassifier.cli.validate import validate
from rnclassifier.errors import InputError

logger = logging.getLogger("rnclassifier")

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

INTENDED_USE = (
    "Research use. The model estimates P(tumour | an enlarging post-SRS lesion selected for "
    "resection) at the training cohort's prevalence; it is not a diagnosis."
)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=INTENDED_USE,
)
@click.version_option(package_name="rnclassifier", prog_name="rnclassifier")
@click.option("--debug", is_flag=True, help="Show tracebacks for every error.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug logs).")
def app(debug: bool, verbose: int) -> None:
    """Tell tumour progression from radiation necrosis in brain metastases that grow after SRS.

    Train on a pathology-confirmed cohort, score a new follow-up MRI, or validate a frozen model
    on another institution's cohort. `rnclassifier demo` runs everything on a synthetic cohort.
    """
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    # The level goes on the handler too: libraries that set their own loggers' levels (pyradiomics
    # logs at INFO) must not reach the terminal below the chosen level.
    handler.setLevel(level)
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(handler)
    root.setLevel(level)


for command in (check, synth, extract, train, evaluate, validate, score, serve, demo):
    app.add_command(command)


#: Set by a SIGINT or SIGTERM: whatever exception then ends the command is an interruption.
_signalled: list[int] = []


def _terminate_as_interrupt() -> dict[int, Any]:
    """`kill` (SIGTERM, as sent by job schedulers and `timeout`) unwinds like Ctrl-C: partial
    outputs are removed, MLflow runs are closed as failed, the exit status is 130.

    The KeyboardInterrupt may surface wrapped in another exception when it lands inside a
    library's callback (xgboost turns it into an XGBoostError), hence the flag."""
    import signal
    import threading

    def interrupt(signum: int, frame: Any) -> None:
        _signalled.append(signum)
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        return {}
    _signalled.clear()
    return {number: signal.signal(number, interrupt) for number in (signal.SIGTERM, signal.SIGINT)}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rnclassifier` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    previous = _terminate_as_interrupt()
    try:
        return _run(args, debug)
    finally:
        import signal

        for number, handler in previous.items():
            signal.signal(number, handler)


def _run(args: list[str], debug: bool) -> int:
    try:
        status = app.main(args=args, prog_name="rnclassifier", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:  # bad flags: click's message, on one line
        where = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            where = f"{exc.ctx.command_path}: "
        hint = " (see --help)" if isinstance(exc, click.UsageError) else ""
        click.echo(f"error: {where}{exc.format_message()}{hint}", err=True)
        return EXIT_BAD_INPUT
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except InputError as exc:
        if debug:
            logger.exception("bad input")
        for line in str(exc).splitlines():
            click.echo(f"error: {line}", err=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if _signalled:
            click.echo("interrupted", err=True)
            return EXIT_INTERRUPTED
        if debug:
            logger.exception("internal error")
        else:
            click.echo(
                f"internal error: {type(exc).__name__}: {exc} (run with --debug for details; "
                "please report it)",
                err=True,
            )
        return EXIT_INTERNAL
    return status if isinstance(status, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
