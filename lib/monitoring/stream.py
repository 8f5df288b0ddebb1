"""Drift of data larger than memory: Parquet read in batches into mergeable summaries.

The current data (a prediction log, or any Parquet files) is read as an Arrow dataset, a batch
of ``batch_rows`` rows at a time and only the checked columns; each batch adds to per-window
summaries (:mod:`lib.data.drift_summary`), and the verdicts come from the summaries. Memory is
one batch plus the summaries (per window and column: the reference's grid, at most 10,000
points), whatever the number of rows.

``backend="dask"`` summarises the files on a dask.distributed cluster - a ``LocalCluster`` of
single-threaded worker processes on 127.0.0.1 by default, or the scheduler at an address, as
the training search does - and merges what the workers return as it arrives. A worker lost
mid-run has its files summarised again elsewhere (Dask's retries); a file that keeps killing
workers fails the run with one :class:`~lib.core.errors.ClusterError` naming it, and nothing
is returned.

Windows are numbered by row (``window_rows``: row ``i`` of the data, in file order, goes to
window ``i // window_rows``) or are the periods of a date column (``date_column`` and
``period``, a pandas frequency such as ``W`` or ``M``).

The same pass can keep a uniform random sample of the rows (``sample_rows``): every row draws a
random key (seeded per file and batch, so the stream and Dask backends keep the same rows) and
the rows of the ``sample_rows`` smallest keys are kept - a bottom-k sample, which merges across
batches, files and workers by keeping the smallest keys again. With ``since``/``until`` only
the rows whose ``time_column`` lies in ``[since, until)`` are summarised and sampled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from lib.core.errors import ClusterError, DataValidationError, QuireError
from lib.core.logs import get_logger
from lib.data import drift_summary
from lib.data.drift import DriftReport, summary_drift, validate_columns
from lib.data.drift_profile import Profile, numeric_values

log = get_logger(__name__)
BATCH_ROWS = 65_536
Summaries = dict[Any, dict[str, drift_summary.Summary]]  # window -> column -> summary
OVERALL = "all"
KEY, ROW = "__sample_key", "__sample_row"  # a sampled row's key, and its row in all the data
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
class StreamResult:
    """Per-window drift reports and the report over all rows."""

    windows: dict[Any, DriftReport]
    overall: DriftReport
    rows: int
    sample: pd.DataFrame | None = None  # the sampled rows in file order (sample_rows > 0)
    positions: np.ndarray | None = None  # each sampled row's number among all the rows kept
    distinct: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # sorted, as text
    summaries: dict[Any, dict[str, drift_summary.Summary]] | None = None  # by window label


@dataclass(frozen=True)
class Pass:
    """What a pass over some files found: per-window summaries and a bottom-k sample."""

    summaries: Summaries
    sample: pd.DataFrame | None = None  # with columns KEY and ROW
    distinct: dict[str, frozenset[str]] = dataclasses.field(default_factory=dict)


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
    spec = _Spec(profile, names, dict(methods or {}), windows, batch_rows,
                 sample_rows, seed, time_column, since, until, prepare,
                 tuple(distinct))  # fmt: skip
    _check_files(paths, spec)
    if backend == "dask":
        found = _dask_summaries(paths, spec, scheduler, workers)
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


@dataclass(frozen=True)
class _Spec:
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
    sample_cut: float = np.inf  # keys at or above this are not kept (see _dask_summaries)


def summarise_files(
    paths: Sequence[Path], spec: _Spec, first_row: int = 0, first_file: int = 0
) -> Pass:
    """Summarise the files in order, a batch at a time.

    ``first_row`` is the number of the first row of ``paths[0]`` (in the time range) among all
    the rows: row windows and the sample's row numbers count from it. ``first_file`` is the
    number of ``paths[0]`` among all the files (it seeds the sample).
    """
    merged: Summaries = {}
    seen: dict[str, set[str]] = {name: set() for name in spec.distinct}
    sampler = _Sampler(spec.sample_rows, spec.sample_cut)
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
        return prepare(_frame(batch), path)
    except DataValidationError as exc:
        if exc.row is None or not len(rows):
            raise
        row = int(rows[exc.row - 1]) + 1
        message = exc.message.replace(f"row {exc.row:,}:", f"row {row:,}:", 1)
        raise DataValidationError(
            message, path=exc.path, row=row, column=exc.column, check=exc.check
        ) from None


def _frame(batch: pa.RecordBatch) -> pd.DataFrame:
    frame: pd.DataFrame = batch.to_pandas()
    return frame.drop(columns=[c for c in frame.columns if str(c).startswith("__index_level_")])


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


class _Sampler:
    """The rows of the ``size`` smallest random keys seen so far (a bottom-k sample)."""

    def __init__(self, size: int, cut: float = np.inf) -> None:
        self.size = size
        self.parts: list[pd.DataFrame] = []
        self.held = 0
        self.cut = cut  # keys at or above this cannot enter (any more)

    def add(self, batch: Rows, keys: np.ndarray, first_row: int) -> None:
        take = np.flatnonzero(keys < self.cut)
        if not len(take):
            return
        if isinstance(batch, pd.DataFrame):
            rows = batch.iloc[take].reset_index(drop=True)
        else:
            rows = _frame(batch.take(pa.array(take)))
        rows[KEY], rows[ROW] = keys[take], first_row + take
        self.parts.append(rows)
        self.held += len(rows)
        if self.held >= 2 * self.size:
            self._compact()

    def _compact(self) -> None:
        kept = bottom(pd.concat(self.parts, ignore_index=True), self.size)
        self.parts, self.held = [kept], len(kept)
        if len(kept) >= self.size:
            self.cut = float(kept[KEY].max())

    def frame(self) -> pd.DataFrame:
        self._compact() if self.parts else None
        return self.parts[0] if self.parts else pd.DataFrame({KEY: [], ROW: []})


def bottom(sample: pd.DataFrame, size: int) -> pd.DataFrame:
    """Return the rows of the ``size`` smallest keys."""
    if len(sample) <= size:
        return sample
    return sample.nsmallest(size, KEY).reset_index(drop=True)


def _batches(paths: Sequence[Path], spec: _Spec) -> Iterator[tuple[int, int, int, pa.RecordBatch]]:
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


def _add(merged: Summaries, batch: Rows, keys: np.ndarray, spec: _Spec) -> None:
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
    if a.sample is None or b.sample is None:
        return Pass(summaries, a.sample if b.sample is None else b.sample, distinct)
    both = pd.concat([a.sample, b.sample], ignore_index=True)
    return Pass(summaries, bottom(both, size), distinct)


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


def _reports(
    merged: Summaries, spec: _Spec, thresholds: dict[str, float], drift_share: float
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


def _check_files(paths: Sequence[Path], spec: _Spec) -> None:
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


# --- on a dask.distributed cluster ----------------------------------------------------------


def _dask_summaries(
    paths: Sequence[Path], spec: _Spec, scheduler: str | None, workers: int
) -> Pass:
    counts = count_rows(paths, spec.time_column, spec.since, spec.until)
    offsets = [int(x) for x in np.concatenate([[0], np.cumsum(counts)[:-1]])]
    total = int(sum(counts))
    if spec.sample_rows and total > spec.sample_rows:
        # each file would send back up to sample_rows rows, most of them dropped at the merge;
        # the k smallest of N uniform keys lie below k/N give or take sqrt(k)/N: a cut 6 sd
        # above that keeps the same sample (checked below) and sends about k rows in all
        k = spec.sample_rows
        cut = (k + 6 * np.sqrt(k) + 100) / total
        found = _dask_pass(paths, dataclasses.replace(spec, sample_cut=cut), offsets, scheduler,
                           workers)  # fmt: skip
        if found.sample is not None and len(found.sample) >= k:
            return found
        log.warning("sample_cut_short", kept=0 if found.sample is None else len(found.sample))
    return _dask_pass(paths, spec, offsets, scheduler, workers)


def _dask_pass(
    paths: Sequence[Path], spec: _Spec, offsets: list[int], scheduler: str | None, workers: int
) -> Pass:
    from dask.distributed import as_completed

    token = uuid.uuid4().hex[:8]
    with _client(scheduler, workers) as client:
        futures = {
            client.submit(
                summarise_files, [path], spec, first, i, key=f"summarise-{token}-{i}"
            ): path
            for i, (path, first) in enumerate(zip(paths, offsets, strict=True))
        }
        merged = Pass({}, None)
        try:
            for future in as_completed(futures):
                merged = merge_passes(merged, future.result(), spec.sample_rows)
                future.release()
        except Exception as exc:
            failed = next((futures[f] for f in futures if f.status == "error"), None)
            for f in futures:
                f.cancel()
            if isinstance(exc, QuireError):  # a worker's own clear error (a damaged file)
                raise type(exc)(f"{exc.message} (on the Dask cluster; nothing was saved)") from None
            where = f" summarising {failed}" if failed is not None else ""
            raise ClusterError(
                f"the Dask cluster failed{where}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}; nothing was saved. Check the "
                "workers' memory and logs, or run with monitor.backend: stream"
            ) from None
    return merged


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


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int) -> Iterator[Any]:
    from dask.distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
