"""The prediction log: every served row, appended to Parquet files by a background thread.

Requests only put rows on a queue (never blocking on disk). The writer flushes a new Parquet file
every ``flush_rows`` rows or ``flush_seconds`` seconds, each written to a temporary name and then
renamed: a crash loses at most the unflushed buffer and never corrupts earlier files. A write
that fails (a full disk) drops that buffer, is counted, and serving goes on.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from lib.logs import get_logger

log = get_logger(__name__)
_STOP = object()


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
    """

    def __init__(
        self,
        folder: Path,
        flush_rows: int = 5000,
        flush_seconds: float = 5.0,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.folder = folder
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.on_drop = on_drop or (lambda n: None)
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self.files_written = 0

    def start(self) -> None:
        """Start the writer thread."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Queue rows for writing (returns at once)."""
        self._queue.put(rows)

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is buffered and stop the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _run(self) -> None:
        buffer: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.flush_seconds
        while True:
            try:
                item = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                item = None
            if item is _STOP:
                self._flush(buffer)
                return
            if item:
                buffer.extend(item)
            if len(buffer) >= self.flush_rows or time.monotonic() >= deadline:
                self._flush(buffer)
                buffer = []
                deadline = time.monotonic() + self.flush_seconds

    def _flush(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%S%f")
        final = self.folder / f"part-{stamp}-{uuid.uuid4().hex[:6]}.parquet"
        tmp = final.with_name(f".{final.name}.tmp")
        try:
            pd.DataFrame(rows).to_parquet(tmp, index=False)
            os.replace(tmp, final)
            self.files_written += 1
        except OSError as exc:
            log.error("prediction_log_dropped", rows=len(rows), error=str(exc))
            self.on_drop(len(rows))
            tmp.unlink(missing_ok=True)
