"""Arrow tables to pandas frames at about one copy of the data.

``pd.read_parquet`` holds the Arrow table and the frame at once, and Arrow's allocator keeps
the table's freed pages for reuse by Arrow alone: on the monitor's 1.5 million rows x 23 columns
that left 260 MiB of dead weight under every later step (numpy allocates elsewhere). Here each
column's Arrow buffers are freed as it converts (``self_destruct``), and the pages Arrow no
longer uses go back to the system.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

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
    stored_index = [c for c in (schema.pandas_metadata or {}).get("index_columns", [])
                    if isinstance(c, str)]  # fmt: skip
    names = list(columns) if columns is not None else schema.names
    if stored_index or len(names) < 2:
        return to_frame(file.read(columns=names, use_pandas_metadata=True))

    def one(name: str) -> pd.Series:
        table = pq.ParquetFile(path).read(columns=[name], use_pandas_metadata=True)
        return to_frame(table).iloc[:, 0]

    parts = map_ordered(one, names, thread_count(None))
    return pd.concat(parts, axis=1, copy=False) if parts else pd.DataFrame()


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
