"""Arrow tables to pandas frames at about one copy of the data.

``pd.read_parquet`` holds the Arrow table and the frame at once, and Arrow's allocator keeps
the table's freed pages for reuse by Arrow alone: on the monitor's 1.5 million rows x 23 columns
that left 260 MiB of dead weight under every later step (numpy allocates elsewhere). Here each
column's Arrow buffers are freed as it converts (``self_destruct``), and the pages Arrow no
longer uses go back to the system. :class:`ParquetColumns` goes further for readers that look
at a column or a block of rows at a time: it never holds the file's data at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lib.core.errors import DataValidationError
from lib.core.parallel import map_ordered, thread_count


def to_frame(table: pa.Table, **options: object) -> pd.DataFrame:
    """Convert ``table`` (which must not be used afterwards) and release Arrow's spare memory."""
    frame: pd.DataFrame = table.to_pandas(split_blocks=True, self_destruct=True, **options)
    del table
    pa.default_memory_pool().release_unused()
    return frame


def read_parquet(path: Path | str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a Parquet file (its ``columns``, or all) as :func:`pandas.read_parquet` would.

    A column at a time: the peak is the frame plus a column per thread, not the frame twice.
    The columns are read on threads (Arrow decodes without the GIL), each with its own file
    handle: the monitor bench's two files (1.5 million rows x 24 columns) 0.56 to 0.32-0.40 s
    on 2 cores, the peak the same. A file that stores its index as columns is read whole (its
    index must come along).
    """
    file = pq.ParquetFile(path)
    schema = file.schema_arrow
    stored_index = _stored_index(schema)
    names = list(columns) if columns is not None else schema.names
    if stored_index or len(names) < 2:
        return to_frame(file.read(columns=names, use_pandas_metadata=True))

    plain = plain_columns(schema)

    def one(name: str) -> pd.Series:
        file = pq.ParquetFile(path, memory_map=True, pre_buffer=False)  # as ParquetColumns
        table = file.read(columns=[name], use_pandas_metadata=name not in plain)
        return column_series(table) if name in plain else to_frame(table).iloc[:, 0]

    parts = map_ordered(one, names, thread_count(None))
    return pd.concat(parts, axis=1, copy=False) if parts else pd.DataFrame()


_PLAIN = {pa.float64(): "float64", pa.int64(): "int64"}


def plain_columns(schema: pa.Schema) -> frozenset[str]:
    """Return the columns pandas reads as plain NumPy float64 or int64 (no pandas dtype).

    Such a column is converted on its own by :func:`column_series`, without pandas' metadata
    (parsed again on every read: its JSON holds every column) and block manager: about 1 ms a
    read, all of it holding the GIL, where the checks' threads read a column at a time. Not a
    column pandas wrote with a dtype of its own (``Float64``, ``Int64``, ``double[pyarrow]``).
    """
    meta = schema.pandas_metadata or {}
    stored = {c.get("field_name"): c.get("numpy_type") for c in meta.get("columns", [])}
    return frozenset(
        field.name
        for field in schema
        if field.type in _PLAIN and stored.get(field.name, _PLAIN[field.type]) == _PLAIN[field.type]
    )


def column_series(table: pa.Table) -> pd.Series:
    """Return the one column of ``table`` (a plain one, :func:`plain_columns`) as a Series.

    As :func:`to_frame` gives it: the values are Arrow's buffer where nothing is missing (read
    only, not copied), NaN where something is (an int64 column turns float64), on the index
    ``0..n-1``; the read's spare memory goes back to the system, as there.
    """
    values = table.column(0).to_numpy()
    pa.default_memory_pool().release_unused()
    return pd.Series(
        values, index=pd.RangeIndex(len(values)), name=table.column_names[0], copy=False
    )


def _stored_index(schema: pa.Schema) -> list[str]:
    """Return the columns a pandas-written file stores its index in (none for a range index)."""
    meta = schema.pandas_metadata or {}
    return [c for c in meta.get("index_columns", []) if isinstance(c, str)]


def positional(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Return ``frame``'s ``columns`` (all by default) on the index ``0..n-1``, not copied.

    What ``frame[columns].reset_index(drop=True)`` returns, without its two copies of the data
    (pandas 2 copies a column selection and a reset index alike): the monitor's checks index
    their rows by position and only read them. The result shares its columns with ``frame``,
    so neither may be changed in place while the other is in use.
    """
    index = pd.RangeIndex(len(frame))
    names = list(frame.columns) if columns is None else list(columns)
    return pd.DataFrame(
        {name: frame[name].set_axis(index, copy=False) for name in names}, index=index, copy=False
    )


class ParquetColumns:
    """A Parquet file whose columns are read when asked for, never held.

    Indexed as a frame is (``source[name]``, ``source[names]``, ``source.columns``,
    ``len(source)``; rows by position), so the monitor's per-window checks
    (:func:`lib.monitoring.window_checks.run_window_checks`), which look at a column or a few at
    a time, take it in place of a frame: each read is a fresh copy that the check drops when it
    is done with the column, and :meth:`blocks` streams whole rows for multivariate drift. On
    the monitor benchmark (500,000 + 1,000,000 rows x 24 columns) the checks' peak is 442 MiB
    against 672 with both files read whole first, for 0.5 s more (2.9 s against 2.4): a
    column is decoded again by each check that reads it (docs/benchmarks.md).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._identity = _identity(self.path)
        file = pq.ParquetFile(self.path)
        self._plain = plain_columns(file.schema_arrow)
        stored_index = _stored_index(file.schema_arrow)
        self.columns = pd.Index([c for c in file.schema_arrow.names if c not in stored_index])
        self._rows = int(file.metadata.num_rows)

    def __len__(self) -> int:
        return self._rows

    @overload
    def __getitem__(self, key: str) -> pd.Series: ...

    @overload
    def __getitem__(self, key: list[str]) -> pd.DataFrame: ...

    def __getitem__(self, key: str | list[str]) -> pd.Series | pd.DataFrame:
        """Read a column (a Series) or a list of them (a frame), on the index ``0..n-1``."""
        names = [key] if isinstance(key, str) else list(key)
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise KeyError(missing[0])
        # mapped, not read into a buffer first: 3.4 against 4.7 ms for a million floats (the
        # mapping goes with the file handle, after the read)
        file = self._file(memory_map=True, pre_buffer=False)
        plain = isinstance(key, str) and key in self._plain
        table = file.read(columns=names, use_threads=False, use_pandas_metadata=not plain)
        if plain:
            return column_series(table)
        frame = to_frame(table)
        frame.index = pd.RangeIndex(self._rows)  # a fresh frame of ours: positions
        if isinstance(key, list) and list(frame.columns) == names:
            return frame  # as asked: pandas would copy a selection of every column
        return frame[key]

    def blocks(
        self, names: Sequence[str], size: int, rows: np.ndarray | None = None
    ) -> Iterator[pd.DataFrame]:
        """Yield the ``names`` columns of ``rows`` (sorted positions; all when None), in order.

        Streamed ``size`` file rows at a time (a row group's end cuts a block short) with
        small read buffers: the columns are never decoded whole. Each column's reader keeps
        about 3-4 MiB (pages and dictionary) while the blocks are read.

        Raises
        ------
        ValueError
            When ``rows`` are not sorted (the file is read in its own order).
        """
        if rows is not None and (np.diff(rows) < 0).any():
            raise ValueError("ParquetColumns.blocks: rows must be sorted positions")
        file = self._file(pre_buffer=False, buffer_size=1 << 16)
        pool = pa.default_memory_pool()
        start = 0
        for batch in file.iter_batches(batch_size=size, columns=list(names), use_threads=False):
            stop = start + batch.num_rows
            block = None
            if rows is None:
                block = batch.to_pandas(split_blocks=True)  # no consolidating copy of the floats
            else:
                lo, hi = np.searchsorted(rows, [start, stop])
                if hi > lo:
                    block = batch.take(pa.array(rows[lo:hi] - start)).to_pandas(split_blocks=True)
            start = stop
            del batch
            # the readers' spent pages back to the system at once, not kept for Arrow's reuse:
            # the monitor bench's checks peaked about 40 MiB lower; a call takes 0.2 ms and the
            # pages faulted in again 0.04-0.06 s a million rows (docs/benchmarks.md)
            pool.release_unused()
            if block is not None:
                yield block

    def _file(self, **options: Any) -> pq.ParquetFile:
        """Open the file for one read, after checking it is the one first opened.

        Raises
        ------
        DataValidationError
            When the file was replaced or rewritten since (its columns would not line up).
        """
        if _identity(self.path) != self._identity:
            raise DataValidationError(
                f"{self.path}: the file changed while it was being read (replaced or rewritten "
                "after the checks began), so its columns would not line up; run again once "
                "the file is complete",
                path=str(self.path),
            )
        return pq.ParquetFile(self.path, **options)


def _identity(path: Path) -> tuple[int, int, int]:
    """Return the file's inode, size and modification time (what a rewrite changes)."""
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


Columns = pd.DataFrame | ParquetColumns  # what the per-window checks read their rows from
