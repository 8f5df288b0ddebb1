"""``summary.json``: the headline facts of the latest monitor run.

Written by the monitor stage into ``<data_dir>/monitoring/<model>/latest/`` (:func:`write_summary`)
and read by the dashboard, run_all (its digest of the monitor stage, ``--fail-on-alert`` and
``--status``) and the demo (:func:`read_summary`). The JSON on disk is the model's fields as they
are named here, keys in this order, indented by one space; NaN is written as ``NaN``. Keys a
summary was written without (or with, by a later version) are kept as they were when it is
written back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from lib.core.atomic import write_text
from lib.core.contracts.files import read_json_model


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class ReferenceSide(_Frozen):
    """What the run compared against: its source (a folder or file) and rows."""

    source: str
    rows: int


class CurrentSide(_Frozen):
    """The rows checked: their source (``log``, or files), rows, labelled rows, model versions.

    ``sampled_rows``: with ``monitor.backend`` stream or dask, the rows of the uniform sample the
    per-window analyses other than drift (and ``labelled``) were computed on; ``rows`` is then
    every row, over which the drift (whole period and per window) and ``model_versions`` are
    exact. None: every row was read.
    """

    source: str
    rows: int
    labelled: int
    model_versions: list[str]
    sampled_rows: int | None = None


class Concept(_Frozen):
    """The diagnosis of the run: concept drift, covariate shift or none, and why.

    ``drift`` is true only when the diagnosis is concept drift (realized performance fell below
    what the label-free estimate explains; :mod:`lib.monitoring.diagnosis`). Without labels
    ``checked`` is false and ``drift`` false, but ``kind`` may still say covariate shift (from
    drift and the estimate). ``alarm_*`` is the Page-Hinkley alarm on the error stream, kept as
    supporting evidence only.
    """

    checked: bool
    drift: bool
    reason: str
    alarm_row: int | None = None  # 0-based labelled row of the Page-Hinkley alarm
    alarm_time: str | None = None
    reference_error: float | None = None
    current_error: float | None = None
    kind: str | None = None  # concept drift | covariate shift | none (None: written before #18)
    windows: list[str] | None = None  # the current windows of that kind
    features: list[str] | None = None  # the features that moved most there, most first
    segment: dict[str, Any] | None = None  # column, segment, rows, reference/current error


class AlertRecord(_Frozen):
    """One alert the run fired."""

    rule: str
    severity: str  # warning | critical
    message: str
    details: dict[str, Any]


class WebhookRecord(_Frozen):
    """What became of the alerts' webhook delivery."""

    url: str | None
    delivered: bool
    attempts: int
    error: str | None = None


class MonitorSummary(_Frozen):
    """The headline facts of one monitor run (``latest/summary.json``)."""

    run_id: str
    time: str  # ISO 8601, UTC
    model: str
    version: str | None
    task: str
    reference: ReferenceSide
    current: CurrentSide
    dataset_drift: bool
    drifted_share: float
    drift_share_threshold: float
    drifted: list[str]
    prediction_drifted: list[str]
    reference_metrics: dict[str, dict[str, float]] | None  # metric -> value, ci_low, ci_high
    current_metrics: dict[str, dict[str, float]] | None
    concept: Concept
    missing_jumps: dict[str, float]  # column -> rise in its missing share
    alerts: list[AlertRecord]
    webhook: WebhookRecord | None = None  # None: no alert fired
    verdict: str
    lineage: dict[str, Any] | None = None  # the monitored version's provenance

    def as_json(self) -> dict[str, Any]:
        """Return the mapping written to disk: every field given or read, in field order."""
        return self.model_dump(exclude_unset=True)


def write_summary(path: Path, summary: MonitorSummary) -> None:
    """Write ``summary`` to ``path`` (replaced atomically)."""
    text = json.dumps(summary.as_json(), indent=1, default=str, allow_nan=True) + "\n"
    write_text(path, text)


def read_summary(path: Path) -> MonitorSummary:
    """Read the summary at ``path``; a missing or unreadable one names the file and the fix.

    Raises
    ------
    DataValidationError
        When the file is missing (``check="missing_file"``), is not JSON or lacks a field
        (``check="summary"``).
    """
    return read_json_model(
        path,
        MonitorSummary,
        what="a monitoring summary",
        missing="no monitoring results yet",
        fix="run the monitor stage (python run_all.py --only monitor)",
        check="summary",
    )
