"""run_all: validate params, execute the stage notebooks with papermill, render reports.

Exit codes: 0 every selected stage succeeded; 1 a stage failed; 2 invalid parameters or usage;
3 (only with ``--fail-on-alert``) the monitor stage ran and fired at least one alert; 4 another
run_all is running on the same project (nothing was run).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lib.errors import ParamsError, QuireError
from lib.logs import configure_logging, get_logger
from lib.params import Params, load_params
from lib.paths import NOTEBOOKS_DIR, PROJECT_ROOT, resolve
from lib.report import read_status, render_html, write_status
from lib.runlock import RunLock, RunLocked
from lib.stages import STAGES, Stage, select_stages

log = get_logger("quire.run_all")

EXIT_OK = 0
EXIT_STAGE_FAILED = 1
EXIT_USAGE = 2
EXIT_ALERT = 3
EXIT_LOCKED = 4


@dataclass(frozen=True)
class StageOutcome:
    """How one stage ended."""

    stage: Stage
    status: str
    seconds: float
    error: str | None = None


def _now() -> str:
    return pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _source_position(executed: Path, cell_index: int) -> int:
    """1-based position in the committed notebook of an executed notebook's cell."""
    import nbformat

    try:
        cells = nbformat.read(executed, as_version=4).cells
    except (OSError, ValueError):
        return cell_index + 1
    # papermill counts cells before it adds its error banner and anchor cells; drop those, then
    # discount the injected-parameters cell it added after the parameters cell.
    tags = [c.metadata.get("tags", []) for c in cells]
    tags = [t for t in tags if "papermill-error-cell-tag" not in t]
    shift = sum(1 for i, t in enumerate(tags) if "injected-parameters" in t and i < cell_index)
    return cell_index - shift + 1


def _error_line(stage: Stage, exc: BaseException, executed: Path) -> str:
    """One line naming the notebook, the cell and the error."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        message = str(exc.evalue).strip().splitlines()[0] if exc.evalue else ""
        position = _source_position(executed, exc.cell_index)
        return (
            f"{stage.notebook} failed in cell {position} (In [{exc.exec_count}] in the report): "
            f"{exc.ename}: {message}"
        )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{stage.notebook} failed: {type(exc).__name__}: {first}"


def run_stage(
    stage: Stage, params: Params, reports_dir: Path, *, hide_code: bool, notebooks_dir: Path
) -> StageOutcome:
    """Execute one notebook and render its report; never raises for a failing notebook.

    On success the executed notebook and ``<stem>.html`` replace the previous ones. On failure
    ``<stem>.failed.html`` is rendered with the error cell marked, and the last good report
    is left untouched.
    """
    import papermill

    started = time.perf_counter()
    tmp_nb = reports_dir / f".{stage.stem}.{uuid.uuid4().hex[:8]}.tmp.ipynb"
    error: str | None = None
    try:
        try:
            papermill.execute_notebook(
                str(notebooks_dir / stage.notebook),
                str(tmp_nb),
                parameters=params.section_dicts(stage.sections),
                kernel_name="python3",
                log_output=True,
                progress_bar={"desc": stage.name, "leave": False},
                cwd=str(notebooks_dir),
            )
        except Exception as exc:  # a failing notebook is reported, not raised
            error = _error_line(stage, exc, tmp_nb)
        seconds = time.perf_counter() - started
        status = "ok" if error is None else "failed"
        suffix = "" if error is None else ".failed"
        banner = {
            "stage": stage.stem,
            "status": status,
            "duration": _duration(seconds),
            "params_digest": params.digest(),
            "finished_at": _now(),
            "error": error,
        }
        if tmp_nb.exists():
            render_html(
                tmp_nb,
                reports_dir / f"{stage.stem}{suffix}.html",
                banner=banner,
                hide_code=hide_code,
            )
            os.replace(tmp_nb, reports_dir / f"{stage.stem}{suffix}.ipynb")
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_nb.unlink()
    if error is None:
        for stale in (f"{stage.stem}.failed.html", f"{stage.stem}.failed.ipynb"):
            with contextlib.suppress(FileNotFoundError):
                (reports_dir / stale).unlink()
    return StageOutcome(stage, status, seconds, error)


def _record(status: dict[str, Any], outcome: StageOutcome, params: Params) -> None:
    suffix = "" if outcome.status == "ok" else ".failed"
    report = f"{outcome.stage.stem}{suffix}.html" if outcome.status != "skipped" else None
    status["stages"][outcome.stage.name] = {
        "status": outcome.status,
        "duration": _duration(outcome.seconds) if outcome.status != "skipped" else None,
        "params_digest": params.digest(),
        "finished_at": _now(),
        "report": report,
        "error": outcome.error,
    }


def run_pipeline(
    params: Params,
    stages: Sequence[Stage],
    *,
    hide_code: bool = False,
    notebooks_dir: Path = NOTEBOOKS_DIR,
) -> list[StageOutcome]:
    """Run ``stages`` in order; stop at the first failure (later ones are marked skipped).

    Parameters
    ----------
    params
        Validated parameters.
    stages
        The stages to run, in order.
    hide_code
        Render reports without code cells.
    notebooks_dir
        Where the stage notebooks are.

    Returns
    -------
    list of StageOutcome
        One per selected stage.
    """
    from tqdm import tqdm

    reports_dir = resolve(params.project.reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    status = read_status(reports_dir)
    status["run"] = {
        "dataset": params.project.name,
        "params_digest": params.digest(),
        "started_at": _now(),
        "status": "running",
    }
    write_status(reports_dir, status)
    outcomes: list[StageOutcome] = []
    failed = False
    for stage in tqdm(stages, desc="stages", unit="stage", disable=len(stages) < 2):
        if failed:
            outcome = StageOutcome(stage, "skipped", 0.0)
        else:
            log.info("stage_start", stage=stage.name, notebook=stage.notebook)
            outcome = run_stage(
                stage, params, reports_dir, hide_code=hide_code, notebooks_dir=notebooks_dir
            )
            failed = outcome.status == "failed"
            if failed:
                log.error("stage_failed", stage=stage.name, error=outcome.error)
            else:
                log.info("stage_done", stage=stage.name, seconds=round(outcome.seconds, 1))
        outcomes.append(outcome)
        _record(status, outcome, params)
        write_status(reports_dir, status)
    status["run"]["status"] = "failed" if failed else "ok"
    write_status(reports_dir, status)
    return outcomes


def environment(dotenv: Path = PROJECT_ROOT / ".env") -> dict[str, str]:
    """Return the process environment over the values of ``.env`` (the process wins)."""
    from dotenv import dotenv_values

    values = {k: v for k, v in dotenv_values(dotenv).items() if v is not None}
    return {**values, **os.environ}


def build_parser() -> argparse.ArgumentParser:
    """Return run_all's command-line parser."""
    names = ", ".join(s.name for s in STAGES)
    parser = argparse.ArgumentParser(
        prog="run_all.py",
        description="Run Quire's stage notebooks with papermill and render HTML reports.",
        epilog="Exit codes: 0 ok, 1 a stage failed, 2 invalid parameters or usage, "
        "3 alerts fired (with --fail-on-alert), 4 another run_all is running on this project.",
    )
    parser.add_argument(
        "--params", action="append", default=[], metavar="FILE", help="preset YAML (repeatable)"
    )
    parser.add_argument(
        "-p",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one parameter, e.g. -p ingest.split.test=0.25 (repeatable)",
    )
    parser.add_argument("--only", action="append", metavar="STAGE", help=f"run only: {names}")
    parser.add_argument("--from", dest="start", metavar="STAGE", help="run this stage and later")
    parser.add_argument("--hide-code", action="store_true", help="reports without code cells")
    parser.add_argument("--log-level", default="INFO", help="console and file log level")
    parser.add_argument(
        "--print-params", action="store_true", help="print the resolved parameters and exit"
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
        params = load_params(args.params, args.overrides, env=environment())
        stages = select_stages(args.only, args.start)
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.print_params:
        import yaml

        print(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
        return EXIT_OK
    try:
        with RunLock(resolve(params.project.data_dir)):
            return _run(args, params, stages)
    except RunLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LOCKED


def _run(args: argparse.Namespace, params: Params, stages: Sequence[Stage]) -> int:
    """Run the stages (the caller holds the project's run lock); return the exit code."""
    stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%SZ")
    log_file = resolve(params.project.logs_dir) / f"run_all-{stamp}.jsonl"
    configure_logging(args.log_level, log_file)
    log.info(
        "run_start",
        stages=[s.name for s in stages],
        params_digest=params.digest(),
        dataset=params.project.name,
        log_file=str(log_file),
    )
    try:
        outcomes = run_pipeline(params, stages, hide_code=args.hide_code)
    except QuireError as exc:
        log.error("run_failed", error=exc.message)
        return EXIT_STAGE_FAILED
    for outcome in outcomes:
        if outcome.error:
            print(outcome.error, file=sys.stderr)
    failed = any(o.status == "failed" for o in outcomes)
    reports = resolve(params.project.reports_dir) / "index.html"
    log.info("run_done", status="failed" if failed else "ok", index=str(reports))
    if failed:
        return EXIT_STAGE_FAILED
    if args.fail_on_alert and any(o.stage.name == "monitor" for o in outcomes):
        alerts = _monitor_alerts(params)
        if alerts:
            print(f"alerts fired: {'; '.join(alerts)}", file=sys.stderr)
            return EXIT_ALERT
    return EXIT_OK


def _monitor_alerts(params: Params) -> list[str]:
    """Messages of the alerts the latest monitor run fired."""
    import json

    from lib import tracking
    from lib.monitor import monitoring_dir
    from lib.monitor_results import SUMMARY

    path = monitoring_dir(params, tracking.model_name(params)) / "latest" / SUMMARY
    summary = json.loads(path.read_text(encoding="utf-8"))
    return [f"{a['rule']}: {a['message']}" for a in summary.get("alerts", [])]
