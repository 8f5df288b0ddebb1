"""A uniform sample of rows read in batches: the rows of the k smallest random keys.

Every row draws a uniform key; the rows of the ``size`` smallest keys seen are kept (a bottom-k
sample). Samples of batches, files or workers merge by keeping the smallest keys again
(:func:`bottom`), so any split of the rows gives the same sample as one pass. Memory is at most
twice the sample. :mod:`lib.monitoring.stream` draws the keys and feeds the batches.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

KEY, ROW = "__sample_key", "__sample_row"  # a sampled row's key, and its row in all the data


def batch_frame(batch: pa.RecordBatch) -> pd.DataFrame:
    """Return a batch as a frame, without the index columns pandas may have stored."""
    frame: pd.DataFrame = batch.to_pandas()
    return frame.drop(columns=[c for c in frame.columns if str(c).startswith("__index_level_")])


class Sampler:
    """The rows of the ``size`` smallest random keys seen so far (a bottom-k sample)."""

    def __init__(self, size: int, cut: float = np.inf) -> None:
        self.size = size
        self.parts: list[pd.DataFrame] = []
        self.held = 0
        self.cut = cut  # keys at or above this cannot enter (any more)

    def add(self, batch: pa.RecordBatch | pd.DataFrame, keys: np.ndarray, first_row: int) -> None:
        """Keep the rows whose ``keys`` may be among the smallest (numbered from ``first_row``)."""
        take = np.flatnonzero(keys < self.cut)
        if not len(take):
            return
        if isinstance(batch, pd.DataFrame):
            rows = batch.iloc[take].reset_index(drop=True)
        else:
            rows = batch_frame(batch.take(pa.array(take)))
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
        """Return the sample: the kept rows, with their keys (KEY) and row numbers (ROW)."""
        self._compact() if self.parts else None
        return self.parts[0] if self.parts else pd.DataFrame({KEY: [], ROW: []})


def bottom(sample: pd.DataFrame, size: int) -> pd.DataFrame:
    """Return the rows of the ``size`` smallest keys."""
    if len(sample) <= size:
        return sample
    return sample.nsmallest(size, KEY).reset_index(drop=True)


def merge_samples(a: pd.DataFrame | None, b: pd.DataFrame | None, size: int) -> pd.DataFrame | None:
    """Return the sample of both samples' rows (the ``size`` smallest keys of both)."""
    if a is None or b is None:
        return a if b is None else b
    return bottom(pd.concat([a, b], ignore_index=True), size)
