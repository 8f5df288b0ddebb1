"""Window specs (``monitor.window``, ``evaluate.gate.window``) and the cutting of rows by them.

In the core layer: parameters are checked when they are read, and both the monitor
(:mod:`lib.monitoring.windows`, which adds the reference's windows and bands) and the retrain
gate cut rows alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from lib.core.errors import ParamsError

Kind = Literal["period", "rows", "count"]
_SPEC = re.compile(r"^\s*(\d+)\s*(rows?|windows?)\s*$", re.IGNORECASE)
MIN_ROWS = 2  # a window smaller than this says nothing


@dataclass(frozen=True)
class WindowSpec:
    """A parsed ``monitor.window``: how to cut, and by how much."""

    kind: Kind
    size: int = 0  # rows per window, or the number of windows
    period: str = ""  # a pandas period alias

    @property
    def text(self) -> str:
        """The spec as a user writes it."""
        if self.kind == "period":
            return self.period
        return f"{self.size} {'rows' if self.kind == 'rows' else 'windows'}"


def parse_spec(
    spec: str | int | None, *, default_count: int = 5, key: str = "monitor.window"
) -> WindowSpec:
    """Parse a window spec; ``None`` means ``default_count`` equal windows.

    Raises
    ------
    ParamsError
        Naming ``key`` and the accepted forms, when the spec is none of them.
    """
    if spec is None:
        return WindowSpec("count", size=default_count)
    if isinstance(spec, bool):
        raise ParamsError(f"{key}: {spec!r} is not a window; {_FORMS}", key=key)
    if isinstance(spec, int):
        if spec < MIN_ROWS:
            raise ParamsError(f"{key}: {spec} rows is too few; {_FORMS}", key=key)
        return WindowSpec("rows", size=spec)
    text = str(spec).strip()
    match = _SPEC.match(text)
    if match:
        n, unit = int(match[1]), match[2].lower()
        kind: Kind = "rows" if unit.startswith("row") else "count"
        if n < (MIN_ROWS if kind == "rows" else 1):
            raise ParamsError(f"{key}: {text!r} is too few; {_FORMS}", key=key)
        return WindowSpec(kind, size=n)
    try:
        pd.Period("2026-01-01", freq=period_alias(text))
    except (ValueError, TypeError):
        raise ParamsError(f"{key}: {text!r} is not a window; {_FORMS}", key=key) from None
    return WindowSpec("period", period=text)


_FORMS = (
    "use a period of the time column (1D, 1W, 2W, 1M, 1Q, 1Y), 'N rows' (e.g. '5000 rows') "
    "or 'N windows' (e.g. '10 windows')"
)


def period_alias(text: str) -> str:
    """Return a period alias as pandas' periods spell it (offsets' ME, QE, YE: M, Q, Y)."""
    text = text.strip().upper()
    return re.sub(r"(M|Q|Y)E$", r"\1", text)


@dataclass(frozen=True)
class Window:
    """One window: a label, its time bounds when cut by time, and the positions of its rows."""

    key: str
    index: np.ndarray  # positions into the side's frame, in order
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None  # exclusive

    @property
    def rows(self) -> int:
        """The number of rows in the window."""
        return len(self.index)

    @property
    def rows_taken(self) -> slice | np.ndarray:
        """The window's rows as an indexer: a slice when they are consecutive, else ``index``.

        A slice takes a view (no copy, no gather): on a million rows in windows of 50,000, the
        per-window counts and sorts took about a third less time.
        """
        n = len(self.index)
        if n and int(self.index[-1]) - int(self.index[0]) + 1 == n:
            return slice(int(self.index[0]), int(self.index[-1]) + 1)
        return self.index


def take(values: np.ndarray, rows: slice | np.ndarray) -> np.ndarray:
    """Return ``values[rows]`` (rows of a matrix too), a view when ``rows`` is a slice.

    ``np.take`` along the first axis, not fancy indexing: taking 20,000 rows of a two-column
    matrix cost 0.71 ms by ``values[rows]`` and 0.05 ms by ``np.take`` (numpy 2.3).
    """
    if isinstance(rows, slice):
        return values[rows]
    return np.take(values, rows, axis=0)


def kept(mask: np.ndarray) -> slice | np.ndarray:
    """Return ``mask`` as an indexer, or every row (a view, no copy) when it keeps them all."""
    return slice(None) if mask.all() else mask


def split(n_rows: int, spec: WindowSpec, times: pd.Series | None = None) -> list[Window]:
    """Cut ``n_rows`` rows (in the order given; ``times`` aligned with them) into windows.

    Raises
    ------
    ParamsError
        When a period is asked for and there is no time column.
    """
    if spec.kind == "period":
        if times is None:
            raise ParamsError(
                f"monitor.window: {spec.text!r} cuts by time, but these rows have no time column; "
                "set monitor.time_column (or data.date_columns), or use 'N rows' / 'N windows'",
                key="monitor.window",
            )
        return _by_period(pd.Series(times).reset_index(drop=True), spec.period)
    size = row_window_size(spec, n_rows)
    return [
        Window(row_label(lo, size, n_rows), np.arange(lo, min(lo + size, n_rows)))
        for lo in range(0, n_rows, size)
    ]


def row_window_size(spec: WindowSpec, n_rows: int) -> int:
    """Return the rows of each window of an 'N rows' or 'N windows' spec over ``n_rows`` rows."""
    if spec.kind == "rows":
        return max(spec.size, 1)
    return max(int(np.ceil(n_rows / max(spec.size, 1))), 1)


def row_label(first: int, size: int, n_rows: int) -> str:
    """Return the name of the row window starting at row ``first`` (0-based): ``rows 1-300``."""
    return f"rows {first + 1:,}-{min(first + size, n_rows):,}"


def _by_period(times: pd.Series, period: str) -> list[Window]:
    stamps = pd.to_datetime(times, errors="coerce", utc=True).dt.tz_localize(None)
    periods = stamps.dt.to_period(period_alias(period))
    windows = []
    for p in sorted(periods.dropna().unique()):
        index = np.flatnonzero((periods == p).to_numpy())
        windows.append(Window(str(p), index, p.start_time, p.end_time + pd.Timedelta(1, "ns")))
    return windows
