"""Windows (NannyML's chunks): the rows of a side cut by time period or by row count.

Every per-window analysis (drift, data quality, realized and estimated performance) takes the
same :class:`Window` list, so a window means the same rows everywhere. The reference is cut into
windows of the *same size* (:func:`reference_windows`): the spread of a statistic over those
windows is what a current window is judged against (:func:`reference_band`).

A window spec (``monitor.window``) is one of:

- a pandas period alias, e.g. ``1D``, ``1W``, ``2W``, ``1M``, ``1Q``, ``1Y``: calendar periods
  of the time column (rows without a time fall in no window);
- ``N rows``: consecutive windows of N rows in time (or file) order, the last one possibly short;
- ``N windows``: N windows of about equal size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from lib.core.errors import ParamsError
from lib.core.windowspec import MIN_ROWS, WindowSpec, parse_spec, period_alias

__all__ = [
    "Band",
    "Window",
    "WindowSpec",
    "parse_spec",
    "reference_band",
    "reference_windows",
    "split",
]


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
    count = max(int(np.ceil(n_rows / max(spec.size, 1))), 1)
    size = spec.size if spec.kind == "rows" else count
    return [
        Window(f"rows {lo + 1:,}-{min(lo + size, n_rows):,}", np.arange(lo, min(lo + size, n_rows)))
        for lo in range(0, n_rows, size)
    ]


def _by_period(times: pd.Series, period: str) -> list[Window]:
    stamps = pd.to_datetime(times, errors="coerce", utc=True).dt.tz_localize(None)
    periods = stamps.dt.to_period(period_alias(period))
    windows = []
    for p in sorted(periods.dropna().unique()):
        index = np.flatnonzero((periods == p).to_numpy())
        windows.append(Window(str(p), index, p.start_time, p.end_time + pd.Timedelta(1, "ns")))
    return windows


def reference_windows(
    n_rows: int, spec: WindowSpec, current: list[Window], times: pd.Series | None = None
) -> list[Window]:
    """Cut the reference into windows of the current windows' size.

    By period when both sides are cut by time and the reference has times; otherwise by rows,
    each reference window holding the median current window's row count (at least two windows).
    """
    if spec.kind == "period" and times is not None and pd.Series(times).notna().any():
        return _by_period(pd.Series(times).reset_index(drop=True), spec.period)
    sizes = [w.rows for w in current if w.rows >= MIN_ROWS]
    size = int(np.median(sizes)) if sizes else max(n_rows // 10, MIN_ROWS)
    size = max(min(size, n_rows // 2), MIN_ROWS)
    return split(n_rows, WindowSpec("rows", size=size))


@dataclass(frozen=True)
class Band:
    """What a statistic's reference windows allow: NannyML's mean ± k standard deviations."""

    lower: float | None
    upper: float | None
    center: float

    def alerts(self, value: float) -> bool:
        """Whether ``value`` falls outside the band (NaN never alerts)."""
        if not np.isfinite(value):
            return False
        return bool(
            (self.lower is not None and value < self.lower)
            or (self.upper is not None and value > self.upper)
        )


def reference_band(
    values: np.ndarray | list[float],
    *,
    sigmas: float = 3.0,
    lower_limit: float | None = None,
    upper_limit: float | None = None,
    side: Literal["both", "upper", "lower"] = "both",
) -> Band:
    """Mean ± ``sigmas`` standard deviations of a statistic over the reference windows.

    Clipped to the statistic's own range (``lower_limit``/``upper_limit``, e.g. 0 and 1 for a
    share); ``side`` keeps one bound only (a distance alerts only upwards).
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return Band(None, None, float("nan"))
    mean, sd = float(v.mean()), float(v.std(ddof=0))
    lo, hi = mean - sigmas * sd, mean + sigmas * sd
    if lower_limit is not None:
        lo = max(lo, lower_limit)
    if upper_limit is not None:
        hi = min(hi, upper_limit)
    return Band(None if side == "upper" else lo, None if side == "lower" else hi, mean)
