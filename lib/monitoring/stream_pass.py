"""One pass over Parquet files: batches read, cut into windows, summarised, sampled.

The machinery behind :func:`lib.monitoring.stream.stream_drift` (see there) that runs in the
client and on Dask workers alike: :func:`summarise_files` reads files a batch at a time
(:func:`_batches`: no pre-buffering; files whose statistics lie outside the time range are
skipped), keeps the rows of the time range, cuts them into :class:`Windows`, adds them to one
summary per window and column (:mod:`lib.data.drift_summary`) and to the sample
(:mod:`lib.monitoring.stream_sample`). What passes find merges (:func:`merge_passes`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lib.core.errors import DataValidationError
from lib.core.logs import get_logger
from lib.data import drift_summary
from lib.data.drift_profile import Profile, numeric_values
from lib.monitoring.stream_sample import Sampler, batch_frame, merge_samples

log = get_logger(__name__)
BATCH_ROWS = 65_536
Summaries = dict[Any, dict[str, drift_summary.Summary]]  # window -> column -> summary
OVERALL = "all"
Rows: TypeAlias = pa.RecordBatch | pd.DataFrame  # a batch as read, or as ``prepare`` converted it
Prepare: TypeAlias = Callable[[pd.DataFrame, Path], pd.DataFrame]


def column(rows: Rows, name: str) -> pd.Series:
    """Return one column of a batch as a pandas Series."""
    values: pd.Series = (
        rows[name] if isinstance(rows, pd.DataFrame) else rows.column(name).to_pandas()
    )
    return values


def utc_times(values: pd.Series) -> pd.Series:
    """Return ``values`` as UTC timestamps (naive ones taken as UTC).

    Times already typed skip ``pd.to_datetime``, whose cache check walks the values one by one
    in Python (0.5 s per million rows).
    """
    times: pd.Series
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        times = values.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(values.dtype):
        times = values.dt.tz_localize("UTC")
    else:
        times = pd.to_datetime(values, utc=True)
    return times


@dataclass(frozen=True)
class Windows:
    """How rows are cut into windows: by row count, or by the period of a date column."""

    rows: int | None = None
    date_column: str | None = None
    period: str | None = None

    def keys(self, batch: Rows, first_row: int) -> np.ndarray:
        """Return each row's window as an integer (row ``first_row`` of the data is the first).

        A date window's integer is its period's ordinal (:meth:`label` names it).
        """
        if self.date_column is not None:
            dates = utc_times(column(batch, self.date_column))
            periods = dates.dt.tz_localize(None).dt.to_period(self.period or "W")
            ordinals: Any = periods.array  # a PeriodArray (its stubs lack asi8)
            return np.asarray(ordinals.asi8, dtype=np.int64)  # NaT: the smallest int64
        size = self.rows or 1_000_000_000_000
        return (first_row + np.arange(len(batch), dtype=np.int64)) // size

    def label(self, key: int) -> Any:
        """Return a window's name: its number, or its period (``2026-01-05/2026-01-11``)."""
        if self.date_column is None:
            return int(key)
        if key == np.iinfo(np.int64).min:
            return "no date"
        return str(pd.Period(ordinal=int(key), freq=self.period or "W"))

    @property
    def columns(self) -> list[str]:
        """Columns the windows are read from."""
        return [self.date_column] if self.date_column else []


@dataclass(frozen=True)
class Pass:
    """What a pass over some files found: per-window summaries and a bottom-k sample."""

    summaries: Summaries
    sample: pd.DataFrame | None = None  # with columns KEY and ROW
    distinct: dict[str, frozenset[str]] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class PassSpec:
    """What one pass reads and keeps: columns, windows, batch size, sample, time range."""

    profile: Profile
    names: list[str]
    methods: dict[str, str]
    windows: Windows
    batch_rows: int
    sample_rows: int = 0
    seed: int = 0
    time_column: str | None = None
    since: pd.Timestamp | None = None
    until: pd.Timestamp | None = None
    prepare: Prepare | None = None
    distinct: tuple[str, ...] = ()
    sample_cut: float = np.inf  # keys at or above it are not kept (stream_dask)


def summarise_files(
    paths: Sequence[Path], spec: PassSpec, first_row: int = 0, first_file: int = 0
) -> Pass:
    """Summarise the files in order, a batch at a time.

    ``first_row`` is the number of the first row of ``paths[0]`` (in the time range) among all
    the rows: row windows and the sample's row numbers count from it. ``first_file`` is the
    number of ``paths[0]`` among all the files (it seeds the sample).
    """
    merged: Summaries = {}
    seen: dict[str, set[str]] = {name: set() for name in spec.distinct}
    sampler = Sampler(spec.sample_rows, spec.sample_cut)
    row = first_row
    for number, part, start, read in _batches(paths, spec):
        file_rows = read.num_rows
        batch, place = _in_time(read, spec.time_column, spec.since, spec.until)
        if spec.prepare is not None:
            batch = _prepared(spec.prepare, batch, paths[number], start + place)
        keys = spec.windows.keys(batch, row)
        _add(merged, batch, keys, spec)
        for name, values in seen.items():
            values.update(column(batch, name).dropna().astype(str).unique())
        if spec.sample_rows:
            rng = np.random.default_rng([spec.seed, first_file + number, part])
            sampler.add(batch, rng.random(file_rows)[place], row)
        row += len(batch)
    distinct = {name: frozenset(values) for name, values in seen.items()}
    return Pass(merged, sampler.frame() if spec.sample_rows else None, distinct)


def _prepared(prepare: Prepare, batch: pa.RecordBatch, path: Path, rows: np.ndarray) -> Rows:
    """Return ``prepare(frame, path)``; a row its error names is counted from the file start."""
    try:
        return prepare(batch_frame(batch), path)
    except DataValidationError as exc:
        if exc.row is None or not len(rows):
            raise
        row = int(rows[exc.row - 1]) + 1
        message = exc.message.replace(f"row {exc.row:,}:", f"row {row:,}:", 1)
        raise DataValidationError(
            message, path=exc.path, row=row, column=exc.column, check=exc.check
        ) from None


def _in_time(
    batch: pa.RecordBatch,
    time_column: str | None,
    since: pd.Timestamp | None,
    until: pd.Timestamp | None,
) -> tuple[pa.RecordBatch, np.ndarray]:
    """Return the rows whose ``time_column`` is in ``[since, until)``, and their positions."""
    if time_column is None or (since is None and until is None):
        return batch, np.arange(batch.num_rows)
    times = utc_times(column(batch, time_column))
    keep = times.notna().to_numpy()
    if since is not None:
        keep &= (times >= since).to_numpy()
    if until is not None:
        keep &= (times < until).to_numpy()
    return batch.filter(pa.array(keep)), np.flatnonzero(keep)


def _batches(
    paths: Sequence[Path], spec: PassSpec
) -> Iterator[tuple[int, int, int, pa.RecordBatch]]:
    """Yield each file's batches in turn: the file's number, the batch's, its first row's.

    A file that cannot be read is named. Read without pre-buffering, a row group's column
    chunks one batch at a time, and Arrow's freed pages released after each file: on a file of
    one 1,000,000-row group the read costs about 130 MiB where a dataset scan held 410 MiB. A
    sample needs every column.
    """
    extra = [spec.time_column] if spec.time_column is not None else []
    wanted = list(dict.fromkeys([*spec.names, *spec.windows.columns, *extra, *spec.distinct]))
    for number, path in enumerate(paths):
        try:
            file = pq.ParquetFile(path, pre_buffer=False)
            if _outside(file, spec.time_column, spec.since, spec.until):
                continue  # its statistics put every row outside the time range
            batches = file.iter_batches(
                batch_size=spec.batch_rows,
                columns=None if spec.sample_rows or spec.prepare else wanted,
                use_threads=False,
            )
            part = start = 0
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                yield number, part, start, batch
                part, start = part + 1, start + batch.num_rows
        except (OSError, pa.ArrowException) as exc:
            raise DataValidationError(
                f"{path}: cannot read its rows ({str(exc).splitlines()[0]}); the file is "
                "damaged: restore it, or move it out of the data to check",
                path=path,
            ) from None
        finally:
            pa.default_memory_pool().release_unused()


def _add(merged: Summaries, batch: Rows, keys: np.ndarray, spec: PassSpec) -> None:
    if not len(keys):  # a batch whose rows all fell outside the time range
        return
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    ends = [*starts[1:], len(keys)]
    windows = [(int(ordered[a]), order[a:b]) for a, b in zip(starts, ends, strict=True)]
    whole = len(windows) == 1
    for name in spec.names:
        col = spec.profile.columns[name]
        series = column(batch, name)
        values = series if col.kind == "categorical" else numeric_values(series)
        for key, rows in windows:
            window = merged.setdefault(key, {})
            part = values if whole else (
                values.iloc[rows] if isinstance(values, pd.Series) else values[rows]
            )  # fmt: skip
            summary = window.get(name) or drift_summary.empty_summary(col, spec.methods.get(name))
            window[name] = summary.add(part)  # type: ignore[arg-type]


def merge_passes(a: Pass, b: Pass, size: int) -> Pass:
    """Return what both passes found (the sample: the ``size`` smallest keys of both)."""
    names = set(a.distinct) | set(b.distinct)
    distinct = {n: a.distinct.get(n, frozenset()) | b.distinct.get(n, frozenset()) for n in names}
    summaries = merge(a.summaries, b.summaries)
    return Pass(summaries, merge_samples(a.sample, b.sample, size), distinct)


def whole(summaries: Summaries) -> dict[str, drift_summary.Summary]:
    """Return the summaries of every window's rows together, per column."""
    empty: Summaries = {}
    merged = functools.reduce(merge, ({OVERALL: cols} for cols in summaries.values()), empty)
    return merged.get(OVERALL, {})


def merge(a: Summaries, b: Summaries) -> Summaries:
    """Return the summaries of both sets of rows (windows of the same key are added)."""
    out = {key: dict(cols) for key, cols in a.items()}
    for key, cols in b.items():
        window = out.setdefault(key, {})
        for name, summary in cols.items():
            have = window.get(name)
            window[name] = summary if have is None else _merge(have, summary)
    return out


def _merge(a: drift_summary.Summary, b: drift_summary.Summary) -> drift_summary.Summary:
    if isinstance(a, drift_summary.NumericSummary) and isinstance(b, drift_summary.NumericSummary):
        return a.merge(b)
    assert isinstance(a, drift_summary.CategorySummary)
    assert isinstance(b, drift_summary.CategorySummary)
    return a.merge(b)


def _outside(
    file: pq.ParquetFile,
    time_column: str | None,
    since: pd.Timestamp | None,
    until: pd.Timestamp | None,
) -> bool:
    """Whether the file's own statistics put every row's time outside ``[since, until)``.

    A prediction log's parts are written in time order, so a time range skips most of them
    unread. Without statistics (or with a time column of another type) the file is read.
    """
    if time_column is None or (since is None and until is None):
        return False
    meta = file.metadata
    leaves = [meta.schema.column(i).name for i in range(meta.num_columns)]
    if time_column not in leaves or meta.num_row_groups == 0:
        return False
    leaf = leaves.index(time_column)
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(leaf).statistics
        if stats is None or not stats.has_min_max:
            return False
        try:
            low, high = pd.Timestamp(stats.min), pd.Timestamp(stats.max)
        except (TypeError, ValueError):
            return False
        low = low.tz_localize("UTC") if low.tz is None else low.tz_convert("UTC")
        high = high.tz_localize("UTC") if high.tz is None else high.tz_convert("UTC")
        if not ((until is not None and low >= until) or (since is not None and high < since)):
            return False
    return True


def count_rows(
    paths: Sequence[Path],
    time_column: str | None = None,
    since: pd.Timestamp | None = None,
    until: pd.Timestamp | None = None,
) -> list[int]:
    """Return each file's rows in the time range (from the files' metadata when none is set)."""
    if time_column is None or (since is None and until is None):
        return [pq.ParquetFile(p).metadata.num_rows for p in paths]
    counts = []
    for path in paths:
        file = pq.ParquetFile(path, pre_buffer=False)
        if _outside(file, time_column, since, until):
            counts.append(0)
            continue
        batches = file.iter_batches(batch_size=BATCH_ROWS, columns=[time_column])
        counts.append(sum(len(_in_time(b, time_column, since, until)[1]) for b in batches))
    return counts
