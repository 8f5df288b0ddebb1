"""run_all: validate params, execute the stage notebooks with papermill, render reports.

Exit codes: 0 every selected stage succeeded; 1 a stage failed; 2 invalid parameters or usage;
3 (only with ``--fail-on-alert``) the monitor stage ran and fired at least one alert; 4 another
run_all is running on the same project (nothing was run); 130 stopped by SIGINT or SIGTERM (the
running stage's outputs were left as they were).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lib.core import staging_area
from lib.core.env import environment, kernel_paths
from lib.core.errors import ParamsError, QuireError
from lib.core.layout import Layout, feedback_dir
from lib.core.logs import configure_logging, get_logger
from lib.core.params import Params, add_layer_arguments, load_params
from lib.core.paths import NOTEBOOKS_DIR, resolve
from lib.run import staging
from lib.run.kernels import WarmKernel
from lib.run.report import read_status, render_html, write_status
from lib.run.runlock import RunLock, RunLocked
from lib.run.stages import STAGES, Stage, get_stage, output_paths, select_stages

log = get_logger("quire.run_all")

EXIT_OK = 0
EXIT_STAGE_FAILED = 1
EXIT_USAGE = 2
EXIT_ALERT = 3
EXIT_LOCKED = 4
EXIT_INTERRUPTED = 130  # as a shell reports a process stopped by SIGINT


@dataclass(frozen=True)
class StageOutcome:
    """How one stage ended."""

    stage: Stage
    status: str  # ok (ran) | up to date | failed | skipped | would run (dry run)
    seconds: float
    error: str | None = None
    reason: str = ""
    finished_at: str = ""  # as in the report's banner


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


def _last_started(executed: Path) -> int | None:
    """Index of the last cell papermill started in an executed notebook (None: unreadable)."""
    import nbformat

    try:
        cells = nbformat.read(executed, as_version=4).cells
    except (OSError, ValueError):
        return None
    started = [i for i, c in enumerate(cells) if c.metadata.get("papermill", {}).get("start_time")]
    return started[-1] if started else None


def _error_line(stage: Stage, exc: BaseException, executed: Path, timeout: int = 0) -> str:
    """One line naming the notebook, the cell and the error, and what to do about it."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        message = str(exc.evalue).strip().splitlines()[0] if exc.evalue else ""
        position = _source_position(executed, exc.cell_index)
        return (
            f"{stage.notebook} failed in cell {position} (In [{exc.exec_count}] in the report): "
            f"{exc.ename}: {message}"
        )
    index = _last_started(executed)
    where = f" in cell {_source_position(executed, index)}" if index is not None else ""
    if isinstance(exc, CellTimeoutError):
        return (
            f"{stage.notebook} failed{where}: the cell ran longer than run.cell_timeout = "
            f"{timeout} s and was stopped; make it faster, or raise run.cell_timeout in params "
            "(0: no limit)"
        )
    if isinstance(exc, DeadKernelError):
        return (
            f"{stage.notebook} failed{where}: the kernel died while running it (killed, out of "
            "memory, or a crash in native code); check memory use and the data size, then rerun"
        )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{stage.notebook} failed{where}: {type(exc).__name__}: {first}"


def _kernel_pids() -> list[int]:
    """Return the ipykernel processes this process started (papermill's kernel)."""
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any("ipykernel" in part for part in child.cmdline()):
                found.append(child.pid)
    return found


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (the kernel papermill starts inherits them)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def run_stage(
    stage: Stage,
    params: Params,
    reports_dir: Path,
    *,
    hide_code: bool,
    notebooks_dir: Path,
    area: staging_area.Staging | None = None,
    km: Any = None,
) -> StageOutcome:
    """Execute one notebook and render its report; never raises for a failing notebook.

    With a staging ``area`` the notebook writes its outputs there and a good report is rendered
    there too, for :func:`promote` to put in place; without one they go straight to their final
    place. A failed run renders ``<stem>.failed.html`` in place; the last good report and
    outputs are left untouched. ``km`` is a kernel already started for the stage
    (``lib.run.kernels``); without one papermill starts a kernel.
    """
    import papermill

    started = time.perf_counter()
    tmp_nb = reports_dir / f".{stage.stem}.{uuid.uuid4().hex[:8]}.tmp.ipynb"
    error: str | None = None
    timeout = params.run.cell_timeout
    try:
        try:
            with _environ({**kernel_paths(), **(area.environ() if area else {})}):
                papermill.execute_notebook(
                    str(notebooks_dir / stage.notebook),
                    str(tmp_nb),
                    parameters=params.section_dicts(stage.sections),
                    kernel_name="python3",
                    log_output=True,
                    progress_bar={"desc": stage.name, "leave": False},
                    cwd=str(notebooks_dir),
                    execution_timeout=timeout or None,
                    on_notebook_start=(
                        (lambda **_: area.record_kernels(_kernel_pids())) if area else None
                    ),
                    **({"km": km} if km is not None else {}),
                )
        except Exception as exc:  # a failing notebook is reported, not raised
            error = _error_line(stage, exc, tmp_nb, timeout)
        seconds = time.perf_counter() - started
        status = "ok" if error is None else "failed"
        suffix = "" if error is None else ".failed"
        finished_at = _now()
        banner = {
            "stage": stage.stem,
            "status": status,
            "duration": _duration(seconds),
            "params_digest": params.digest(),
            "finished_at": finished_at,
            "error": error,
        }
        html = reports_dir / f"{stage.stem}{suffix}.html"
        executed = reports_dir / f"{stage.stem}{suffix}.ipynb"
        if area is not None and error is None:
            html, executed = area.staged(html), area.staged(executed)
            for stale in (".failed.html", ".failed.ipynb"):  # a good run retires them
                area.staged(reports_dir / f"{stage.stem}{stale}").unlink(missing_ok=True)
        if tmp_nb.exists():
            render_html(tmp_nb, html, banner=banner, hide_code=hide_code)
            os.replace(tmp_nb, executed)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_nb.unlink()
    if error is None and area is None:
        for stale in (f"{stage.stem}.failed.html", f"{stage.stem}.failed.ipynb"):
            with contextlib.suppress(FileNotFoundError):
                (reports_dir / stale).unlink()
    return StageOutcome(stage, status, seconds, error, finished_at=finished_at)


def _entry(
    outcome: StageOutcome, params: Params, run_id: str, parts: dict[str, str] | None = None
) -> dict[str, Any]:
    """Return the stage's line in ``status.json`` for a stage that ran (or was skipped)."""
    suffix = "" if outcome.status == "ok" else ".failed"
    report = f"{outcome.stage.stem}{suffix}.html" if outcome.status != "skipped" else None
    return {
        "status": outcome.status,
        "duration": _duration(outcome.seconds) if outcome.status != "skipped" else None,
        "params_digest": params.digest(),
        "finished_at": outcome.finished_at or _now(),
        "report": report,
        "error": outcome.error,
        "reason": outcome.reason,
        "inputs": parts if outcome.status == "ok" else None,
        "outputs": None,
        "run": run_id,
    }


def _record(status: dict[str, Any], outcome: StageOutcome, params: Params) -> None:
    """Record a stage that did not run (up to date: keeps its report, hashes and runs; skipped)."""
    saved = status["stages"].get(outcome.stage.name, {})
    if outcome.status == "up to date":
        status["stages"][outcome.stage.name] = {
            **saved,
            "status": "up to date",
            "reason": outcome.reason,
        }
        return
    status["stages"][outcome.stage.name] = _entry(outcome, params, status["run"].get("id", ""))


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


def _folders(params: Params) -> tuple[Path, Path]:
    return resolve(params.project.data_dir), resolve(params.project.reports_dir)


def stage_outputs(stage: Stage, params: Params) -> list[Path]:
    """Return the stage's declared outputs for ``params`` (``Stage.outputs`` and its reports)."""
    from lib.core import tracking

    data_dir, reports_dir = _folders(params)
    model = tracking.model_name(params)
    return output_paths(stage, data_dir, reports_dir, params.project.name, model)


def promote(
    journal: dict[str, Any], params: Params, status: dict[str, Any], stage: Stage | None = None
) -> str | None:
    """Put a committed stage's outputs in place and record it; return its outputs digest.

    Also the roll-forward of a promotion a crash interrupted (``stage`` then comes from the
    journal): every step is idempotent.
    """
    from lib.run import fingerprint, history

    data_dir, reports_dir = _folders(params)
    stage = stage or get_stage(journal["stage"])
    staging.apply(journal)
    entry = dict(journal["record"])
    entry["outputs"] = fingerprint.outputs_digest(stage, params)
    entry["mlflow_runs"] = history.stage_runs(stage, params)
    status["stages"][stage.name] = entry
    write_status(reports_dir, status)
    staging.finish(journal, data_dir)
    return entry["outputs"] if isinstance(entry["outputs"], str) else None


def recover(params: Params, status: dict[str, Any]) -> list[str]:
    """Finish or discard what a killed run_all left; return what was done (empty: nothing).

    A committed promotion is rolled forward; staging areas without a commit are discarded
    (the previous outputs were never touched), their kernels stopped. A run still marked
    running is marked interrupted, and its MLflow runs still RUNNING are marked FAILED.
    """
    from lib.run import history

    data_dir, reports_dir = _folders(params)
    done = []
    journal = staging.pending_journal(data_dir)
    if journal is not None:
        promote(journal, params, status)
        done.append(f"finished promoting the {journal['stage']} stage's outputs")
    discarded = staging.discard_all(data_dir, reports_dir)
    done += [f"discarded the unfinished {name} stage's staging area" for name in discarded]
    run = status.get("run", {})
    if run.get("status") == "running":
        run["status"] = "interrupted"
        run["finished_at"] = run.get("finished_at") or _now()
        run["note"] = "the process ended without finishing (killed or crashed)"
        history.close_run(reports_dir, status, params.run.history)
        done.append(f"marked the run started {run.get('started_at')} interrupted")
    if run.get("status") == "interrupted" and not run.get("orphans_closed"):
        run["orphans_closed"] = True  # its kernels are gone now: their runs can be closed
        done += [f"closed orphaned MLflow run {r}" for r in _close_orphaned_runs(params)]
    if done:
        write_status(reports_dir, status)
        for line in done:
            log.warning("recovered", action=line)
    return done


def _close_orphaned_runs(params: Params) -> list[str]:
    from mlflow.exceptions import MlflowException

    from lib.core import tracking

    try:
        return tracking.close_orphaned_runs(tracking.setup(params))
    except (MlflowException, OSError) as exc:  # a remote store may be down: report, go on
        log.warning("orphaned_runs_not_checked", error=str(exc).splitlines()[0][:200])
        return []


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
    are missing or were changed (``lib.run.fingerprint``); otherwise it is reported up to date and
    keeps its report. A stage that runs writes into a staging area whose outputs are promoted
    as one set when it succeeds (``lib.run.staging``). Stages after a failure are marked skipped.
    Whatever a killed earlier run left is recovered first (:func:`recover`).

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

    from lib.run import fingerprint, history

    reports_dir = _folders(params)[1]
    reports_dir.mkdir(parents=True, exist_ok=True)
    status = read_status(reports_dir)
    status.setdefault("stages", {})
    recover(params, status)
    if not dry_run:
        status["run"] = {
            "id": uuid.uuid4().hex[:12],
            "dataset": params.project.name,
            "params_digest": params.digest(),
            "started_at": _now(),
            "status": "running",
            "pid": os.getpid(),
        }
    forced = {s.name for s in stages} if force is True else set(force or [])
    selected = {s.name for s in stages}
    if stages and all(s in STAGES for s in stages):  # stages not selected still feed later ones
        span = list(STAGES[: STAGES.index(stages[-1]) + 1])
    else:  # a custom list of stages (tests): just those
        span = list(stages)
    upstream: list[str] = []
    outcomes: list[StageOutcome] = []
    failed = rerun_upstream = False
    current: Stage | None = None
    warm: dict[str, tuple[str, WarmKernel]] = {}  # the next stage's kernel, started ahead
    try:  # from the moment the run is recorded, a signal marks it interrupted
        if not dry_run:
            write_status(reports_dir, status)
        lib_hash = fingerprint.code_hash()
        for stage in tqdm(span, desc="stages", unit="stage", disable=len(stages) < 2 or dry_run):
            current = stage
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
                outcome = StageOutcome(
                    stage, "up to date", 0.0, reason="nothing it depends on changed"
                )
                log.info("stage_up_to_date", stage=stage.name)
                _drop_warm(warm, stage.name)
            elif dry_run:
                outcome = StageOutcome(stage, "would run", 0.0, reason=why)
                rerun_upstream = True
            else:
                name, kernel = warm.pop(stage.name, (staging_area.area_name(stage.name), None))
                later = [s for s in span[span.index(stage) + 1 :] if s.name in selected]
                if later:  # boots and imports while this stage runs
                    warm[later[0].name] = _warm_kernel(later[0], params, notebooks_dir)
                km = kernel.take() if kernel else None
                try:
                    outcome, outputs = _run_staged(
                        stage, params, status, parts, why, hide_code, notebooks_dir, name, km
                    )
                finally:
                    if kernel is not None:
                        kernel.shutdown()
                failed = outcome.status == "failed"
            outcomes.append(outcome)
            upstream.append(outputs or "missing")
            if not dry_run and outcome.status == "up to date":
                _record(status, outcome, params)
                write_status(reports_dir, status)
    except KeyboardInterrupt:  # SIGINT, or SIGTERM (run_all turns it into one)
        for name in list(warm):
            _drop_warm(warm, name)
        if not dry_run:
            status["run"].update(
                status="interrupted",
                finished_at=_now(),
                note=f"stopped by a signal during the {current.name if current else '?'} stage",
            )
            history.close_run(reports_dir, status, params.run.history)
            write_status(reports_dir, status)
        raise
    for name in list(warm):  # a stage after a failure: its kernel is not needed
        _drop_warm(warm, name)
    if not dry_run:
        status["run"].update(status="failed" if failed else "ok", finished_at=_now())
        history.close_run(reports_dir, status, params.run.history)
        write_status(reports_dir, status)
    return outcomes


def _warm_kernel(stage: Stage, params: Params, notebooks_dir: Path) -> tuple[str, WarmKernel]:
    """Start ``stage``'s kernel ahead, told where its staging area will be."""
    name = staging_area.area_name(stage.name)
    root = staging_area.area_root(_folders(params)[0], name)
    return name, WarmKernel(
        notebooks_dir, {**os.environ, **kernel_paths(), staging_area.ENV: str(root)}
    )


def _drop_warm(warm: dict[str, tuple[str, WarmKernel]], name: str) -> None:
    if name in warm:
        warm.pop(name)[1].shutdown()


def _run_staged(
    stage: Stage,
    params: Params,
    status: dict[str, Any],
    parts: dict[str, str],
    why: str,
    hide_code: bool,
    notebooks_dir: Path,
    name: str,
    km: Any,
) -> tuple[StageOutcome, str | None]:
    """Run one stage in a staging area; promote its outputs if it succeeds."""
    data_dir, reports_dir = _folders(params)
    log.info("stage_start", stage=stage.name, notebook=stage.notebook, reason=why)
    finals = stage_outputs(stage, params)
    area = staging_area.Staging.begin(stage.name, finals, data_dir, reports_dir, name)
    try:
        ran = run_stage(
            stage,
            params,
            reports_dir,
            hide_code=hide_code,
            notebooks_dir=notebooks_dir,
            area=area,
            km=km,
        )
    except BaseException:
        area.discard()
        raise
    outcome = StageOutcome(stage, ran.status, ran.seconds, ran.error, why, ran.finished_at)
    if outcome.status == "failed":
        area.discard()
        log.error("stage_failed", stage=stage.name, error=outcome.error)
        status["stages"][stage.name] = _entry(outcome, params, status["run"]["id"])
        write_status(reports_dir, status)
        return outcome, None
    with staging.signals_held():  # the promotion completes even if a signal arrives now
        record = _entry(outcome, params, status["run"]["id"], parts)
        journal = staging.commit(area, data_dir, record)
        outputs = promote(journal, params, status, stage)
    log.info("stage_done", stage=stage.name, seconds=round(outcome.seconds, 1))
    return outcome, outputs


def project_status(params: Params) -> str:
    """Return two lines: the champion model version and the last monitoring verdict."""
    import json

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
    add_layer_arguments(parser, "ingest.split.test=0.25")
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
        params = load_params(args.params, args.overrides, env=environment())
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
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.print_params:
        import yaml

        print(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
        return EXIT_OK
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        with RunLock(resolve(params.project.data_dir)):
            return _run(args, params, stages, force)
    except RunLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LOCKED
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
    reports = Layout.of(params).index
    log.info("run_done", status="failed" if failed else "ok", index=str(reports))
    if failed:
        return EXIT_STAGE_FAILED
    monitored = any(o.stage.name == "monitor" and o.status == "ok" for o in outcomes)
    alerts = _monitor_alerts(params) if monitored else []
    if alerts and params.monitor.retrain_on_alert:
        code = _retrain_on_alert(params, args.hide_code, alerts)
        if code != EXIT_OK:
            return code
    if args.fail_on_alert and alerts:
        print(f"alerts fired: {'; '.join(alerts)}", file=sys.stderr)
        return EXIT_ALERT
    return EXIT_OK


def _retrain_on_alert(params: Params, hide_code: bool, alerts: list[str]) -> int:
    """Retrain at once after alerts (``monitor.retrain_on_alert``) if labels came back."""
    from lib.core import tracking
    from lib.data import feedback

    folder = feedback_dir(params.project.data_dir, tracking.model_name(params))
    if not params.ingest.feedback or not feedback.label_files(folder):
        log.warning("retrain_skipped", reason=f"no labels in {folder} (or ingest.feedback off)")
        return EXIT_OK
    log.warning("retrain_on_alert", alerts=alerts)
    outcomes = run_pipeline(params, STAGES[:3], hide_code=hide_code, force=["ingest"])
    print(summary_table(outcomes))
    failed = [o for o in outcomes if o.status == "failed"]
    for outcome in failed:
        print(outcome.error, file=sys.stderr)
    return EXIT_STAGE_FAILED if failed else EXIT_OK


def _monitor_alerts(params: Params) -> list[str]:
    """Messages of the alerts the latest monitor run fired."""
    import json

    path = Layout.of(params).monitoring_summary
    summary = json.loads(path.read_text(encoding="utf-8"))
    return [f"{a['rule']}: {a['message']}" for a in summary.get("alerts", [])]
