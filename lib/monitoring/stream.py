"""Drift of data larger than memory: Parquet read in batches into mergeable summaries.

The current data (a prediction log, or any Parquet files) is read as an Arrow dataset, a batch
of ``batch_rows`` rows at a time and only the checked columns; each batch adds to per-window
summaries (:mod:`lib.data.drift_summary`), and the verdicts come from the summaries. Memory is
one batch plus the summaries (per window and column: the reference's grid, at most 10,000
points), whatever the number of rows.

``backend="dask"`` summarises the files on a dask.distributed cluster and merges what the
workers return as it arrives (:mod:`lib.monitoring.stream_dask`: the cluster, its failures).

Windows are numbered by row (``window_rows``: row ``i`` of the data, in file order, goes to
window ``i // window_rows``) or are the periods of a date column (``date_column`` and
``period``, a pandas frequency such as ``W`` or ``M``).

The same pass can keep a uniform random sample of the rows (``sample_rows``): every row draws a
random key (seeded per file and batch, so the stream and Dask backends keep the same rows) and
the rows of the ``sample_rows`` smallest keys are kept (:mod:`lib.monitoring.stream_sample`).
With ``since``/``until`` only the rows whose ``time_column`` lies in ``[since, until)`` are
summarised and sampled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from lib.core.errors import DataValidationError
from lib.core.logs import get_logger
from lib.data import drift_summary
from lib.data.drift import DriftReport, summary_drift, validate_columns
from lib.data.drift_profile import Profile
from lib.monitoring.stream_pass import (
    BATCH_ROWS,
    OVERALL,
    PassSpec,
    Prepare,
    Summaries,
    Windows,
    count_rows,
    merge,
    summarise_files,
    whole,
)
from lib.monitoring.stream_sample import KEY, ROW

__all__ = ["OVERALL", "StreamResult", "Windows", "count_rows", "merge", "stream_drift", "whole"]
log = get_logger(__name__)


@dataclass(frozen=True)
class StreamResult:
    """Per-window drift reports and the report over all rows."""

    windows: dict[Any, DriftReport]
    overall: DriftReport
    rows: int
    sample: pd.DataFrame | None = None  # the sampled rows in file order (sample_rows > 0)
    positions: np.ndarray | None = None  # each sampled row's number among all the rows kept
    distinct: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # sorted, as text
    summaries: dict[Any, dict[str, drift_summary.Summary]] | None = None  # by window label


def stream_drift(
    paths: Sequence[Path],
    profile: Profile,
    *,
    columns: Sequence[str] | None = None,
    methods: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
    windows: Windows | None = None,
    batch_rows: int = BATCH_ROWS,
    backend: str = "stream",
    scheduler: str | None = None,
    workers: int = 2,
    sample_rows: int = 0,
    seed: int = 0,
    time_column: str | None = None,
    since: pd.Timestamp | None = None,
    until: pd.Timestamp | None = None,
    prepare: Prepare | None = None,
    distinct: Sequence[str] = (),
) -> StreamResult:
    """Check the Parquet files ``paths`` for drift against ``profile``, per window and overall.

    Same columns, methods, thresholds and verdict rules as :func:`lib.data.drift.check_drift`.
    ``sample_rows`` > 0 also keeps a uniform sample of that many rows (all columns; see the
    module doc); ``since``/``until`` keep the rows of ``time_column`` in ``[since, until)``.
    ``prepare(frame, path)`` converts each batch (as a pandas frame) before it is summarised and
    sampled (it must be picklable for ``dask``); a :class:`DataValidationError` it raises naming
    a row has the row counted from the file's start. ``distinct`` columns have their distinct
    values (as text) collected over every row kept.
    """
    names = validate_columns(profile, columns, methods, thresholds)
    windows = windows or Windows()
    if (since is not None or until is not None) and time_column is None:
        raise ValueError("since/until need a time_column")
    spec = PassSpec(profile, names, dict(methods or {}), windows, batch_rows,
                 sample_rows, seed, time_column, since, until, prepare,
                 tuple(distinct))  # fmt: skip
    _check_files(paths, spec)
    if backend == "dask":
        from lib.monitoring.stream_dask import dask_summaries

        found = dask_summaries(paths, spec, scheduler, workers)
    else:
        found = summarise_files(paths, spec)
    result = _reports(found.summaries, spec, dict(thresholds or {}), drift_share)
    labelled = {windows.label(k): cols for k, cols in sorted(found.summaries.items())}
    values = {name: sorted(found.distinct.get(name, ())) for name in distinct}
    result = dataclasses.replace(result, summaries=labelled, distinct=values)
    if found.sample is None:
        return result
    sample = found.sample.sort_values(ROW, kind="stable", ignore_index=True)
    positions = sample[ROW].to_numpy(np.int64)
    return dataclasses.replace(result, sample=sample.drop(columns=[KEY, ROW]), positions=positions)


def _reports(
    merged: Summaries, spec: PassSpec, thresholds: dict[str, float], drift_share: float
) -> StreamResult:
    if not merged:
        raise DataValidationError(
            "the current data has no rows; nothing to check for drift", check="no_rows"
        )
    overall = {OVERALL: whole(merged)}

    def report(cols: dict[str, drift_summary.Summary], whole: bool = False) -> DriftReport:
        """Judge ``cols``: a window skips a column with no value; ``whole`` (all rows) fails."""
        verdicts = [
            summary_drift(spec.profile.columns[c], cols[c], spec.methods.get(c), thresholds.get(c))
            for c in spec.names
            if whole or cols[c].count > 0
        ]
        return DriftReport(verdicts, drift_share, cols[spec.names[0]].rows)

    labels = spec.windows.label
    windows = {labels(key): report(cols) for key, cols in sorted(merged.items())}
    result = report(overall[OVERALL], whole=True)
    return StreamResult(windows, result, result.current_rows)


def _check_files(paths: Sequence[Path], spec: PassSpec) -> None:
    """Fail before any work when a file is not Parquet or lacks a checked column."""
    if not paths:
        raise DataValidationError("no current Parquet files to check for drift")
    wanted = [*spec.names, *spec.windows.columns]
    for path in paths:
        try:
            names = ds.dataset(str(path), format="parquet").schema.names
        except (OSError, pa.ArrowException) as exc:
            raise DataValidationError(
                f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})", path=path
            ) from None
        absent = [c for c in wanted if c not in names]
        if absent:
            raise DataValidationError(
                f"{path}: column {absent[0]!r} is missing (missing: {absent}); monitor the "
                "columns the model was trained on, or exclude them in monitor.exclude",
                path=path,
                column=absent[0],
            )
