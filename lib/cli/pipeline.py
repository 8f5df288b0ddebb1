"""``quire run``, ``quire status`` and ``quire check``: the pipeline and its parameters."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from lib.cli.options import Overrides, Presets, exits, flags, layer_args, stage_names

ALL_STAGES = "*"  # what a bare --force means, as in run_all


class RunCommand(TyperCommand):
    """``quire run``'s parser: a bare ``--force`` (no stage after it) reruns every stage."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Give a bare ``--force`` its implicit value, then parse as usual."""
        parsed: list[str] = super().parse_args(ctx, bare_force(args))
        return parsed


def bare_force(args: list[str]) -> list[str]:
    """Return ``args`` with each ``--force`` not followed by a stage name as ``--force=*``."""
    out = []
    for i, arg in enumerate(args):
        bare = arg == "--force" and (i + 1 == len(args) or args[i + 1].startswith("-"))
        out.append(f"--force={ALL_STAGES}" if bare else arg)
    return out


@exits
def run(
    presets: Presets = None,
    overrides: Overrides = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="STAGE",
            help="Run only this stage (repeatable).",
            autocompletion=stage_names,
            show_default=False,
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="STAGE",
            help="Run this stage and every later one.",
            autocompletion=stage_names,
            show_default=False,
        ),
    ] = None,
    hide_code: Annotated[
        bool, typer.Option("--hide-code", help="Reports without code cells.")
    ] = False,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level", help="The log file's level (and, with -v, the console's) [INFO]."
        ),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option(
            "-v",
            "--verbose",
            help="Show papermill's cell log, library events and warnings on the console too.",
        ),
    ] = False,
    print_params: Annotated[
        bool, typer.Option("--print-params", help="Print the resolved parameters and exit.")
    ] = False,
    force: Annotated[
        list[str] | None,
        typer.Option(
            "--force",
            metavar="[STAGE]",
            help="Rerun every stage (bare --force), or STAGE, even if up to date (repeatable).",
            autocompletion=stage_names,
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would run and why, then exit.")
    ] = False,
    status: Annotated[
        bool,
        typer.Option(
            "--status", help="Print each stage's state, the champion and the last verdict."
        ),
    ] = False,
    retrain: Annotated[
        bool,
        typer.Option(
            "--retrain",
            help="Rerun ingest with the labelled served rows, then train and evaluate; the gate "
            "decides whether the new model becomes champion.",
        ),
    ] = False,
    fail_on_alert: Annotated[
        bool, typer.Option("--fail-on-alert", help="Exit 3 when the monitor stage fires an alert.")
    ] = False,
) -> int:
    """Run the pipeline: the stages that are not up to date, each rendered as an HTML report.

    Exit codes: 0 ok, 1 a stage failed, 2 invalid parameters or usage, 3 alerts fired (with
    --fail-on-alert), 4 another run holds this project's lock, 130 interrupted.
    """
    from lib.run import runner

    argv = layer_args(presets, overrides)
    argv += flags(only=only, **{"from": start}, hide_code=hide_code, log_level=log_level)
    argv += flags(verbose=verbose, print_params=print_params)
    for stage in force or []:
        argv += ["--force"] if stage == ALL_STAGES else ["--force", stage]
    argv += flags(dry_run=dry_run, status=status, retrain=retrain, fail_on_alert=fail_on_alert)
    return runner.main(argv)


@exits
def status(presets: Presets = None, overrides: Overrides = None) -> int:
    """Print each stage's state (up to date, or stale and why), the champion and the last verdict.

    Runs nothing (the same as quire run --status).
    """
    from lib.run import runner

    return runner.main(["--status", *layer_args(presets, overrides)])


@exits
def check(
    presets: Presets = None,
    overrides: Overrides = None,
    log_level: Annotated[str, typer.Option("--log-level", help="Log level.")] = "WARNING",
) -> int:
    """Check the parameters against the data, without training.

    Validates the parameter layers, reads the data as the ingest stage would (generating it for
    data.source: generator), infers its schema, and checks every parameter that names a column:
    all the problems in one message. Exit codes: 0 fine, 2 a problem (named), 1 an error.
    """
    from lib.core import startup
    from lib.core.errors import DataValidationError, ParamsError
    from lib.data.params_check import check_columns

    def body() -> int:
        params = startup.start(startup.Layers.of(presets, overrides), log_level=log_level)
        print(check_columns(params).format())
        return startup.EXIT_OK

    return startup.guarded(body, usage=(ParamsError, DataValidationError))
