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

from lib.logs import get_logger

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
        utc_columns: Sequence[str] = ("time",),
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

    def _table(self, items: list[tuple[int, Columns]]) -> pd.DataFrame:
        """One frame from many items: a concatenation per column (per group of equal columns)."""
        groups: dict[tuple[str, ...], list[Columns]] = {}
        for _, columns in items:
            groups.setdefault(tuple(columns), []).append(columns)
        frames = []
        for names, parts in groups.items():
            data = {n: np.concatenate([np.asarray(p[n]) for p in parts]) for n in names}
            frame = pd.DataFrame(data)
            for name in self.utc_columns:
                if name in frame and frame[name].dtype.kind == "M" and frame[name].dt.tz is None:
                    frame[name] = frame[name].dt.tz_localize("UTC")
            frames.append(frame)
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def _flush(self, items: list[tuple[int, Columns]]) -> None:
        if not items:
            return
        count = sum(n for n, _ in items)
        stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%S%f")
        final = self.folder / f"part-{stamp}-{uuid.uuid4().hex[:6]}.parquet"
        tmp = final.with_name(f".{final.name}.tmp")
        try:
            self._table(items).to_parquet(tmp, index=False)
            os.replace(tmp, final)
            self.files_written += 1
        except (OSError, ValueError, TypeError) as exc:  # full disk, or rows that do not fit
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
