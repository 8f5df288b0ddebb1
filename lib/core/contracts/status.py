"""``reports/status.json``: run_all's record of every stage, the current run and recent runs.

:func:`write_status` is its one writer and :func:`read_status` its one reader. The models keep
the file's format: only the keys a record was given are written (``exclude_unset``), in the
order they have always had, and keys this version does not know are kept as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from lib.core.atomic import write_text


class _Record(BaseModel):
    """A JSON object of status.json: unknown keys survive a read and a write."""

    model_config = ConfigDict(extra="allow")


class StageRecord(_Record):
    """One stage's current entry (``stages.<name>``).

    ``inputs`` are the fingerprint components it last succeeded with, ``outputs`` the digest of
    what it produced, ``run`` the id of the run that last ran it.
    """

    status: str
    duration: str | None = None
    params_digest: str | None = None
    finished_at: str | None = None
    report: str | None = None
    error: str | None = None
    reason: str | None = None
    inputs: dict[str, str] | None = None
    outputs: str | None = None
    run: str | None = None
    mlflow_runs: list[dict[str, str]] | None = None


class RunRecord(_Record):
    """The current (or last) run_all (``run``); empty before the first run."""

    id: str | None = None
    dataset: str | None = None
    params_digest: str | None = None
    started_at: str | None = None
    status: str | None = None
    pid: int | None = None
    finished_at: str | None = None
    note: str | None = None
    orphans_closed: bool | None = None


class HistoryStage(_Record):
    """One stage of a finished run, as the index's recent runs show it."""

    stage: str
    status: str | None = None
    duration: str | None = None
    reason: str | None = None
    report: str | None = None
    error: str | None = None
    mlflow_runs: list[dict[str, str]] = Field(default_factory=list)


class HistoryEntry(_Record):
    """One finished (or interrupted) run, newest first under ``history``."""

    id: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    status: str | None = None
    note: str | None = None
    params_digest: str | None = None
    stages: list[HistoryStage] = Field(default_factory=list)


class Status(_Record):
    """The whole of status.json."""

    run: RunRecord = Field(default_factory=RunRecord)
    stages: dict[str, StageRecord] = Field(default_factory=dict)
    history: list[HistoryEntry] = Field(default_factory=list)


def empty_status() -> Status:
    """Return the status of a project where nothing ran yet (``run`` and ``stages`` empty)."""
    return Status(run=RunRecord(), stages={})


def read_status(path: Path) -> Status:
    """Return the status saved at ``path`` (empty when nothing ran yet).

    Parameters
    ----------
    path
        ``reports/status.json`` (``Layout.status``).

    Returns
    -------
    Status
        The saved record.
    """
    if not path.exists():
        return empty_status()
    return Status.model_validate_json(path.read_text(encoding="utf-8"))


def write_status(path: Path, status: Status) -> None:
    """Save ``status`` at ``path`` atomically, in status.json's format.

    Parameters
    ----------
    path
        ``reports/status.json`` (``Layout.status``).
    status
        The record to save.
    """
    payload = status.model_dump(mode="json", exclude_unset=True)
    write_text(path, json.dumps(payload, indent=2) + "\n")
