"""Executing one stage's notebook with papermill and rendering its report.

Everything here runs a kernel or writes a report; deciding what runs is :mod:`lib.run.plan`,
staging and promotion :mod:`lib.run.pipeline` and :mod:`lib.run.staging`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.core import staging_area
from lib.core.env import kernel_paths
from lib.core.errors import StageFailure
from lib.core.params import Params
from lib.run.failures import stage_failure
from lib.run.kernels import KERNEL, WarmKernel, kernel_arguments
from lib.run.records import StageOutcome, duration, now
from lib.run.report import render_html
from lib.run.stages import Stage

QUIET_KERNEL = {
    # MLflow's download progress bars are cell output: they would land in the HTML reports.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


@dataclass(frozen=True)
class Execution:
    """How stages are executed in one run.

    Parameters
    ----------
    notebooks_dir
        Where the stage notebooks are.
    hide_code
        Render reports without code cells.
    quiet
        Keep the kernels' own start-up warnings off the console (run_all without ``-v``).
    """

    notebooks_dir: Path
    hide_code: bool = False
    quiet: bool = True

    def kernel_env(self, area_root: Path | None = None) -> dict[str, str]:
        """Return the variables a stage's kernel gets on top of run_all's environment."""
        env = {**kernel_paths(), **QUIET_KERNEL}
        return env | ({staging_area.ENV: str(area_root)} if area_root else {})


def kernel_pids() -> list[int]:
    """Return the ipykernel processes this process started (papermill's kernel)."""
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any("ipykernel" in part for part in child.cmdline()):
                found.append(child.pid)
    return found


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
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


def warm_kernel(stage: Stage, data_dir: Path, how: Execution) -> tuple[str, WarmKernel]:
    """Start ``stage``'s kernel ahead, told where its staging area will be."""
    name = staging_area.area_name(stage.name)
    root = staging_area.area_root(data_dir, name)
    env = {**os.environ, **how.kernel_env(root)}
    return name, WarmKernel(how.notebooks_dir, env, kernel_arguments(how.quiet))


def _papermill(
    stage: Stage,
    params: Params,
    output: Path,
    how: Execution,
    area: staging_area.Staging | None,
    km: Any,
) -> StageFailure | None:
    """Execute the notebook into ``output``; return how it failed (None: it succeeded)."""
    import papermill

    timeout = params.run.cell_timeout
    progress = {"desc": stage.name, "leave": False} if sys.stderr.isatty() else False
    started = (lambda **_: area.record_kernels(kernel_pids())) if area else None
    try:
        with environ(how.kernel_env(area.root if area else None)):
            papermill.execute_notebook(
                str(how.notebooks_dir / stage.notebook),
                str(output),
                parameters=params.section_dicts(stage.sections),
                kernel_name=KERNEL,
                log_output=True,
                progress_bar=progress,
                cwd=str(how.notebooks_dir),
                execution_timeout=timeout or None,
                on_notebook_start=started,
                extra_arguments=kernel_arguments(how.quiet),
                **({"km": km} if km is not None else {}),
            )
    except Exception as exc:  # a failing notebook is reported, not raised
        return stage_failure(stage.notebook, exc, output, timeout)
    return None


def run_stage(
    stage: Stage,
    params: Params,
    reports_dir: Path,
    how: Execution,
    *,
    area: staging_area.Staging | None = None,
    km: Any = None,
) -> StageOutcome:
    """Execute one notebook and render its report; never raises for a failing notebook.

    With a staging ``area`` the notebook writes its outputs there and a good report is rendered
    there too, for the promotion to put in place; without one they go straight to their final
    place. A failed run renders ``<stem>.failed.html`` in place; the last good report and
    outputs are left untouched. ``km`` is a kernel already started for the stage
    (``lib.run.kernels``); without one papermill starts a kernel.
    """
    started = time.perf_counter()
    tmp_nb = reports_dir / f".{stage.stem}.{uuid.uuid4().hex[:8]}.tmp.ipynb"
    try:
        failure = _papermill(stage, params, tmp_nb, how, area, km)
        outcome = StageOutcome(
            stage,
            "ok" if failure is None else "failed",
            time.perf_counter() - started,
            failure,
            finished_at=now(),
        )
        _render(outcome, params, tmp_nb, reports_dir, how.hide_code, area)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_nb.unlink()
    if failure is None and area is None:
        for stale in (f"{stage.stem}.failed.html", f"{stage.stem}.failed.ipynb"):
            with contextlib.suppress(FileNotFoundError):
                (reports_dir / stale).unlink()
    return outcome


def _render(
    outcome: StageOutcome,
    params: Params,
    executed: Path,
    reports_dir: Path,
    hide_code: bool,
    area: staging_area.Staging | None,
) -> None:
    """Render the executed notebook's report and keep the notebook beside it."""
    stem = outcome.stage.stem
    banner = {
        "stage": stem,
        "status": outcome.status,
        "duration": duration(outcome.seconds),
        "params_digest": params.digest(),
        "finished_at": outcome.finished_at,
        "error": outcome.error,
    }
    suffix = "" if outcome.status == "ok" else ".failed"
    html = reports_dir / f"{stem}{suffix}.html"
    notebook = reports_dir / f"{stem}{suffix}.ipynb"
    if area is not None and outcome.status == "ok":
        html, notebook = area.staged(html), area.staged(notebook)
        for stale in (".failed.html", ".failed.ipynb"):  # a good run retires them
            area.staged(reports_dir / f"{stem}{stale}").unlink(missing_ok=True)
    if executed.exists():
        render_html(executed, html, banner=banner, hide_code=hide_code)
        os.replace(executed, notebook)
