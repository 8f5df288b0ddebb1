"""Drift verdicts: current data against a saved reference profile, with Evidently's defaults.

The reference is a :class:`lib.data.drift_profile.Profile`; the statistics are in
:mod:`lib.data.drift_stats`. Methods and defaults follow Evidently 0.7
(``evidently.legacy.calculations.stattests``):

========================  =========================  =======================================
reference rows (non-NA)   numeric (> 5 values)       categorical, or numeric with <= 5 values
========================  =========================  =======================================
<= 1,000                  ``ks`` (p <= 0.05)         ``chisquare`` (> 2 values) / ``z`` (p < 0.05)
> 1,000                   ``wasserstein`` (>= 0.1)   ``jensenshannon`` (>= 0.1)
========================  =========================  =======================================

``psi`` (>= 0.1) is available for both kinds. A column drifts when its p-value falls below (or
its distance reaches) the threshold; the dataset drifts when the share of drifted columns reaches
``drift_share``. Missing and infinite values are left out of every statistic, as in Evidently.

One departure: ``chisquare`` is the test of homogeneity of the two samples' counts (as SciPy's
``chi2_contingency``, NannyML's chi-square), not Evidently's goodness of fit to the reference's
shares taken as exact, which on the small references it is chosen for called every category the
reference happened to miss a drift (:func:`lib.data.drift_stats.chisquare_pvalue`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lib.core.errors import DataValidationError, ParamsError
from lib.data import drift_stats, drift_summary
from lib.data.drift_profile import (
    FEW_VALUES,
    ColumnProfile,
    Kind,
    Profile,
    category_counts,
    finite_values,
    numeric_values,
    read_column,
    sorted_floats,
)

METHODS = ("ks", "wasserstein", "chisquare", "z", "jensenshannon", "psi")
THRESHOLDS = {
    "ks": 0.05,
    "chisquare": 0.05,
    "z": 0.05,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
    "psi": 0.1,
}
P_VALUE_METHODS = frozenset({"ks", "chisquare", "z"})
SMALL_REFERENCE = 1000  # Evidently: statistical tests up to this many reference rows


@dataclass(frozen=True)
class ColumnDrift:
    """The verdict on one column."""

    column: str
    kind: Kind
    method: str
    threshold: float
    score: float
    drifted: bool
    reference_rows: int
    current_rows: int
    reference_missing: float  # shares of rows
    current_missing: float


def default_method(col: ColumnProfile, n_values: int) -> str:
    """Evidently 0.7's choice for a column with ``n_values`` distinct values in both samples."""
    if col.count <= SMALL_REFERENCE:
        if col.kind == "numeric" and n_values > 5:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    if col.kind == "numeric" and n_values > 5:
        return "wasserstein"
    return "jensenshannon"


def _n_values(col: ColumnProfile, cur: np.ndarray | Mapping[str, int]) -> int:
    if col.counts is None:
        return FEW_VALUES + 1  # more than any rule looks at
    keys = set(col.counts)
    keys |= set(cur) if isinstance(cur, Mapping) else set(drift_stats.value_counts(cur))
    return len(keys)


def column_drift(
    col: ColumnProfile,
    values: pd.Series,
    method: str | None = None,
    threshold: float | None = None,
) -> ColumnDrift:
    """Compare one current column with its reference profile."""
    cur: np.ndarray | dict[str, int]
    if col.kind == "categorical":
        cur = category_counts(values)
        n = sum(cur.values())
    else:
        cur = sorted_floats(finite_values(numeric_values(values)))
        n = len(cur)
    if n == 0 or col.count == 0:
        _no_values(col, "current" if n == 0 else "reference")
    chosen = method or default_method(col, _n_values(col, cur))
    return _verdict(col, chosen, threshold, drift_stats.score(chosen, col, cur, n), n, len(values))


def summary_drift(
    col: ColumnProfile,
    summary: drift_summary.Summary,
    method: str | None = None,
    threshold: float | None = None,
) -> ColumnDrift:
    """Like :func:`column_drift`, from a summary of the current rows (see drift_summary)."""
    if summary.count == 0 or col.count == 0:
        _no_values(col, "current" if summary.count == 0 else "reference")
    chosen = method or default_method(col, drift_summary.n_values(col, summary))
    score = drift_summary.score(chosen, col, summary)
    return _verdict(col, chosen, threshold, score, summary.count, summary.rows)


def _verdict(
    col: ColumnProfile, method: str, threshold: float | None, score: float, n: int, rows: int
) -> ColumnDrift:
    limit = THRESHOLDS[method] if threshold is None else threshold
    drifted = score <= limit if method == "ks" else score < limit
    if method not in P_VALUE_METHODS:
        drifted = score >= limit
    return ColumnDrift(
        column=col.name,
        kind=col.kind,
        method=method,
        threshold=limit,
        score=score,
        drifted=bool(drifted),
        reference_rows=col.count,
        current_rows=n,
        reference_missing=col.missing / max(col.count + col.missing, 1),
        current_missing=(rows - n) / max(rows, 1),
    )


def _no_values(col: ColumnProfile, side: str) -> None:
    raise DataValidationError(
        f"column {col.name!r}: no present values in the {side} data, so drift cannot be "
        "measured; exclude the column in monitor.exclude or fix the data",
        column=col.name,
    )


@dataclass(frozen=True)
class DriftReport:
    """Per-column verdicts and the dataset verdict."""

    columns: list[ColumnDrift]
    drift_share: float  # the threshold
    current_rows: int

    @property
    def drifted_share(self) -> float:
        """Share of checked columns that drifted."""
        return sum(c.drifted for c in self.columns) / max(len(self.columns), 1)

    @property
    def dataset_drift(self) -> bool:
        """Whether the share of drifted columns reached ``drift_share``."""
        return bool(self.columns) and self.drifted_share >= self.drift_share

    def table(self) -> pd.DataFrame:
        """One row per column, most drifted first (distances high, p-values low)."""
        frame = pd.DataFrame([c.__dict__ for c in self.columns])
        if frame.empty:
            return frame
        severity = np.where(
            frame["method"].isin(P_VALUE_METHODS),
            1 - frame["score"] / frame["threshold"],
            frame["score"] / frame["threshold"] - 1,
        )
        frame["severity"] = severity  # > 0 where drifted, comparable across methods
        return frame.sort_values(["drifted", "severity"], ascending=False, ignore_index=True)


def check_drift(
    profile: Profile,
    current: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    methods: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
) -> DriftReport:
    """Check each profiled column of ``current`` for drift against the reference ``profile``.

    Parameters
    ----------
    profile
        The reference, from :func:`build_profile` or :meth:`Profile.load`.
    current
        The current data; must hold every checked column.
    columns
        Columns to check (default: every profiled column).
    methods, thresholds
        Per-column overrides of the method (one of ``METHODS``) and its threshold.
    drift_share
        Share of drifted columns at which the dataset counts as drifted.

    Returns
    -------
    DriftReport
    """
    names = validate_columns(profile, columns, methods, thresholds)
    absent = [c for c in names if c not in current.columns]
    if absent:
        raise DataValidationError(
            f"column {absent[0]!r} is missing from the current data (missing: {absent}); monitor "
            "the same columns the model was trained on, or exclude them in monitor.exclude",
            column=absent[0],
        )
    return _check(
        profile, names, lambda c: current[c], methods, thresholds, drift_share, len(current)
    )


def validate_columns(
    profile: Profile,
    columns: Sequence[str] | None,
    methods: Mapping[str, str] | None,
    thresholds: Mapping[str, float] | None,
) -> list[str]:
    """Return the columns to check, after checking the per-column settings name them."""
    names = list(columns) if columns is not None else list(profile.columns)
    for key, given in (("methods", methods or {}), ("thresholds", thresholds or {})):
        stray = sorted(set(given) - set(names))
        if stray:
            raise ParamsError(
                f"monitor.{key}: {stray} are not monitored columns; monitored: {names}",
                key=f"monitor.{key}",
            )
    for name, method in (methods or {}).items():
        if method not in METHODS:
            raise ParamsError(
                f"monitor.methods.{name}: unknown method {method!r}; use one of {list(METHODS)}",
                key=f"monitor.methods.{name}",
            )
    unprofiled = [c for c in names if c not in profile.columns]
    if unprofiled:
        raise DataValidationError(
            f"column {unprofiled[0]!r} is missing from the reference profile (missing: "
            f"{unprofiled}); rebuild the reference, or exclude them in monitor.exclude",
            column=unprofiled[0],
        )
    return names


def _check(
    profile: Profile,
    names: list[str],
    values: Callable[[str], pd.Series],
    methods: Mapping[str, str] | None,
    thresholds: Mapping[str, float] | None,
    drift_share: float,
    rows: int,
) -> DriftReport:
    methods, thresholds = methods or {}, thresholds or {}
    verdicts = [
        column_drift(profile.columns[c], values(c), methods.get(c), thresholds.get(c))
        for c in names
    ]
    return DriftReport(verdicts, drift_share, rows)


def check_parquet(
    profile: Profile,
    path: Path,
    *,
    columns: Sequence[str] | None = None,
    methods: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
) -> DriftReport:
    """Like :func:`check_drift`, reading the current Parquet file one column at a time."""
    import pyarrow.parquet as pq

    names = validate_columns(profile, columns, methods, thresholds)
    rows = pq.ParquetFile(path).metadata.num_rows
    kinds = {c: profile.columns[c].kind for c in names}
    return _check(
        profile, names, lambda c: read_column(path, c, kinds[c]), methods, thresholds,
        drift_share, rows,
    )  # fmt: skip
