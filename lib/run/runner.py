"""run_all: validate params, execute the stage notebooks with papermill, render reports.

Exit codes: 0 every selected stage succeeded; 1 a stage failed; 2 invalid parameters or usage;
3 (only with ``--fail-on-alert``) the monitor stage ran and fired at least one alert; 4 another
run_all is running on the same project (nothing was run); 130 stopped by SIGINT or SIGTERM (the
running stage's outputs were left as they were).

The work is done by :mod:`lib.run.plan` (what runs and why), :mod:`lib.run.pipeline` and
:mod:`lib.run.execute` (running it) and :mod:`lib.run.records` (status.json); this module is the
command line.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

import pandas as pd

from lib.core import startup
from lib.core.contracts.summary import read_summary
from lib.core.errors import DataValidationError, ParamsError, QuireError
from lib.core.layout import Layout
from lib.core.logs import LOG_FILE_ENV, adopt_loggers, configure_logging, get_logger
from lib.core.params import Params
from lib.core.paths import NOTEBOOKS_DIR
from lib.run import console
from lib.run.execute import environ
from lib.run.pipeline import promote, recover, run_pipeline
from lib.run.plan import plan
from lib.run.records import StageOutcome, duration, load
from lib.run.runlock import RunLock, RunLocked
from lib.run.stages import STAGES, Followup, Stage, get_stage, select_stages

__all__ = [
    "EXIT_ALERT",
    "EXIT_INTERRUPTED",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_STAGE_FAILED",
    "EXIT_USAGE",
    "StageOutcome",
    "build_parser",
    "main",
    "project_status",
    "promote",
    "recover",
    "run_pipeline",
    "summary_table",
]

log = get_logger("quire.run_all")

EXIT_OK = 0
EXIT_STAGE_FAILED = 1
EXIT_USAGE = 2
EXIT_ALERT = 3
EXIT_LOCKED = 4
EXIT_INTERRUPTED = 130  # as a shell reports a process stopped by SIGINT


def project_status(params: Params) -> str:
    """Return two lines: the champion model version and the last monitoring verdict."""
    from lib.core import tracking
    from lib.core.errors import ModelNotFoundError

    name = tracking.model_name(params)
    try:
        tracking.setup(params)
        version = tracking.version_by_alias(name, tracking.CHAMPION)
        champion = f"champion: {name} version {version.version} (run {version.run_id})"
    except ModelNotFoundError:
        champion = f"champion: none yet for {name}"
    summary = Layout.of(params, model=name, staged=False).monitoring_summary
    try:
        last = read_summary(summary)
        verdict = f"last monitoring ({last.time[:19]} UTC): {last.verdict}"
    except DataValidationError:
        verdict = "last monitoring: none yet"
    return f"{champion}\n{verdict}"


def summary_table(outcomes: Sequence[StageOutcome], pending: str = "would run") -> str:
    """Return the end-of-run table: stage, status, duration and reason.

    ``pending`` names stages that a dry run found not up to date.
    """
    rows = [("stage", "status", "duration", "reason")]
    for o in outcomes:
        shown = {"ok": "ran", "would run": pending}.get(o.status, o.status)
        took = duration(o.seconds) if o.status in ("ok", "failed") else "-"
        rows.append((o.stage.name, shown, took, o.reason))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:3], widths, strict=True)) + "  " + r[3]
        for r in rows
    )


def build_parser() -> argparse.ArgumentParser:
    """Return run_all's command-line parser."""
    names = ", ".join(s.name for s in STAGES)
    parser = argparse.ArgumentParser(
        prog="run_all.py",
        description="Run Quire's stage notebooks with papermill and render HTML reports.",
        epilog="Exit codes: 0 ok, 1 a stage failed, 2 invalid parameters or usage, "
        "3 alerts fired (with --fail-on-alert), 4 another run_all is running on this project, "
        "130 interrupted (SIGINT or SIGTERM).",
    )
    startup.add_arguments(parser, "ingest.split.test=0.25")
    parser.add_argument("--only", action="append", metavar="STAGE", help=f"run only: {names}")
    parser.add_argument("--from", dest="start", metavar="STAGE", help="run this stage and later")
    parser.add_argument("--hide-code", action="store_true", help="reports without code cells")
    parser.add_argument(
        "--log-level", default="INFO", help="log file level (and the console's, with -v)"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show papermill's cell log, library events and third-party warnings on the "
        "console (they always go to the log file under project.logs_dir)",
    )
    parser.add_argument(
        "--print-params", action="store_true", help="print the resolved parameters and exit"
    )
    parser.add_argument(
        "--force",
        nargs="?",
        const="*",
        action="append",
        metavar="STAGE",
        help="rerun every stage, or STAGE, even if up to date (repeatable)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would run and why, then exit"
    )
    parser.add_argument(
        "--status",
        action="store_true",
        help="print each stage's state, the champion version and the last monitoring verdict",
    )
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="retrain now: rerun ingest (with the labelled served rows) and every later stage; "
        "the evaluate stage's gate decides whether the new model becomes champion",
    )
    parser.add_argument(
        "--fail-on-alert",
        action="store_true",
        help="exit with code 3 when the monitor stage fires an alert",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``run_all.py``; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        params = startup.load(startup.Layers.from_args(args))
        stages = select_stages(args.only, args.start)
        force: bool | list[str] = "*" in (args.force or []) or [
            get_stage(name).name for name in args.force or []
        ]
        if args.retrain:
            if not params.ingest.feedback:
                raise ParamsError(
                    "--retrain adds the labelled served rows to the training data, but "
                    "ingest.feedback is false; set it to true (or use --force ingest)",
                    key="ingest.feedback",
                )
            if not isinstance(force, bool):
                force = ["ingest", *force]
            elif not force:
                force = ["ingest"]
    except ParamsError as exc:
        return startup.fail(str(exc), EXIT_USAGE)
    if args.print_params:
        import yaml

        print(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
        return EXIT_OK
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        with RunLock(Layout.of(params).data):
            return _run(args, params, stages, force)
    except RunLocked as exc:
        return startup.fail(str(exc), EXIT_LOCKED)
    except (ParamsError, DataValidationError) as exc:  # --dry-run's check of params and data
        return startup.fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        print(
            "interrupted: the stage that was running left its previous outputs in place; "
            "reports/index.html shows the interrupted run",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


def _sigterm(signum: int, frame: object) -> None:
    """Stop on SIGTERM as on Ctrl-C: the running stage is discarded, the run marked."""
    raise KeyboardInterrupt


def _run(
    args: argparse.Namespace, params: Params, stages: Sequence[Stage], force: bool | list[str]
) -> int:
    """Run the stages (the caller holds the project's run lock); return the exit code."""
    if args.dry_run or args.status:
        return _plan_only(params, stages, force, status_too=args.status)
    from lib.data.params_check import check_before_run

    checked = check_before_run(params)  # ParamsError: every problem at once, exit 2
    stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%SZ")
    log_file = Layout.of(params).run_log(stamp)
    configure_logging(args.log_level, log_file, quiet=not args.verbose)
    if not args.verbose:
        import mlflow  # noqa: F401  (it sets up its loggers at import: then adopt them)

        adopt_loggers("mlflow", "alembic")
    log.info(
        "run_start",
        params_checked_against=checked,
        stages=[s.name for s in stages],
        params_digest=params.digest(),
        dataset=params.project.name,
        log_file=str(log_file),
    )
    with environ({LOG_FILE_ENV: str(log_file)}):  # the kernels log their warnings there
        try:
            outcomes = run_pipeline(
                params, stages, hide_code=args.hide_code, force=force, quiet=not args.verbose
            )
        except QuireError as exc:
            log.error("run_failed", error=exc.message)
            return EXIT_STAGE_FAILED
        failed = _report(outcomes)
        index = Layout.of(params).index
        log.info("run_done", status="failed" if failed else "ok", index=str(index))
        console.reports_at(index, log_file)
        if failed:
            return _failed_code(outcomes)
        return _follow_up(args, params, outcomes)


def _plan_only(
    params: Params, stages: Sequence[Stage], force: bool | list[str], *, status_too: bool
) -> int:
    """Print what a run would do (``--dry-run``), or each stage's state (``--status``)."""
    layout = Layout.of(params, staged=False)
    layout.reports.mkdir(parents=True, exist_ok=True)
    status = recover(params, load(layout))[0]  # a pending promotion decides what is up to date
    planned = plan(params, stages, status, force=force, notebooks_dir=NOTEBOOKS_DIR)
    print(summary_table(planned, pending="stale" if status_too else "would run"))
    if status_too:
        print(project_status(params))
    elif any(o.status == "would run" for o in planned):
        from lib.data.params_check import check_columns

        # ParamsError: every problem at once, exit 2 (lib.core.startup), as ingest would fail.
        print(check_columns(params).format())
    return EXIT_OK


def _failed_code(outcomes: Sequence[StageOutcome]) -> int:
    """Return 2 when a stage failed on the parameters or the data (fix those), else 1."""
    usage = ("ParamsError", "DataValidationError")
    failures = [o.failure for o in outcomes if o.failure]
    return EXIT_USAGE if any(f.exception in usage for f in failures) else EXIT_STAGE_FAILED


def _report(outcomes: Sequence[StageOutcome]) -> bool:
    """Print the summary table and each failure's one line; return whether a stage failed."""
    print(summary_table(outcomes))
    failures = [o.error for o in outcomes if o.error]
    for line in failures:
        print(line, file=sys.stderr)
    return bool(failures)


def _follow_up(args: argparse.Namespace, params: Params, outcomes: Sequence[StageOutcome]) -> int:
    """Do what the stages that ran ask afterwards (``Stage.after_run``); return the exit code."""
    followups = [
        o.stage.after_run(params) for o in outcomes if o.status == "ok" and o.stage.after_run
    ]
    for followup in followups:
        code = _rerun(params, followup, args.hide_code, quiet=not args.verbose)
        if code != EXIT_OK:
            return code
    alerts = [a for f in followups for a in f.alerts]
    if args.fail_on_alert and alerts:
        print(f"alerts fired: {'; '.join(alerts)}", file=sys.stderr)
        return EXIT_ALERT
    return EXIT_OK


def _rerun(params: Params, followup: Followup, hide_code: bool, *, quiet: bool) -> int:
    """Run the stages a follow-up asks for (e.g. a retrain after alerts); return the exit code."""
    if not followup.rerun:
        return EXIT_OK
    stages = [get_stage(name) for name in followup.rerun]
    outcomes = run_pipeline(
        params, stages, hide_code=hide_code, force=list(followup.force), quiet=quiet
    )
    return EXIT_STAGE_FAILED if _report(outcomes) else EXIT_OK
