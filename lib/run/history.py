"""Recent runs for ``reports/index.html``: their outcome, archived reports and MLflow runs.

``status.json`` holds the current state of every stage and, under ``history``, one entry per
finished (or interrupted) run_all, newest first. The reports a run produced are kept under
``reports/runs/<run id>/`` as hard links (no copy until a later run replaces the report).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lib.core.contracts.status import HistoryEntry, HistoryStage, StageRecord, Status
from lib.core.logs import get_logger
from lib.core.params import Params
from lib.core.tracking import mlflow_ui
from lib.run.stages import STAGES, Stage

log = get_logger(__name__)

RUNS_DIR = "runs"


def close_run(reports_dir: Path, status: Status, keep: int = 20) -> Status:
    """Add the current run to the history, archive the reports it made, drop the oldest runs.

    Parameters
    ----------
    reports_dir
        The reports folder.
    status
        The status (``run`` describes the run being closed).
    keep
        How many runs the history keeps.

    Returns
    -------
    Status
        The status with the run at the head of its history.
    """
    run_id = status.run.id or "unknown"
    stages = [
        _history_stage(reports_dir, name, saved, run_id)
        for name, saved in ((s.name, status.stages.get(s.name)) for s in STAGES)
        if saved is not None
    ]
    run = status.run
    entry = HistoryEntry(
        id=run.id,
        started_at=run.started_at,
        finished_at=run.finished_at,
        status=run.status,
        note=run.note,
        params_digest=run.params_digest,
        stages=stages,
    )
    history = [entry, *(h for h in status.history if h.id != run_id)]
    for dropped in history[keep:]:
        shutil.rmtree(reports_dir / RUNS_DIR / str(dropped.id), ignore_errors=True)
    return status.model_copy(update={"history": history[:keep]})


def _history_stage(reports_dir: Path, name: str, saved: StageRecord, run_id: str) -> HistoryStage:
    """Return one stage of the closed run, its report archived if the run made it."""
    ran = saved.run == run_id
    report = saved.report if ran else None
    if report and (reports_dir / report).exists():
        archive = reports_dir / RUNS_DIR / run_id
        archive.mkdir(parents=True, exist_ok=True)
        _link(reports_dir / report, archive / report)
        report = f"{RUNS_DIR}/{run_id}/{report}"
    elif not ran:
        report = _archived(reports_dir, saved)
    return HistoryStage(
        stage=name,
        status=saved.status if ran else "up to date",
        duration=saved.duration if ran else None,
        reason=saved.reason,
        report=report,
        error=saved.error if ran else None,
        mlflow_runs=saved.mlflow_runs or [],
    )


def _archived(reports_dir: Path, saved: StageRecord) -> str | None:
    """Return the archived report of the run that last ran a stage, if it is still kept."""
    if not saved.run or not saved.report:
        return None
    path = Path(RUNS_DIR) / saved.run / saved.report
    return str(path) if (reports_dir / path).exists() else None


def _link(src: Path, dst: Path) -> None:
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another file system: copy
        shutil.copy2(src, dst)


def stage_runs(stage: Stage, params: Params) -> list[dict[str, str]]:
    """Return the MLflow runs a stage wrote to: the challenger's run for train and evaluate.

    Empty for the other stages, and when the registry cannot be read (the links are a
    convenience: never a reason to fail a promotion).
    """
    if stage.name not in ("train", "evaluate"):
        return []
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from lib.core import tracking
    from lib.core.contracts.tags import read_version_tags
    from lib.core.errors import QuireError

    try:
        version = tracking.version_by_alias(tracking.model_name(params), tracking.CHALLENGER)
        run_id = read_version_tags(version.tags).run_id or version.run_id
        experiment = MlflowClient().get_run(run_id).info.experiment_id
    except (MlflowException, QuireError, OSError) as exc:
        log.warning("mlflow_runs_not_linked", stage=stage.name, error=str(exc)[:200])
        return []
    return [
        {
            "run_id": run_id,
            "label": f"{version.name} v{version.version}",
            "url": f"{mlflow_ui()}/#/experiments/{experiment}/runs/{run_id}",
        }
    ]
