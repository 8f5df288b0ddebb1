"""The monitor stage's current side in bounded memory (``monitor.backend: stream | dask``).

The current Parquet data - the prediction log's parts, or the files ``monitor.current`` names -
is read once, a batch at a time (:func:`lib.monitoring.stream.stream_drift`, on a
dask.distributed cluster with ``dask``). That one pass gives:

- the whole-period drift of the checked features and, when the files hold them (the log does),
  of the model's outputs: exact over every row, from mergeable summaries, with the verdicts
  :func:`lib.data.drift.check_drift` gives on the same rows;
- a uniform random sample of ``monitor.sample_rows`` rows (seeded by ``project.seed``), which
  becomes the :class:`~lib.monitoring.inputs.Current` every other analysis reads: drift,
  quality and performance per window, labels, the estimates and the plots. When the data has
  no more rows than that, the sample is every row, in the order the memory backend reads them,
  and the stage's results are the memory backend's.

Memory is one batch, the summaries and the sample, whatever the size of the log.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from lib.core.contracts import predlog
from lib.core.errors import DataValidationError, ParamsError
from lib.core.logs import get_logger
from lib.core.params import Params
from lib.core.windowspec import period_alias, row_label, row_window_size
from lib.data.drift import DriftReport
from lib.data.drift_profile import Profile, profile_column
from lib.data.schema import Schema
from lib.model.reference import output_kinds
from lib.monitoring import windows
from lib.monitoring.findings import time_column_name
from lib.monitoring.inputs import (
    Current,
    Reference,
    Scorer,
    conform,
    current_of,
    current_paths,
    empty_window,
    log_parts,
)
from lib.monitoring.stream import Windows, count_rows, stream_drift, whole
from lib.monitoring.stream_sample import ROW
from lib.monitoring.window_drift import Exact
from lib.monitoring.window_drift import output_kinds as window_output_kinds

log = get_logger(__name__)
PARQUET = (".parquet", ".pq")


@dataclass(frozen=True)
class Streamed:
    """The sampled current side and the exact whole-period drift of every row."""

    current: Current
    features: DriftReport
    outputs: DriftReport | None  # None when the files hold no model outputs (score the sample)
    cut: list[windows.Window] | None  # row windows: the sample cut as all the rows are
    exact: Exact  # every row's summaries per window (keys as the windows') and overall


def stream_current(
    params: Params,
    schema: Schema,
    model: str,
    scorer: Scorer,
    ref: Reference,
    kinds: dict[str, object],
) -> Streamed:
    """Read the current data in one bounded pass: exact drift, and a sample for the rest."""
    m = params.monitor
    from_log = params.monitor_current() == "log"
    folder, paths = log_parts(params, model) if from_log else (None, current_paths(params))
    text = [p for p in paths if p.suffix.lower() not in PARQUET]
    if text:
        raise ParamsError(
            f"{text[0]}: monitor.backend: {m.backend} reads Parquet files only; convert it "
            "(pandas: pd.read_csv(path).to_parquet(new_path)) and point monitor.current at the "
            "Parquet file, or set monitor.backend: memory",
            key="monitor.backend",
        )
    names = pq.read_schema(paths[0]).names
    outputs = [n for n in output_kinds(schema) if n in ref.profile.columns and n in names]
    # the outputs the per-window check scores that the saved profile lacks (a binary model's
    # proba_0): profiled from the reference rows, as window_drift profiles them
    checked = window_output_kinds(ref.frame, pd.DataFrame(columns=names))
    extra = {
        n: profile_column(n, ref.frame[n], kind)
        for n, kind in checked.items()
        if n not in ref.profile.columns
    }
    profile = Profile(ref.profile.rows, {**ref.profile.columns, **extra})
    timed = from_log and (m.since is not None or m.until is not None)
    since = predlog.utc(m.since) if timed and m.since else None
    until = predlog.utc(m.until) if timed and m.until else None
    spec = windows.parse_spec(m.window, default_count=m.windows)
    clock = time_column_name(names, schema, m, from_log)
    size = _window_size(spec, paths, predlog.TIME if timed else None, since, until)
    if spec.kind == "period":
        if clock is None:
            windows.split(0, spec)  # the memory backend's error: no time column to cut by
        cut_by = Windows(date_column=clock, period=period_alias(spec.period or ""))
    else:
        cut_by = Windows(rows=size)
    try:
        result = stream_drift(
            paths,
            profile,
            columns=[*kinds, *outputs, *extra],
            methods=m.methods,
            thresholds=m.thresholds,
            drift_share=m.drift_share,
            windows=cut_by,
            backend="dask" if m.backend == "dask" else "stream",
            scheduler=m.dask_scheduler,
            workers=m.dask_workers,
            sample_rows=m.sample_rows,
            seed=params.project.seed,
            time_column=predlog.TIME if timed else None,
            since=since,
            until=until,
            prepare=None if from_log else functools.partial(_conformed, schema),
            distinct=[predlog.MODEL_VERSION] if from_log else [],
        )
    except DataValidationError as exc:
        if exc.check == "no_rows" and folder is not None and timed:
            raise empty_window(params, folder) from None
        raise
    assert result.sample is not None and result.positions is not None
    assert result.summaries is not None
    sample = result.sample.assign(**{ROW: result.positions})
    if from_log:  # as the memory backend orders the log
        sample = sample.sort_values(
            [predlog.TIME, predlog.REQUEST_ID, predlog.ROW], kind="stable", ignore_index=True
        )
    positions = sample.pop(ROW).to_numpy()
    source = "log" if from_log else ";".join(str(p) for p in paths)
    current = current_of(params, schema, sample, source, scorer, total_rows=result.rows)
    if from_log:  # every version that served a row, not only those in the sample
        current = dataclasses.replace(current, versions=result.distinct[predlog.MODEL_VERSION])
    by_key = result.summaries
    cut = None
    if spec.kind != "period":  # the sample cut where the windows of all the rows are
        cut = _row_cut(positions, size, result.rows)
        by_key = {row_label(int(k) * size, size, result.rows): v for k, v in by_key.items()}
    overall = result.overall.columns
    log.info("streamed", backend=m.backend, rows=result.rows, sampled=len(sample), files=len(paths))
    return Streamed(
        current=current,
        features=DriftReport([c for c in overall if c.column in kinds], m.drift_share, result.rows),
        outputs=DriftReport([c for c in overall if c.column in outputs], 0.5, result.rows)
        if outputs
        else None,
        cut=cut,
        exact=Exact(by_key, whole(result.summaries)),
    )


def _window_size(
    spec: windows.WindowSpec,
    paths: list[Path],
    time_column: str | None,
    since: pd.Timestamp | None,
    until: pd.Timestamp | None,
) -> int:
    """Return the rows of each row window of all the rows (as ``windows.split`` cuts them)."""
    if spec.kind == "period":
        return 0
    total = sum(count_rows(paths, time_column, since, until)) if spec.kind == "count" else 0
    return row_window_size(spec, total)


def _row_cut(positions: np.ndarray, size: int, total: int) -> list[windows.Window]:
    """Cut the sample (its rows' ``positions`` among all rows) into the row windows of all."""
    keys = positions // size
    return [
        windows.Window(row_label(int(k) * size, size, total), np.flatnonzero(keys == k))
        for k in np.unique(keys)
    ]


def _conformed(schema: Schema, frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Parse a batch of a current file as the memory backend parses the whole file."""
    return conform(frame, schema, path)
