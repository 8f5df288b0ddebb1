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
from lib.stages import STAGES, Stage, get_stage, select_stages

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
    status: str  # ok (ran) | up to date | failed | skipped | would run (dry run)
    seconds: float
    error: str | None = None
    reason: str = ""


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


def _record(
    status: dict[str, Any],
    outcome: StageOutcome,
    params: Params,
    parts: dict[str, str] | None = None,
    outputs: str | None = None,
) -> None:
    saved = status["stages"].get(outcome.stage.name, {})
    if outcome.status == "up to date":  # keeps its report, duration and hashes; says why
        status["stages"][outcome.stage.name] = {
            **saved,
            "status": "up to date",
            "reason": outcome.reason,
        }
        return
    suffix = "" if outcome.status == "ok" else ".failed"
    report = f"{outcome.stage.stem}{suffix}.html" if outcome.status != "skipped" else None
    status["stages"][outcome.stage.name] = {
        "status": outcome.status,
        "duration": _duration(outcome.seconds) if outcome.status != "skipped" else None,
        "params_digest": params.digest(),
        "finished_at": _now(),
        "report": report,
        "error": outcome.error,
        "reason": outcome.reason,
        "inputs": parts if outcome.status == "ok" else None,
        "outputs": outputs if outcome.status == "ok" else None,
    }


_KINDS = {
    "notebook": "its notebook's cells changed",
    "params": "its parameters changed",
    "lib": "code in lib/ changed",
    "upstream": "an earlier stage's outputs changed",
    "inputs": "its input data changed",
}


def _why(saved: dict[str, Any], parts: dict[str, str], outputs: str | None) -> str | None:
    """Return why the stage must run, or None when it is up to date."""
    if not saved:
        return "it has not run before"
    if saved.get("status") not in ("ok", "up to date"):
        return f"its last run {saved.get('status')}"
    if not saved.get("inputs"):
        return "no fingerprint recorded yet"
    changed = [_KINDS[k] for k in parts if saved["inputs"].get(k) != parts[k]]
    if changed:
        return "; ".join(changed)
    if outputs is None or outputs != saved.get("outputs"):
        return "its outputs are missing or were changed"
    return None


def run_pipeline(
    params: Params,
    stages: Sequence[Stage],
    *,
    hide_code: bool = False,
    notebooks_dir: Path = NOTEBOOKS_DIR,
    force: bool | Sequence[str] = False,
    dry_run: bool = False,
) -> list[StageOutcome]:
    """Run the ``stages`` that are not up to date, in order; stop at the first failure.

    A stage runs when something it depends on changed since it last succeeded (its notebook's
    cells, its parameters, ``lib/``, an earlier stage's outputs, its input data) or its outputs
    are missing or were changed (``lib.fingerprint``); otherwise it is reported up to date and
    keeps its report. Stages after a failure are marked skipped.

    Parameters
    ----------
    params
        Validated parameters.
    stages
        The stages to consider, in order.
    hide_code
        Render reports without code cells.
    notebooks_dir
        Where the stage notebooks are.
    force
        True reruns every stage; a list of names reruns those (and whatever their new outputs
        change downstream).
    dry_run
        Only say what would run and why.

    Returns
    -------
    list of StageOutcome
        One per selected stage.
    """
    from tqdm import tqdm

    from lib import fingerprint

    reports_dir = resolve(params.project.reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    status = read_status(reports_dir)
    status.setdefault("stages", {})
    if not dry_run:
        status["run"] = {
            "dataset": params.project.name,
            "params_digest": params.digest(),
            "started_at": _now(),
            "status": "running",
        }
        write_status(reports_dir, status)
    lib_hash = fingerprint.code_hash()
    forced = {s.name for s in stages} if force is True else set(force or [])
    selected = {s.name for s in stages}
    if stages and all(s in STAGES for s in stages):  # stages not selected still feed later ones
        span = list(STAGES[: STAGES.index(stages[-1]) + 1])
    else:  # a custom list of stages (tests): just those
        span = list(stages)
    upstream: list[str] = []
    outcomes: list[StageOutcome] = []
    failed = rerun_upstream = False
    for stage in tqdm(span, desc="stages", unit="stage", disable=len(stages) < 2 or dry_run):
        if stage.name not in selected:  # its outputs as they are now
            upstream.append(fingerprint.outputs_digest(stage, params) or "missing")
            continue
        if failed:
            outcome = StageOutcome(stage, "skipped", 0.0, reason="an earlier stage failed")
            outcomes.append(outcome)
            _record(status, outcome, params)
            write_status(reports_dir, status)
            continue
        parts = fingerprint.components(stage, params, upstream, notebooks_dir, lib_hash)
        outputs = fingerprint.outputs_digest(stage, params)
        saved = status["stages"].get(stage.name, {})
        why = "forced (--force)" if stage.name in forced else _why(saved, parts, outputs)
        if why is None and rerun_upstream:  # dry run: its inputs are not known yet
            why = "an earlier stage would rerun"
        if why is None:
            outcome = StageOutcome(stage, "up to date", 0.0, reason="nothing it depends on changed")
            log.info("stage_up_to_date", stage=stage.name)
        elif dry_run:
            outcome = StageOutcome(stage, "would run", 0.0, reason=why)
            rerun_upstream = True
        else:
            log.info("stage_start", stage=stage.name, notebook=stage.notebook, reason=why)
            ran = run_stage(
                stage, params, reports_dir, hide_code=hide_code, notebooks_dir=notebooks_dir
            )
            outcome = StageOutcome(stage, ran.status, ran.seconds, ran.error, why)
            failed = outcome.status == "failed"
            if failed:
                log.error("stage_failed", stage=stage.name, error=outcome.error)
            else:
                log.info("stage_done", stage=stage.name, seconds=round(outcome.seconds, 1))
                outputs = fingerprint.outputs_digest(stage, params)
        outcomes.append(outcome)
        upstream.append(outputs or "missing")
        if not dry_run:
            _record(status, outcome, params, parts, outputs)
            write_status(reports_dir, status)
    if not dry_run:
        status["run"]["status"] = "failed" if failed else "ok"
        write_status(reports_dir, status)
    return outcomes


def project_status(params: Params) -> str:
    """Return two lines: the champion model version and the last monitoring verdict."""
    import json

    from lib import tracking
    from lib.errors import ModelNotFoundError
    from lib.monitor_results import SUMMARY

    name = tracking.model_name(params)
    try:
        tracking.setup(params)
        version = tracking.version_by_alias(name, tracking.CHAMPION)
        champion = f"champion: {name} version {version.version} (run {version.run_id})"
    except ModelNotFoundError:
        champion = f"champion: none yet for {name}"
    summary = resolve(params.project.data_dir) / "monitoring" / name / "latest" / SUMMARY
    try:
        last = json.loads(summary.read_text(encoding="utf-8"))
        verdict = f"last monitoring ({last['time'][:19]} UTC): {last['verdict']}"
    except (OSError, ValueError, KeyError):
        verdict = "last monitoring: none yet"
    return f"{champion}\n{verdict}"


def summary_table(outcomes: Sequence[StageOutcome], pending: str = "would run") -> str:
    """Return the end-of-run table: stage, status, duration and reason.

    ``pending`` names stages that a dry run found not up to date.
    """
    rows = [("stage", "status", "duration", "reason")]
    for o in outcomes:
        shown = {"ok": "ran", "would run": pending}.get(o.status, o.status)
        took = _duration(o.seconds) if o.status in ("ok", "failed") else "-"
        rows.append((o.stage.name, shown, took, o.reason))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:3], widths, strict=True)) + "  " + r[3]
        for r in rows
    )


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
        force: bool | list[str] = "*" in (args.force or []) or [
            get_stage(name).name for name in args.force or []
        ]
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.print_params:
        import yaml

        print(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
        return EXIT_OK
    try:
        with RunLock(resolve(params.project.data_dir)):
            return _run(args, params, stages, force)
    except RunLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LOCKED


def _run(
    args: argparse.Namespace, params: Params, stages: Sequence[Stage], force: bool | list[str]
) -> int:
    """Run the stages (the caller holds the project's run lock); return the exit code."""
    if args.dry_run or args.status:
        planned = run_pipeline(params, stages, force=force, dry_run=True)
        print(summary_table(planned, pending="stale" if args.status else "would run"))
        if args.status:
            print(project_status(params))
        return EXIT_OK
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
        outcomes = run_pipeline(params, stages, hide_code=args.hide_code, force=force)
    except QuireError as exc:
        log.error("run_failed", error=exc.message)
        return EXIT_STAGE_FAILED
    print(summary_table(outcomes))
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
