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

import functools
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from lib.core.contracts import predlog
from lib.core.errors import DataValidationError, ParamsError
from lib.core.logs import get_logger
from lib.core.params import Params
from lib.data.drift import DriftReport
from lib.data.schema import Schema
from lib.model.reference import output_kinds
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
from lib.monitoring.stream import stream_drift

log = get_logger(__name__)
PARQUET = (".parquet", ".pq")


@dataclass(frozen=True)
class Streamed:
    """The sampled current side and the exact whole-period drift of every row."""

    current: Current
    features: DriftReport
    outputs: DriftReport | None  # None when the files hold no model outputs (score the sample)


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
    timed = from_log and (m.since is not None or m.until is not None)
    try:
        result = stream_drift(
            paths,
            ref.profile,
            columns=[*kinds, *outputs],
            methods=m.methods,
            thresholds=m.thresholds,
            drift_share=m.drift_share,
            backend="dask" if m.backend == "dask" else "stream",
            scheduler=m.dask_scheduler,
            workers=m.dask_workers,
            sample_rows=m.sample_rows,
            seed=params.project.seed,
            time_column=predlog.TIME if timed else None,
            since=predlog.utc(m.since) if timed and m.since else None,
            until=predlog.utc(m.until) if timed and m.until else None,
            prepare=None if from_log else functools.partial(_conformed, schema),
        )
    except DataValidationError as exc:
        if exc.check == "no_rows" and folder is not None and timed:
            raise empty_window(params, folder) from None
        raise
    sample = result.sample if result.sample is not None else pd.DataFrame()
    if from_log:
        sample = sample.sort_values(
            [predlog.TIME, predlog.REQUEST_ID, predlog.ROW], kind="stable", ignore_index=True
        )
        source = "log"
    else:  # conformed batch by batch as read (prepare)
        source = ";".join(str(p) for p in paths)
    current = current_of(params, schema, sample, source, scorer, total_rows=result.rows)
    overall = result.overall.columns
    log.info("streamed", backend=m.backend, rows=result.rows, sampled=len(sample), files=len(paths))
    return Streamed(
        current=current,
        features=DriftReport([c for c in overall if c.column in kinds], m.drift_share, result.rows),
        outputs=DriftReport([c for c in overall if c.column in outputs], 0.5, result.rows)
        if outputs
        else None,
    )


def _conformed(schema: Schema, frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Parse a batch of a current file as the memory backend parses the whole file."""
    return conform(frame, schema, path)
