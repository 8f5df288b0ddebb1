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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from lib.core.windowspec import MIN_ROWS, Window, WindowSpec, parse_spec, split

__all__ = [
    "MIN_BAND_VALUES",
    "Band",
    "Window",
    "WindowSpec",
    "band_top_up",
    "parse_spec",
    "reference_band",
    "reference_windows",
    "split",
]


def reference_windows(
    n_rows: int,
    spec: WindowSpec,
    current: list[Window],
    times: pd.Series | None = None,
    rows: list[int] | None = None,
) -> list[Window]:
    """Cut the reference into windows of the current windows' size.

    By period when both sides are cut by time and the reference has times; otherwise by rows,
    each reference window holding the median current window's row count (at least two windows).
    ``rows``: the current windows' row counts when ``current`` indexes a sample of them.
    """
    if spec.kind == "period" and times is not None and pd.Series(times).notna().any():
        return split(n_rows, spec, times)
    sizes = [n for n in (rows or [w.rows for w in current]) if n >= MIN_ROWS]
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
    sd_floor: float = 0.0,
) -> Band:
    """Mean ± ``sigmas`` standard deviations of a statistic over the reference windows.

    Clipped to the statistic's own range (``lower_limit``/``upper_limit``, e.g. 0 and 1 for a
    share); ``side`` keeps one bound only (a distance alerts only upwards). ``sd_floor`` is the
    least standard deviation the band takes (a spread known to be there, the values' own
    notwithstanding).
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return Band(None, None, float("nan"))
    mean, sd = float(v.mean()), max(float(v.std(ddof=0)), sd_floor)
    lo, hi = mean - sigmas * sd, mean + sigmas * sd
    if lower_limit is not None:
        lo = max(lo, lower_limit)
    if upper_limit is not None:
        hi = min(hi, upper_limit)
    return Band(None if side == "upper" else lo, None if side == "lower" else hi, mean)


MIN_BAND_VALUES = 20  # values a band of row windows is learned from, at least
DRAWN_ROWS = 200_000  # rows the drawn windows of a costly statistic hold, at most, in all


def band_top_up(ref_windows: Sequence[Window]) -> int:
    """Return how many drawn windows top a band of row windows up to ``MIN_BAND_VALUES``.

    A band from k reference windows leaves a stable window outside it by chance far more often
    than mean + 3 sd promises when k is small (the sd is a poor estimate), so the drift and
    multivariate checks add windows drawn at random from the reference's rows; they only widen
    the sample the band is learned from and are not shown. Period windows get none (0): their
    spread carries the reference's own seasons, which random rows would hide.
    """
    shown = [w for w in ref_windows if w.rows]
    if not shown or any(w.start is not None for w in shown):
        return 0
    return max(MIN_BAND_VALUES - len(shown), 0)


def median_rows(windows: Sequence[Window]) -> int:
    """Return the median row count of the windows holding rows (0 when none does)."""
    sizes = [w.rows for w in windows if w.rows]
    return int(np.median(sizes)) if sizes else 0


def drawn_windows(
    ref_windows: Sequence[Window],
    rows: np.ndarray,
    size: int,
    seed: int,
    max_rows: int | None = None,
) -> list[np.ndarray]:
    """Return the extra windows that top a band of row windows up (:func:`band_top_up`).

    Each holds ``size`` of ``rows`` (reference row positions) drawn with replacement, seeded:
    drawn without replacement from a small reference, overlapping windows understate the
    spread of independent ones. ``max_rows`` caps the rows of all of them together (large
    windows vary little, and a costly statistic pays for every row).
    """
    extra = band_top_up(ref_windows)
    if max_rows is not None:
        extra = min(extra, max_rows // max(size, 1))
    if extra <= 0 or size <= 0 or not len(rows):
        return []
    rng = np.random.default_rng(seed)
    # in row order: the statistics do not depend on it, and ordered reads stay in the cache
    return [rows[np.sort(rng.integers(0, len(rows), size))] for _ in range(extra)]


def centre_widening(ref_windows: Sequence[Window], size: int, reference_rows: int) -> float:
    """Return the factor a band's sd takes for the error of its own centre (row windows).

    The centre is a mean over the reference's rows: a window of ``size`` rows differs from it
    by the sampling error of both, ``sd * sqrt(1 + size / reference_rows)``. Negligible for a
    large reference; on a small table's test split (88 rows against windows of 60) the band
    without it left a quarter to a half of the runs with a chance alert. Period windows keep
    1: their spread carries the reference's seasons (as :func:`band_top_up`), and widened it
    missed one of gapminder's decades-long shifts.
    """
    if any(w.start is not None for w in ref_windows if w.rows):
        return 1.0
    return float(np.sqrt(1 + max(size, 0) / max(reference_rows, 1)))


META = ["period", "window", "start", "end", "rows"]


def window_meta(period: str, window: Window) -> dict[str, object]:
    """Return the columns every per-window table starts with: side, window, bounds, rows."""
    return {
        "period": period,
        "window": window.key,
        "start": pd.NaT if window.start is None else pd.Timestamp(window.start),
        "end": pd.NaT if window.end is None else pd.Timestamp(window.end),
        "rows": window.rows,
    }


def sorted_draw(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Return ``size`` positions drawn uniformly from ``0..n-1`` with replacement, ascending.

    Drawn in order rather than drawn and sorted: the cumulative sums of ``size + 1``
    exponential draws, divided by their total, are the order statistics of ``size`` uniform
    draws, and their floors those of uniform positions (0.17 ms for 20,000 against 0.67 for
    drawing and sorting them).
    """
    positions: np.ndarray = sorted_draws(rng, n, size, 1)[0]
    return positions


def sorted_draws(rng: np.random.Generator, n: int, size: int, count: int) -> np.ndarray:
    """Return ``count`` rows of :func:`sorted_draw`: the same rows, from the same draws."""
    sums = np.cumsum(rng.standard_exponential((count, size + 1)), axis=1)
    positions: np.ndarray = (sums[:, :-1] * (n / sums[:, -1:])).astype(np.intp)
    np.minimum(positions, n - 1, out=positions)  # a rounding up to n
    return positions
