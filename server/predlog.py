"""The prediction log: every served row, appended to Parquet files by a background thread.

A request only appends its rows (a dict of column arrays) to an in-memory list: no pandas, no
disk, no thread wake-up on the request path. The writer thread wakes a few times a second, and
writes a new Parquet file every ``flush_rows`` rows or ``flush_seconds`` seconds, building the
table with one concatenation per column. Each file is written under a temporary name and then
renamed: a crash loses at most the unflushed buffer and never corrupts earlier files. A write
that fails (a full disk) drops that buffer, is counted, and serving goes on.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lib.core.contracts import predlog
from lib.core.logs import get_logger

log = get_logger(__name__)
Columns = Mapping[str, Any]


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
    """

    def __init__(
        self,
        folder: Path,
        flush_rows: int = 5000,
        flush_seconds: float = 5.0,
        on_drop: Callable[[int], None] | None = None,
        utc_columns: Sequence[str] = (predlog.TIME,),
    ) -> None:
        self.folder = folder
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.on_drop = on_drop or (lambda n: None)
        self.utc_columns = tuple(utc_columns)
        self._pending: deque[tuple[int, Columns]] = deque()  # appends are thread-safe
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self.files_written = 0

    def start(self) -> None:
        """Start the writer thread."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def append(self, rows: list[dict[str, Any]] | Columns) -> None:
        """Queue rows: a dict of equal-length columns, or a list of records. Returns at once."""
        if isinstance(rows, list):
            names = list(dict.fromkeys(k for r in rows for k in r))
            rows = {k: [r.get(k) for r in rows] for k in names}
        n = len(next(iter(rows.values()), []))
        if n:
            self._pending.append((n, rows))

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is buffered and stop the thread."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout)

    def _run(self) -> None:
        buffer: list[tuple[int, Columns]] = []
        rows = 0
        deadline = time.monotonic() + self.flush_seconds
        while True:
            stopping = self._stop.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            while self._pending:
                item = self._pending.popleft()
                buffer.append(item)
                rows += item[0]
            if stopping:
                self._flush(buffer)
                return
            while rows >= self.flush_rows:  # rotate by size: whole items, in order
                taken, count = _take(buffer, self.flush_rows)
                self._flush(taken)
                rows -= count
            if time.monotonic() >= deadline:
                self._flush(buffer)
                buffer, rows = [], 0
                deadline = time.monotonic() + self.flush_seconds

    def _table(self, items: list[tuple[int, Columns]]) -> pa.Table:
        """One Arrow table from many items: a concatenation per column (per group of equal columns).

        Built with Arrow directly: going through a DataFrame cost about as much as the writing.
        """
        groups: dict[tuple[str, ...], list[Columns]] = {}
        for _, columns in items:
            groups.setdefault(tuple(columns), []).append(columns)
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

    def _flush(self, items: list[tuple[int, Columns]]) -> None:
        if not items:
            return
        count = sum(n for n, _ in items)
        stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%S%f")
        final = self.folder / predlog.PART_GLOB.replace("*", f"{stamp}-{uuid.uuid4().hex[:6]}")
        tmp = final.with_name(f".{final.name}.tmp")
        try:
            pq.write_table(self._table(items), tmp)
            os.replace(tmp, final)
            self.files_written += 1
        except (OSError, ValueError, TypeError, pa.ArrowException) as exc:
            # a full disk, or rows that do not fit the table
            log.error("prediction_log_dropped", rows=count, error=str(exc)[:300])
            self.on_drop(count)
            tmp.unlink(missing_ok=True)


def _take(buffer: list[tuple[int, Columns]], limit: int) -> tuple[list[tuple[int, Columns]], int]:
    """Remove whole items from the front of ``buffer`` until they hold at least ``limit`` rows."""
    count, end = 0, 0
    while end < len(buffer) and count < limit:
        count += buffer[end][0]
        end += 1
    taken = buffer[:end]
    del buffer[:end]
    return taken, count
