"""Mergeable summaries of current data, and drift statistics computed from them.

A log larger than memory is read in batches (:mod:`lib.monitoring.stream`): each batch is
summarised per column against the reference's :class:`~lib.data.drift_profile.ColumnProfile`,
and summaries of batches, files or workers are added together (:meth:`merge`). Memory is the
summaries', whatever the rows:

numeric
    Counts of the values between and at the reference's distinct kept values (its *grid*: the
    reference itself up to ``EXACT_MAX`` values, else its quantiles), the sum of the values in
    each gap, the extremes, and - while a summary holds at most ``EXACT_ROWS`` values - the values
    themselves. For a column with few reference values, the counts of each value too.
categorical
    The count of each category.

Every statistic equals :func:`lib.data.drift.column_drift`'s on the same rows when the summary
still holds its values. Beyond that: ``ks`` is exact (its D is read at the grid's points, where
it is taken; the p-value is SciPy's asymptotic one, which SciPy itself uses above
``EXACT_ROWS``); ``wasserstein`` is exact except in a gap where the current CDF crosses the
reference's, where the current values are taken as spread evenly (an error of at most that gap's
width times its share of the rows); ``chisquare``, ``z``, ``jensenshannon`` and ``psi`` on
categories or few-valued numbers are exact; ``jensenshannon`` and ``psi`` on other numbers place
each gap's values at their mean.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lib.data import drift_stats
from lib.data.drift_profile import (
    FEW_VALUES,
    ColumnProfile,
    category_counts,
    finite_values,
    numeric_values,
    sorted_floats,
)

EXACT_ROWS = 10_000  # values kept exactly up to this many (SciPy's exact KS limit)
MAX_VALUE_KEYS = 100_000  # distinct values counted for a few-valued column; the rest pooled
OTHER = "\x00other"  # the pooled key (no number's repr)
COUNT = np.int64  # counts per gap: a window of more than 2**31 rows stays exact


@dataclass
class NumericSummary:
    """One numeric column of some rows, against a reference grid (see the module)."""

    grid: np.ndarray  # the reference's distinct kept values, sorted
    rows: int = 0  # every row, missing values included
    count: int = 0  # present, finite values
    values: np.ndarray | None = field(default_factory=lambda: np.empty(0))  # kept while small
    between: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=COUNT))
    equal: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=COUNT))
    sums: np.ndarray = field(default_factory=lambda: np.empty(0))  # of the values per gap
    low: float = np.inf
    high: float = -np.inf
    value_counts: Counter[str] | None = None  # few-valued reference columns only

    @classmethod
    def empty(cls, col: ColumnProfile, count_values: bool | None = None) -> NumericSummary:
        """Return a summary of no rows on ``col``'s grid.

        ``count_values`` counts each distinct value (default: when the reference has few), as
        ``chisquare`` and ``z`` need.
        """
        counted = col.counts is not None if count_values is None else count_values
        return cls._blank(np.unique(col.values), counted)

    @classmethod
    def _blank(cls, grid: np.ndarray, counted: bool) -> NumericSummary:
        k = len(grid)
        return cls(
            grid=grid,
            between=np.zeros(k + 1, dtype=COUNT),
            equal=np.zeros(k, dtype=COUNT),
            sums=np.zeros(k + 1),
            value_counts=Counter() if counted else None,
        )

    def add(self, values: pd.Series | np.ndarray) -> NumericSummary:
        """Return this summary with ``values`` added (a new object).

        ``values``: a column, or its :func:`~lib.data.drift_profile.numeric_values` already.
        """
        array = values if isinstance(values, np.ndarray) else numeric_values(values)
        present = sorted_floats(finite_values(array))  # sorted keys search about 4x faster
        part = NumericSummary.empty_like(self)
        part.rows, part.count = len(array), len(present)
        part.values = present
        if len(present):
            part.low, part.high = float(present.min()), float(present.max())
            k = len(self.grid)
            right = np.searchsorted(self.grid, present, side="right")  # grid points <= v
            on_grid = self.grid[np.maximum(right - 1, 0)] == present
            on_grid &= right > 0
            gap = right[~on_grid]  # g[j-1] < v < g[j] lies in gap j
            part.between = np.bincount(gap, minlength=k + 1).astype(COUNT)
            part.equal = np.bincount(right[on_grid] - 1, minlength=k).astype(COUNT)
            part.sums = np.bincount(gap, weights=present[~on_grid], minlength=k + 1)
            if part.value_counts is not None:
                part.value_counts = Counter(drift_stats.value_counts(present))
        return self.merge(part)

    @classmethod
    def empty_like(cls, other: NumericSummary) -> NumericSummary:
        """Return a summary of no rows on ``other``'s grid."""
        return cls._blank(other.grid, other.value_counts is not None)

    def merge(self, other: NumericSummary) -> NumericSummary:
        """Return the summary of both summaries' rows."""
        values = None
        kept = self.values is not None and other.values is not None
        if kept and self.count + other.count <= EXACT_ROWS:
            values = np.concatenate([self.values, other.values])
        counts = None
        if self.value_counts is not None and other.value_counts is not None:
            counts = _capped(self.value_counts + other.value_counts)
        return NumericSummary(
            grid=self.grid,
            rows=self.rows + other.rows,
            count=self.count + other.count,
            values=values,
            between=self.between + other.between,
            equal=self.equal + other.equal,
            sums=self.sums + other.sums,
            low=min(self.low, other.low),
            high=max(self.high, other.high),
            value_counts=counts,
        )


@dataclass
class CategorySummary:
    """One categorical column of some rows: the count of each category."""

    rows: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def count(self) -> int:
        """Present values."""
        return sum(self.counts.values())

    def add(self, values: pd.Series) -> CategorySummary:
        """Return this summary with ``values`` added (a new object)."""
        return self.merge(CategorySummary(len(values), Counter(category_counts(values))))

    def merge(self, other: CategorySummary) -> CategorySummary:
        """Return the summary of both summaries' rows."""
        return CategorySummary(self.rows + other.rows, self.counts + other.counts)


Summary = NumericSummary | CategorySummary


def empty_summary(col: ColumnProfile, method: str | None = None) -> Summary:
    """Return a summary of no rows for the reference column ``col`` (checked with ``method``)."""
    if col.kind == "categorical":
        return CategorySummary()
    return NumericSummary.empty(col, True if method in ("chisquare", "z") else None)


def n_values(col: ColumnProfile, summary: Summary) -> int:
    """Distinct values in both samples, as :func:`lib.data.drift.default_method` counts them."""
    if col.counts is None:
        return FEW_VALUES + 1  # more than any rule looks at
    keys = set(col.counts)
    if isinstance(summary, CategorySummary):
        return len(keys | set(summary.counts))
    assert summary.value_counts is not None
    return len(keys | set(summary.value_counts))


def score(method: str, col: ColumnProfile, summary: Summary) -> float:
    """Return ``method``'s statistic of the summarised rows against ``col`` (see the module)."""
    n = summary.count
    if isinstance(summary, CategorySummary):
        return drift_stats.score(method, col, dict(summary.counts), n)
    if summary.values is not None:  # still every value: the very same computation
        return drift_stats.score(method, col, np.sort(summary.values), n)
    if method == "ks":
        return _ks(col, summary)
    if method == "wasserstein":
        return _wasserstein(col, summary) / max(col.std, 0.001)
    if summary.value_counts is not None:  # as the in-memory path counts each value
        return drift_stats.score(method, col, dict(summary.value_counts), n)
    if method in ("chisquare", "z"):
        raise ValueError(f"{method} needs value counts: summarise {col.name!r} with count_values")
    edges = drift_stats.numeric_edges(col, summary.low, summary.high, n)
    points, weights = _placed(summary)
    current = np.histogram(points, edges, weights=weights)[0] / n
    return drift_stats.share_distance(method, drift_stats.reference_shares(col, edges), current)


def _cdfs(col: ColumnProfile, summary: NumericSummary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At each grid point: the reference CDF, and the current share below and at-or-below it."""
    m = summary.count
    ref = np.searchsorted(col.values, summary.grid, side="right") / len(col.values)
    below = np.cumsum(summary.between[:-1]) + np.concatenate([[0], np.cumsum(summary.equal)[:-1]])
    return ref, below / m, (below + summary.equal) / m


def _ks(col: ColumnProfile, summary: NumericSummary) -> float:
    ref, below, at = _cdfs(col, summary)
    # sup |F_ref - F_cur| is reached at a grid point, or just below one (the last value of a gap
    # where F_ref still has its value at the previous point); a gap with no value repeats a point
    ref_before = np.concatenate([[0.0], ref[:-1]])
    d = max(float(np.max(np.abs(ref - at))), float(np.max(np.abs(ref_before - below))))
    n, m = col.count, summary.count
    big, small = max(n, m), min(n, m)
    from scipy import stats  # here, not with the module (see lib.data.drift_stats)

    return float(np.clip(stats.kstwo.sf(d, np.round(big * small / (big + small))), 0, 1))


def _wasserstein(col: ColumnProfile, summary: NumericSummary) -> float:
    """Return the integral of |F_ref - F_cur|, gap by gap (the module: where it is inexact)."""
    g, m = summary.grid, summary.count
    ref, below, at = _cdfs(col, summary)
    n_gap, s_gap = summary.between, summary.sums
    # the tails: below the first grid point F_ref is 0, above the last it is 1
    total = (n_gap[0] * g[0] - s_gap[0]) / m + (s_gap[-1] - n_gap[-1] * g[-1]) / m
    if len(g) > 1:
        width = np.diff(g)
        level = ref[:-1]  # F_ref on [g[i], g[i+1])
        start = at[:-1]  # F_cur just after g[i]
        end = below[1:]  # F_cur just before g[i+1]
        n, s = n_gap[1:-1], s_gap[1:-1]
        mass = start * width + (n * g[1:] - s) / m  # the integral of F_cur over the gap
        above = level >= end  # F_cur stays at or under F_ref
        under = level <= start  # F_cur stays at or over it
        exact = np.where(above, level * width - mass, mass - level * width)
        crossing = ~(above | under)
        # F_cur taken as rising evenly from start to end: |F_ref - F_cur| integrates to
        # two triangles, split where the line meets F_ref
        rise = np.where(crossing, end - start, 1.0)
        cut = np.where(crossing, (level - start) / rise, 0.0)
        approx = width * ((level - start) * cut / 2 + (end - level) * (1 - cut) / 2)
        total += float(np.sum(np.where(crossing, approx, exact)))
    return float(total)


def _placed(summary: NumericSummary) -> tuple[np.ndarray, np.ndarray]:
    """Each gap's values at their mean and each grid value as itself, with their counts."""
    means = np.divide(summary.sums, summary.between, out=np.zeros_like(summary.sums),
                      where=summary.between > 0)  # fmt: skip
    points = np.concatenate([means, summary.grid])
    return points, np.concatenate([summary.between, summary.equal]).astype(float)


def _capped(counts: Counter[str]) -> Counter[str]:
    if len(counts) <= MAX_VALUE_KEYS:
        return counts
    kept = Counter(dict(counts.most_common(MAX_VALUE_KEYS - 1)))
    kept[OTHER] = sum(counts.values()) - sum(kept.values())
    return kept
