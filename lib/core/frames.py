"""Arrow tables to pandas frames at about one copy of the data.

``pd.read_parquet`` holds the Arrow table and the frame at once, and Arrow's allocator keeps
the table's freed pages for reuse by Arrow alone: on the monitor's 1.5 million rows x 23 columns
that left 260 MiB of dead weight under every later step (numpy allocates elsewhere). Here each
column's Arrow buffers are freed as it converts (``self_destruct``), and the pages Arrow no
longer uses go back to the system.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import overload

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def to_frame(table: pa.Table, **options: object) -> pd.DataFrame:
    """Convert ``table`` (which must not be used afterwards) and release Arrow's spare memory."""
    frame: pd.DataFrame = table.to_pandas(split_blocks=True, self_destruct=True, **options)
    del table
    pa.default_memory_pool().release_unused()
    return frame


def read_parquet(path: Path | str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a Parquet file (its ``columns``, or all) as :func:`pandas.read_parquet` would.

    One column at a time: the peak is the frame plus one column, not the frame twice. A file
    that stores its index as columns is read whole (its index must come along).
    """
    file = pq.ParquetFile(path)
    schema = file.schema_arrow
    stored_index = [c for c in (schema.pandas_metadata or {}).get("index_columns", [])
                    if isinstance(c, str)]  # fmt: skip
    names = list(columns) if columns is not None else schema.names
    if stored_index or len(names) < 2:
        return to_frame(file.read(columns=names, use_pandas_metadata=True))
    parts = [to_frame(file.read(columns=[n], use_pandas_metadata=True)).iloc[:, 0] for n in names]
    return pd.concat(parts, axis=1, copy=False) if parts else pd.DataFrame()


class ParquetColumns:
    """A Parquet file read a column (or a block of rows) at a time, where a frame would be read.

    The per-window checks (:mod:`lib.monitoring.window_drift`, ``window_quality``,
    ``multivariate``, ``estimate``) take one in place of either side's frame: each column is read
    when a check asks for it and dropped when the check is done with it, so their peak memory is
    a few columns, not both sides whole. ``columns`` and ``len`` come from the file's metadata.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        file = pq.ParquetFile(self.path)
        stored = {c for c in (file.schema_arrow.pandas_metadata or {}).get("index_columns", [])
                  if isinstance(c, str)}  # fmt: skip
        self.columns = pd.Index([n for n in file.schema_arrow.names if n not in stored])
        self._rows = int(file.metadata.num_rows)

    def __len__(self) -> int:
        return self._rows

    def __repr__(self) -> str:
        return f"ParquetColumns({str(self.path)!r}: {self._rows:,} rows x {len(self.columns)})"

    @overload
    def __getitem__(self, key: str) -> pd.Series: ...

    @overload
    def __getitem__(self, key: list[str]) -> pd.DataFrame: ...

    def __getitem__(self, key: str | list[str]) -> pd.Series | pd.DataFrame:
        """One column as a Series (a name) or several as a frame (a list of names)."""
        frame = read_parquet(self.path, [key] if isinstance(key, str) else list(key))
        frame.index = pd.RangeIndex(len(frame))  # positions, as the windows index (no copy)
        return frame.iloc[:, 0] if isinstance(key, str) else frame

    def blocks(self, names: Sequence[str], rows: int) -> Iterator[pd.DataFrame]:
        """Yield ``names`` ``rows`` rows at a time, in file order (index 0..n-1 per block)."""
        file = pq.ParquetFile(self.path)
        for batch in file.iter_batches(batch_size=rows, columns=list(names)):
            yield to_frame(pa.Table.from_batches([batch]))


Table = pd.DataFrame | ParquetColumns  # what the per-window checks read a side from
