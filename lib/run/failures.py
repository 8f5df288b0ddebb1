"""A failed notebook run as a :class:`lib.core.errors.StageFailure`: notebook, cell, error, hint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lib.core.errors import StageFailure


def _cells(executed: Path) -> list[Any] | None:
    import nbformat

    try:
        return list(nbformat.read(executed, as_version=4).cells)
    except (OSError, ValueError):
        return None


def source_position(executed: Path, cell_index: int) -> int:
    """1-based position in the committed notebook of an executed notebook's cell."""
    cells = _cells(executed)
    if cells is None:
        return cell_index + 1
    # papermill counts cells before it adds its error banner and anchor cells; drop those, then
    # discount the injected-parameters cell it added after the parameters cell.
    tags = [c.metadata.get("tags", []) for c in cells]
    tags = [t for t in tags if "papermill-error-cell-tag" not in t]
    shift = sum(1 for i, t in enumerate(tags) if "injected-parameters" in t and i < cell_index)
    return cell_index - shift + 1


def last_started(executed: Path) -> int | None:
    """Index of the last cell papermill started in an executed notebook (None: unreadable)."""
    cells = _cells(executed)
    if cells is None:
        return None
    started = [i for i, c in enumerate(cells) if c.metadata.get("papermill", {}).get("start_time")]
    return started[-1] if started else None


# Quire's own errors list every problem on its own line (lib.data.preflight): keep them all.
_WHOLE = ("ParamsError", "DataValidationError")
_MAX_LINES = 40


def _first_line(text: object) -> str:
    stripped = str(text).strip()
    return stripped.splitlines()[0] if stripped else ""


def _message(ename: str, evalue: object) -> str:
    if ename not in _WHOLE:
        return _first_line(evalue)
    return "\n".join(str(evalue).strip().splitlines()[:_MAX_LINES])


def stage_failure(
    notebook: str, exc: BaseException, executed: Path, timeout: int = 0
) -> StageFailure:
    """Return how the notebook failed: the cell, the error, and what to do about it.

    Parameters
    ----------
    notebook
        The notebook's file name.
    exc
        What papermill raised.
    executed
        The executed copy papermill wrote (to find the failing cell in).
    timeout
        ``run.cell_timeout`` (seconds; 0: no limit).
    """
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return StageFailure(
            notebook,
            source_position(executed, exc.cell_index),
            exc.ename,
            _message(exc.ename, exc.evalue or ""),
            report_cell=exc.exec_count,
        )
    index = last_started(executed)
    cell = source_position(executed, index) if index is not None else None
    if isinstance(exc, CellTimeoutError):
        return StageFailure(
            notebook,
            cell,
            None,
            f"the cell ran longer than run.cell_timeout = {timeout} s and was stopped",
            "make it faster, or raise run.cell_timeout in params (0: no limit)",
        )
    if isinstance(exc, DeadKernelError):
        return StageFailure(
            notebook,
            cell,
            None,
            "the kernel died while running it (killed, out of memory, or a crash in native code)",
            "check memory use and the data size, then rerun",
        )
    return StageFailure(notebook, cell, type(exc).__name__, _first_line(exc))
