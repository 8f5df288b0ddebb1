"""Recent runs for ``reports/index.html``: their outcome, archived reports and MLflow runs.

``status.json`` holds the current state of every stage and, under ``history``, one entry per
finished (or interrupted) run_all, newest first. The reports a run produced are kept under
``reports/runs/<run id>/`` as hard links (no copy until a later run replaces the report).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from lib.core.logs import get_logger
from lib.core.params import Params
from lib.core.tracking import mlflow_ui
from lib.run.stages import STAGES, Stage

log = get_logger(__name__)

RUNS_DIR = "runs"


def close_run(reports_dir: Path, status: dict[str, Any], keep: int = 20) -> dict[str, Any]:
    """Add the current run to the history, archive the reports it made, drop the oldest runs.

    Parameters
    ----------
    reports_dir
        The reports folder.
    status
        The status (``run`` describes the run being closed); changed in place.
    keep
        How many runs the history keeps.

    Returns
    -------
    dict
        The history entry.
    """
    run = status.get("run", {})
    run_id = run.get("id") or "unknown"
    archive = reports_dir / RUNS_DIR / run_id
    stages = []
    for stage in STAGES:
        saved = status["stages"].get(stage.name)
        if not saved:
            continue
        ran = saved.get("run") == run_id
        report = saved.get("report") if ran else None
        if report and (reports_dir / report).exists():
            archive.mkdir(parents=True, exist_ok=True)
            _link(reports_dir / report, archive / report)
            report = f"{RUNS_DIR}/{run_id}/{report}"
        elif not ran:
            report = _archived(reports_dir, saved)
        stages.append(
            {
                "stage": stage.name,
                "status": saved.get("status") if ran else "up to date",
                "duration": saved.get("duration") if ran else None,
                "reason": saved.get("reason"),
                "report": report,
                "error": saved.get("error") if ran else None,
                "mlflow_runs": saved.get("mlflow_runs") or [],
            }
        )
    entry = {**{k: run.get(k) for k in ("id", "started_at", "finished_at", "status", "note")}}
    entry["params_digest"] = run.get("params_digest")
    entry["stages"] = stages
    history = [h for h in status.get("history", []) if h.get("id") != run_id]
    history.insert(0, entry)
    for dropped in history[keep:]:
        shutil.rmtree(reports_dir / RUNS_DIR / str(dropped.get("id")), ignore_errors=True)
    status["history"] = history[:keep]
    return entry


def _archived(reports_dir: Path, saved: dict[str, Any]) -> str | None:
    """Return the archived report of the run that last ran a stage, if it is still kept."""
    if not saved.get("run") or not saved.get("report"):
        return None
    path = Path(RUNS_DIR) / saved["run"] / saved["report"]
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
    from lib.core.errors import QuireError

    try:
        version = tracking.version_by_alias(tracking.model_name(params), tracking.CHALLENGER)
        run_id = version.tags.get("quire.run_id") or version.run_id
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
