"""Every path of a Quire project, in one place.

A project's files live under three folders from params (``project.data_dir``,
``project.reports_dir``, ``project.logs_dir``) plus the MLflow store. :class:`Layout` names each
file and folder a stage, the server, the dashboard or run_all reads or writes, so that no module
builds a path by hand. The paths that are a stage's outputs pass through the staging remap
(:func:`lib.core.staging_area.location`): inside a staged stage run they point into its staging
area, everywhere else at the published place. ``Layout(..., staged=False)`` gives the published
places in any case (run_all's own view, which digests and promotes them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lib.core import staging_area
from lib.core.paths import resolve

if TYPE_CHECKING:
    from lib.core.params import Params

EVIDENTLY_REPORT = "04_monitor_evidently.html"  # the monitor stage's Evidently report
MANIFEST = "manifest.json"  # in the processed folder: what ingest produced from what
SUMMARY = "summary.json"  # in a monitoring run's folder
LATEST = "latest"  # the latest monitoring run's folder
INDEX = "index.html"  # in the reports folder: every stage's report and the recent runs
STATUS = "status.json"  # in the reports folder: run_all's record of every stage
LOCK = ".run_all.lock"  # in the data folder: one run_all at a time
LOG_PARTS = "part-*.parquet"  # the prediction log's files


def raw_dir(data: str | Path) -> Path:
    """Return the folder of immutable input files (the generator's output, feedback snapshots)."""
    return resolve(data) / "raw"


def predictions_dir(data: str | Path, model: str) -> Path:
    """Return the folder of a model's prediction log (``part-*.parquet``, written by the server)."""
    return resolve(data) / "predictions" / model


def feedback_dir(data: str | Path, model: str) -> Path:
    """Return the folder of a model's label files (``POST /feedback`` or dropped in by hand)."""
    return resolve(data) / "feedback" / model


def reference_dir(data: str | Path, model: str, version: str, *, staged: bool = True) -> Path:
    """Return one model version's monitoring reference (evaluate's output)."""
    path = resolve(data) / "reference" / model / f"v{version}"
    return staging_area.location(path) if staged else path


@dataclass(frozen=True)
class Layout:
    """The paths of one project (and one registered model).

    Parameters
    ----------
    data, reports, logs
        The project's folders, absolute.
    dataset
        ``project.name``: the processed data's folder name.
    model
        The registered model's name (``lib.core.tracking.model_name``).
    staged
        Map stage outputs into the running stage's staging area (the default inside a stage).
    """

    data: Path
    reports: Path
    logs: Path
    dataset: str
    model: str
    staged: bool = True

    @classmethod
    def of(cls, params: Params, *, model: str | None = None, staged: bool = True) -> Layout:
        """Return the layout of the project ``params`` describe (its model unless ``model``)."""
        project = params.project
        name = model or params.mlflow.model_name or f"quire-{project.name}"
        return cls(
            resolve(project.data_dir),
            resolve(project.reports_dir),
            resolve(project.logs_dir),
            project.name,
            name,
            staged,
        )

    def _out(self, path: Path) -> Path:
        return staging_area.location(path) if self.staged else path

    # ingest
    @property
    def raw(self) -> Path:
        """Immutable input files (the generator's output, feedback snapshots)."""
        return raw_dir(self.data)

    @property
    def processed(self) -> Path:
        """Ingest's output: splits, schema, preprocessor, manifest (a stage output)."""
        return self._out(self.data / "processed" / self.dataset)

    @property
    def manifest(self) -> Path:
        """Ingest's manifest of what it produced from what."""
        return self.processed / MANIFEST

    # evaluate
    @property
    def references(self) -> Path:
        """Every version's monitoring reference (evaluate's output)."""
        return self._out(self.data / "reference" / self.model)

    def reference(self, version: str) -> Path:
        """One model version's monitoring reference."""
        return reference_dir(self.data, self.model, version, staged=self.staged)

    # serving and the loop
    @property
    def predictions(self) -> Path:
        """The server's prediction log (``part-*.parquet``)."""
        return predictions_dir(self.data, self.model)

    @property
    def feedback(self) -> Path:
        """Label files for served predictions."""
        return feedback_dir(self.data, self.model)

    # monitor
    @property
    def monitoring(self) -> Path:
        """The monitor stage's results: history, alerts, ``latest/`` (a stage output)."""
        return self._out(self.data / "monitoring" / self.model)

    @property
    def monitoring_latest(self) -> Path:
        """The latest monitor run's folder."""
        return self.monitoring / LATEST

    @property
    def monitoring_summary(self) -> Path:
        """The latest monitor run's summary."""
        return self.monitoring_latest / SUMMARY

    @property
    def evidently_report(self) -> Path:
        """The monitor stage's Evidently report (a stage output)."""
        return self._out(self.reports / EVIDENTLY_REPORT)

    # run_all
    @property
    def status(self) -> Path:
        """run_all's record of every stage."""
        return self.reports / STATUS

    @property
    def index(self) -> Path:
        """The reports' index page."""
        return self.reports / INDEX

    def report(self, stem: str, suffix: str = ".html") -> Path:
        """Return a stage's report (``.html``, ``.ipynb``, ``.failed.html``, ``.failed.ipynb``)."""
        return self.reports / f"{stem}{suffix}"

    def run_log(self, stamp: str) -> Path:
        """Return the JSON-lines log file of the run_all run started at ``stamp``."""
        return self.logs / f"run_all-{stamp}.jsonl"

    @property
    def run_lock(self) -> Path:
        """The file run_all locks."""
        return self.data / LOCK

    @property
    def staging(self) -> Path:
        """Staging areas (and the promotion journal) under the data folder."""
        return self.data / staging_area.AREA
