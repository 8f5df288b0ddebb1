"""The prediction log: every served row, appended to Parquet files by a background thread.

A request only appends its rows (a dict of column arrays) to an in-memory queue: no pandas, no
disk on the request path. A writer thread turns what was queued into an Arrow table and, every
``flush_rows`` rows or ``flush_seconds`` seconds, writes a new ``part-*.parquet`` file (under a
temporary name, then renamed: earlier files are never corrupted).

How much a crash (kill -9, out of memory) may lose is the ``durability`` setting:

``memory``
    Rows wait in memory until their Parquet part: a crash loses up to ``flush_seconds``.
``interval`` (the default)
    Every ``sync_seconds`` the writer appends what was queued, as an Arrow record batch, to an
    append-only *segment* (an Arrow IPC stream under ``segments/``) and hands it to the operating
    system. A crashed process loses at most the rows of the last ``sync_seconds`` (plus the time
    to write them); an operating-system crash or power loss may lose more (no fsync).
``fsync``
    A request's rows are written to the segment and fsync'd before its answer is sent
    (:meth:`PredictionLog.append` returns a future to await): nothing answered is lost. Concurrent
    requests share one write and one fsync (group commit).

A segment becomes Parquet parts when the log rotates, and then is deleted. Segments left by a
crashed process are turned into parts by :func:`recover` (run when a log starts); a torn last
batch is dropped. Each segment is locked by the process writing it, so several processes can
share a folder and recover only what nobody holds. Readers only ever see ``part-*.parquet``.

A row the writer cannot encode never costs the others: text with lone surrogates is escaped,
and a request whose rows still do not fit a table is *quarantined* - counted, logged once per
kind of error, and written to ``rejects/*.jsonl`` beside the log. A write that fails (a full
disk) drops that buffer, is counted, and serving goes on.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from lib.core.contracts import predlog
from lib.core.logs import get_logger
from server.segments import SEGMENTS, Segment, fsync_file, recover, write_part

log = get_logger(__name__)
Columns = Mapping[str, Any]
Durability = Literal["memory", "interval", "fsync"]
Commit = concurrent.futures.Future[None]
REJECTS = "rejects"
_ENCODE_ERRORS = (ValueError, TypeError, OverflowError, UnicodeError, pa.ArrowException)


@dataclass
class _Item:
    rows: int
    columns: Columns
    done: Commit | None = None
    queued: float = 0.0  # time.monotonic() when appended


class PredictionLog:
    """Background Parquet writer for served rows.

    Parameters
    ----------
    folder
        Where the ``part-*.parquet`` files go.
    flush_rows, flush_seconds
        Rotation: a file is written when either is reached.
    on_drop
        Called with the number of rows lost when a write fails.
    utc_columns
        Columns holding naive UTC ``datetime64`` values, stored as UTC timestamps.
    durability
        ``memory``, ``interval`` or ``fsync``: what a crash may lose (see the module).
    sync_seconds
        How often ``interval`` appends queued rows to the segment.
    on_reject
        Called with the number of rows quarantined (rows the writer cannot encode).
    on_commit
        Called after each commit with its lag (seconds from the oldest row's append to its
        commit: what a crash at that moment would have lost), its duration and its rows.
    """

    def __init__(
        self,
        folder: Path,
        flush_rows: int = 5000,
        flush_seconds: float = 5.0,
        on_drop: Callable[[int], None] | None = None,
        utc_columns: Sequence[str] = (predlog.TIME,),
        durability: Durability = "interval",
        sync_seconds: float = 0.5,
        on_reject: Callable[[int], None] | None = None,
        on_commit: Callable[[float, float, int], None] | None = None,
    ) -> None:
        self.folder = folder
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.on_drop = on_drop or (lambda n: None)
        self.on_reject = on_reject or (lambda n: None)
        self.on_commit = on_commit or (lambda lag, seconds, n: None)
        self.utc_columns = tuple(utc_columns)
        self.durability = durability
        # memory mode only checks rotation: a few times a second, as before segments existed
        self.sync_seconds = 0.2 if durability == "memory" else sync_seconds
        self._pending: deque[_Item] = deque()  # appends are thread-safe
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._tables: list[pa.Table] = []  # committed since the last part: rows and segments
        self._rows = 0
        self._types: dict[str, pa.DataType] = {}  # each column's type in the coming part
        self._segments: list[Segment] = []
        self._rejects: _Rejects = _Rejects(folder / REJECTS)
        self.files_written = 0

    def start(self) -> None:
        """Recover the segments crashed processes left behind, then start the writer thread."""
        self.folder.mkdir(parents=True, exist_ok=True)
        recover(self.folder, fsync=self.durability == "fsync")
        _warm_up(self.utc_columns)
        self._thread.start()

    def append(self, rows: list[dict[str, Any]] | Columns) -> Commit | None:
        """Queue rows: a dict of equal-length columns, or a list of records.

        Returns at once: None, or in ``fsync`` mode a future that is done once the rows are on
        disk (await it, e.g. with :func:`asyncio.wrap_future`, before answering).
        """
        if isinstance(rows, list):
            names = list(dict.fromkeys(k for r in rows for k in r))
            rows = {k: [r.get(k) for r in rows] for k in names}
        n = len(next(iter(rows.values()), []))
        if not n:
            return None
        done: Commit | None = None
        if self.durability == "fsync" and self._thread.is_alive() and not self._stop.is_set():
            done = concurrent.futures.Future()  # (no writer: nothing would ever complete it)
        self._pending.append(_Item(n, rows, done, time.monotonic()))
        if done is not None:
            self._wake.set()
        return done

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is buffered and stop the thread."""
        if self._thread.is_alive():
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout)

    def _run(self) -> None:
        deadline = time.monotonic() + self.flush_seconds
        wait = self.sync_seconds if self.durability != "fsync" else 0.2  # fsync: woken by appends
        while True:
            self._wake.wait(min(wait, max(0.0, deadline - time.monotonic())))
            self._wake.clear()
            stopping = self._stop.is_set()
            try:
                self._commit()
                if stopping or self._rows >= self.flush_rows or time.monotonic() >= deadline:
                    self._rotate()
                    deadline = time.monotonic() + self.flush_seconds
            except Exception as exc:  # the writer must outlive any surprise: serving goes on
                log.exception("prediction_log_writer_error", error=str(exc)[:300])
            if stopping:
                return

    def _commit(self) -> None:
        """Take what is queued into the buffer (and the segment), then release its waiters."""
        items = [self._pending.popleft() for _ in range(len(self._pending))]
        if not items:
            return
        start = time.monotonic()
        try:
            touched = set()
            for table in self._build(items):
                self._tables.append(table)
                self._rows += table.num_rows
                if self.durability != "memory":
                    touched.add(self._to_segment(table))
            for segment in touched:
                segment.sync(fsync=self.durability == "fsync")
        except OSError as exc:  # a full disk: the rows stay in memory until their part
            log.error("prediction_log_segment_failed", error=str(exc)[:300])
            self._close_segments(delete=True)
        finally:
            for item in items:
                if item.done is not None:
                    # a client that went away cancelled its wait: the others still get theirs
                    with contextlib.suppress(concurrent.futures.InvalidStateError):
                        item.done.set_result(None)
            end = time.monotonic()
            self.on_commit(end - items[0].queued, end - start, sum(i.rows for i in items))

    def _to_segment(self, table: pa.Table) -> Segment:
        """Append to the open segment; one with the table's schema if it cannot take it."""
        if self._segments and self._segments[-1].schema != table.schema:
            with contextlib.suppress(pa.ArrowException, ValueError):
                table = table.cast(self._segments[-1].schema)  # e.g. an all-null column
        if not self._segments or self._segments[-1].schema != table.schema:
            self._segments.append(Segment.open(self.folder / SEGMENTS, table.schema))
            if self.durability == "fsync":
                fsync_file(self.folder / SEGMENTS)  # the new file's name, too, is on disk
        self._segments[-1].write(table)
        return self._segments[-1]

    def _rotate(self) -> None:
        """Write the buffer as Parquet parts (one per schema), then drop its segments."""
        tables = self._tables
        self._tables, self._rows = [], 0
        self._types = {}  # each part has one type per column; a model reload may change them
        for part in _concat(tables):
            try:
                write_part(self.folder, part, fsync=self.durability == "fsync")
                self.files_written += 1
            except (OSError, ValueError, TypeError, pa.ArrowException) as exc:  # a full disk
                log.error("prediction_log_dropped", rows=part.num_rows, error=str(exc)[:300])
                self.on_drop(part.num_rows)
        self._close_segments(delete=True)

    def _close_segments(self, delete: bool) -> None:
        for segment in self._segments:
            segment.close(delete=delete)
        self._segments = []

    def _build(self, items: list[_Item]) -> list[pa.Table]:
        """Return the items' rows as tables: one, unless some item breaks it.

        Then the text is made valid and the whole retried once (a lone surrogate costs one
        pass); if it still fails, item by item: every good item is kept, a bad one quarantined.
        """
        try:
            return [self._conform(self._table(items))]
        except _ENCODE_ERRORS:
            items = [_Item(i.rows, _valid_text(i.columns), i.done, i.queued) for i in items]
        try:
            return [self._conform(self._table(items))]
        except _ENCODE_ERRORS:
            pass
        tables = []
        for item in items:
            try:
                tables.append(self._conform(self._table([item])))
            except _ENCODE_ERRORS as exc:
                self._quarantine(item, exc)
        return _concat(tables)

    def _conform(self, table: pa.Table) -> pa.Table:
        """Cast ``table`` to the column types of the coming part; learn new ones.

        One type per column in a part: a value of another type (an object where text was
        logged) raises, and its request is quarantined. Parts may differ (readers unify them).
        """
        fields = [
            pa.field(f.name, self._types.get(f.name, f.type), nullable=True) for f in table.schema
        ]
        if any(f.type != t.type for f, t in zip(table.schema, fields, strict=True)):
            table = table.cast(pa.schema(fields))
        for f in table.schema:
            if not pa.types.is_null(f.type):
                self._types.setdefault(f.name, f.type)
        return table

    def _quarantine(self, item: _Item, exc: Exception) -> None:
        self.on_reject(item.rows)
        kind = type(exc).__name__
        if self._rejects.add(item.columns, f"{kind}: {exc}"[:500]):
            log.error(
                "prediction_log_rejected", kind=kind, rows=item.rows, error=str(exc)[:300],
                rejects=str(self._rejects.folder), note="logged once per kind",
            )  # fmt: skip

    def _table(self, items: list[_Item]) -> pa.Table:
        """One Arrow table from many items: a concatenation per column (per group of equal columns).

        Built with Arrow directly: going through a DataFrame cost about as much as the writing.
        """
        groups: dict[tuple[str, ...], list[Columns]] = {}
        for item in items:
            groups.setdefault(tuple(item.columns), []).append(item.columns)
        tables = []
        for names, parts in groups.items():
            arrays = [self._array(n, [np.asarray(p[n]) for p in parts]) for n in names]
            tables.append(pa.Table.from_arrays(arrays, names=list(names)))
        return pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]

    def _array(self, name: str, parts: list[np.ndarray]) -> pa.Array:
        values = np.concatenate(parts)
        array = pa.array(values, from_pandas=True)  # None and NaN in object columns: null
        if name in self.utc_columns and pa.types.is_timestamp(array.type) and array.type.tz is None:
            array = array.cast(pa.timestamp(array.type.unit, tz="UTC"))
        return array


def _warm_up(utc_columns: Sequence[str]) -> None:
    """Run a commit's lazy paths once, before any traffic: imports, casts, IPC and Parquet.

    Under load the first commit of a fresh process took 2 s in CI (one commit in 3 s of load,
    so a kill -9 lost 2.6 s of answered rows): first-time imports inside it (pyarrow's pandas
    and compute layers) make hundreds of file-system calls, and each gives up the GIL that the
    serving threads then hold for a switch interval. A throwaway log in a scratch folder takes
    the real path: two kinds of request in one commit (a concatenation), a lone surrogate (the
    text repair), a column that comes back null (a cast), segments and a Parquet part.
    """
    time_name = utc_columns[0] if utc_columns else "time"
    stamp = np.array(["2024-01-01T00:00:00"], dtype="datetime64[ns]")
    with tempfile.TemporaryDirectory(prefix="quire-warm-up-") as scratch:
        probe = PredictionLog(Path(scratch), utc_columns=utc_columns, durability="interval")
        probe.append({time_name: stamp, "number": np.array([1.0]), "text": np.array(["a"])})
        probe.append({time_name: stamp, "text": np.array(["\ud800"], dtype=object)})
        probe._commit()
        probe.append({time_name: stamp, "number": np.array([None]), "text": np.array(["b"])})
        probe._commit()
        probe._rotate()


def _valid_text(columns: Columns) -> dict[str, Any]:
    """Return the columns with every text made valid UTF-8 (lone surrogates escaped as text)."""
    return {name: _valid_column(values) for name, values in columns.items()}


def _valid_column(values: Any) -> Any:
    array = np.asarray(values)
    if array.dtype.kind == "U":
        array = array.astype(object)
    if array.dtype != object:
        return values
    return _VALID(array)


def _valid_str(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


_VALID = np.frompyfunc(_valid_str, 1, 1)  # element-wise over object arrays of any shape


def _concat(tables: list[pa.Table]) -> list[pa.Table]:
    """Tables joined where their columns agree (missing ones as nulls); one per clash of types."""
    if len(tables) <= 1:
        return tables
    with contextlib.suppress(pa.ArrowException):
        return [pa.concat_tables(tables, promote_options="default")]
    groups: dict[pa.Schema, list[pa.Table]] = {}
    for table in tables:
        groups.setdefault(table.schema, []).append(table)
    return [pa.concat_tables(group) for group in groups.values()]


class _Rejects:
    """Quarantined requests, one JSON line each, in a file of this process under ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / f"rejects-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self.kinds: set[str] = set()

    def add(self, columns: Columns, error: str) -> bool:
        """Write one quarantined request; True the first time its kind of error is seen."""
        rows = len(np.asarray(next(iter(columns.values()), [])))
        record = {
            "error": error,
            "rows": rows,
            "columns": {k: _plain(v) for k, v in columns.items()},
        }
        line = json.dumps(record, default=repr)  # ASCII: lone surrogates come out escaped
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8", errors="backslashreplace") as out:
                out.write(line + "\n")
        except OSError as exc:
            log.error("prediction_log_rejects_unwritable", error=str(exc)[:300])
        kind = error.split(":", 1)[0]
        first = kind not in self.kinds
        self.kinds.add(kind)
        return first


def _plain(values: Any) -> list[Any]:
    """Return a column as JSON-ready values (numpy scalars and times as Python values or text)."""
    return [
        str(v) if isinstance(v, np.datetime64) else v.item() if isinstance(v, np.generic) else v
        for v in np.asarray(values).ravel()
    ]
