"""One error hierarchy for Quire.

Every message says what was expected, what was found, where (file, row, column or parameter key)
and how to fix it. The structured fields let callers (run_all, the server) report without parsing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class QuireError(Exception):
    """Base class of every error Quire raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ParamsError(QuireError):
    """A parameter file, environment variable or override is invalid.

    Parameters
    ----------
    message
        The full explanation.
    key
        Dotted parameter key, e.g. ``train.cv_folds``, when one is at fault.
    source
        Where the value came from: a file path, ``env QUIRE__...`` or ``-p``.
    """

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.source = source


class DataValidationError(QuireError):
    """Input data fails a hard check (unreadable, wrong shape, wrong type, ...).

    Parameters
    ----------
    message
        The full explanation.
    path
        The file at fault, when known.
    row
        1-based data row (the header is row 0), when known.
    column
        Column name, when known.
    check
        Short name of the failed check, e.g. ``wrong_type``.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
        check: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = str(path) if path is not None else None
        self.row = row
        self.column = column
        self.check = check


class ModelNotFoundError(QuireError):
    """A model, version or alias asked for does not exist."""


class ClusterError(QuireError):
    """A dask.distributed cluster failed the work it was given (a worker lost, a task failed)."""


class StageError(QuireError):
    """A pipeline stage (notebook) failed.

    Parameters
    ----------
    message
        One line naming the notebook, the cell and the error.
    stage
        Stage name, e.g. ``ingest``.
    cell
        0-based index of the failing cell in the executed notebook, when known.
    """

    def __init__(self, message: str, *, stage: str, cell: int | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.cell = cell


@dataclass(frozen=True)
class StageFailure:
    """How a stage's notebook failed, as run_all reports it (a value, not raised).

    Parameters
    ----------
    notebook
        The notebook's file name, e.g. ``01_ingest.ipynb``.
    cell
        1-based position of the failing cell in the committed notebook, when known.
    exception
        The exception's class name (``DataValidationError``), or None when the kernel was
        stopped or died rather than raised.
    message
        What went wrong (first line of the exception's message).
    hint
        How to fix it, when run_all knows.
    report_cell
        The cell's execution count (``In [n]`` in the rendered report), when it raised.
    """

    notebook: str
    cell: int | None
    exception: str | None
    message: str
    hint: str | None = None
    report_cell: int | None = None

    @property
    def line(self) -> str:
        """The one line run_all prints and status.json records."""
        where = f" in cell {self.cell}" if self.cell is not None else ""
        if self.report_cell is not None:
            where += f" (In [{self.report_cell}] in the report)"
        what = f"{self.exception}: {self.message}" if self.exception else self.message
        return f"{self.notebook} failed{where}: {what}" + (f"; {self.hint}" if self.hint else "")

    def __str__(self) -> str:
        return self.line


class ServerUnavailableError(QuireError):
    """The model server did not answer, or refused the replay, before any row was sent.

    Parameters
    ----------
    message
        The full explanation.
    url
        The server's base URL.
    """

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url
