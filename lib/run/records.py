"""How stages ended, and the records run_all keeps of them in ``reports/status.json``.

The file's format is :mod:`lib.core.contracts.status`; this module builds its records from
outcomes and saves it (with the index page rendered from it).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pandas as pd

from lib.core.contracts.status import RunRecord, StageRecord, Status, read_status, write_status
from lib.core.errors import StageFailure
from lib.core.layout import Layout
from lib.core.params import Params
from lib.run.report import write_index
from lib.run.stages import Stage


@dataclass(frozen=True)
class StageOutcome:
    """How one stage ended.

    ``status`` is ``ok`` (it ran), ``up to date``, ``failed``, ``skipped`` or ``would run``
    (a dry run); ``finished_at`` is as in the report's banner.
    """

    stage: Stage
    status: str
    seconds: float
    failure: StageFailure | None = None
    reason: str = ""
    finished_at: str = ""

    @property
    def error(self) -> str | None:
        """The one-line error of a failed stage (None otherwise)."""
        return self.failure.line if self.failure else None


def now() -> str:
    """Return the time as the reports and status.json show it."""
    return pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float) -> str:
    """Return a duration as the reports show it (seconds, or minutes above two)."""
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def load(layout: Layout) -> Status:
    """Return the project's status (empty when nothing ran yet)."""
    return read_status(layout.status)


def save(layout: Layout, status: Status) -> None:
    """Save the status and re-render ``index.html`` from it."""
    write_status(layout.status, status)
    write_index(layout.reports, status)


def new_run(params: Params) -> RunRecord:
    """Return the record of a run that starts now."""
    return RunRecord(
        id=uuid.uuid4().hex[:12],
        dataset=params.project.name,
        params_digest=params.digest(),
        started_at=now(),
        status="running",
        pid=os.getpid(),
    )


def stage_record(
    outcome: StageOutcome, params: Params, run_id: str, parts: dict[str, str] | None = None
) -> StageRecord:
    """Return the stage's entry in ``status.json`` for a stage that ran (or was skipped)."""
    skipped = outcome.status == "skipped"
    suffix = "" if outcome.status == "ok" else ".failed"
    return StageRecord(
        status=outcome.status,
        duration=None if skipped else duration(outcome.seconds),
        params_digest=params.digest(),
        finished_at=outcome.finished_at or now(),
        report=None if skipped else f"{outcome.stage.stem}{suffix}.html",
        error=outcome.error,
        reason=outcome.reason,
        inputs=parts if outcome.status == "ok" else None,
        outputs=None,
        run=run_id,
    )


def not_run_record(
    saved: StageRecord | None, outcome: StageOutcome, params: Params, run_id: str
) -> StageRecord:
    """Return the entry of a stage that did not run.

    An up-to-date stage keeps its report, hashes and runs; a skipped one gets a fresh entry.
    """
    if outcome.status == "up to date":
        base = saved or StageRecord(status="up to date")
        return base.model_copy(update={"status": "up to date", "reason": outcome.reason})
    return stage_record(outcome, params, run_id)


def with_stage(status: Status, name: str, record: StageRecord) -> Status:
    """Return ``status`` with stage ``name``'s entry replaced by ``record``."""
    return status.model_copy(update={"stages": {**status.stages, name: record}})


def with_run(current: Status, /, **changes: object) -> Status:
    """Return ``current`` with its run record's fields changed (e.g. ``status="ok"``)."""
    return current.model_copy(update={"run": current.run.model_copy(update=changes)})
