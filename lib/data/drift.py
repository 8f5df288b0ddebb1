"""Drift statistics from a saved reference profile: vectorised NumPy/SciPy, Evidently's defaults.

The reference is summarised once (:func:`build_profile`) into per-column arrays: for numeric
columns the sorted values themselves up to ``exact_max`` of them (so every statistic is exact on
references of that size), else ``exact_max`` quantiles at the midpoints ``(i + 0.5) / k``; the
population standard deviation, extremes and, for low-cardinality columns, the value counts; for
categorical columns the category counts. Monitoring never re-reads the reference.

Methods and defaults follow Evidently 0.7 (``evidently.legacy.calculations.stattests``):

========================  =========================  =======================================
reference rows (non-NA)   numeric (> 5 values)       categorical, or numeric with <= 5 values
========================  =========================  =======================================
<= 1,000                  ``ks`` (p <= 0.05)         ``chisquare`` (> 2 values) / ``z`` (p < 0.05)
> 1,000                   ``wasserstein`` (>= 0.1)   ``jensenshannon`` (>= 0.1)
========================  =========================  =======================================

``psi`` (>= 0.1) is available for both kinds. A column drifts when its p-value falls below (or
its distance reaches) the threshold; the dataset drifts when the share of drifted columns reaches
``drift_share``. Missing and infinite values are left out of every statistic, as in Evidently.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from lib.core.atomic import atomic_path
from lib.core.errors import DataValidationError, ParamsError

Kind = Literal["numeric", "categorical"]
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
FEW_VALUES = 20  # numeric columns with at most this many distinct values keep their counts
EXACT_MAX = 10_000  # reference values kept exactly; larger references keep this many quantiles


@dataclass(frozen=True)
class ColumnProfile:
    """One reference column, summarised for drift checks."""

    name: str
    kind: Kind
    count: int  # non-missing, finite values
    missing: int
    values: np.ndarray = field(default_factory=lambda: np.empty(0))  # numeric: sorted sample
    exact: bool = True  # ``values`` are all the reference values (else quantiles)
    std: float = 0.0
    counts: dict[str, int] | None = None  # categorical, or numeric with few distinct values

    @property
    def nunique(self) -> int | None:
        """Distinct values, when known exactly (``None``: more than ``FEW_VALUES``)."""
        return len(self.counts) if self.counts is not None else None


@dataclass(frozen=True)
class Profile:
    """A reference table summarised column by column."""

    rows: int
    columns: dict[str, ColumnProfile]

    def save(self, path: Path) -> None:
        """Write the profile to one ``.npz`` file atomically."""
        meta = {
            "rows": self.rows,
            "columns": [
                {
                    "name": c.name,
                    "kind": c.kind,
                    "count": c.count,
                    "missing": c.missing,
                    "exact": c.exact,
                    "std": c.std,
                    "counts": c.counts,
                }
                for c in self.columns.values()
            ],
        }
        arrays = {f"v{i}": c.values for i, c in enumerate(self.columns.values())}
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> Profile:
        """Read a profile written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                columns = {
                    m["name"]: ColumnProfile(
                        name=m["name"],
                        kind=m["kind"],
                        count=m["count"],
                        missing=m["missing"],
                        values=data[f"v{i}"],
                        exact=m["exact"],
                        std=m["std"],
                        counts=m["counts"],
                    )
                    for i, m in enumerate(meta["columns"])
                }
        except (OSError, KeyError, ValueError) as exc:
            raise DataValidationError(
                f"{path}: not a readable drift profile ({exc}); rebuild it by rerunning the "
                "evaluate stage, or point monitor.reference at a CSV/Parquet file",
                path=path,
            ) from exc
        return cls(rows=int(meta["rows"]), columns=columns)


def _finite(values: pd.Series | np.ndarray) -> np.ndarray:
    array: np.ndarray = np.asarray(values, dtype=float)
    kept: np.ndarray = array[np.isfinite(array)]
    return kept


def as_categories(values: pd.Series) -> pd.Series:
    """Return the values as strings (booleans ``True``/``False``), missing kept as NaN."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.rename_categories([str(c) for c in values.cat.categories])
    out = values.astype(object).where(values.notna())
    return out.map(str, na_action="ignore")


def category_counts(values: pd.Series) -> dict[str, int]:
    """Count each present value (as a string), largest first."""
    counts = as_categories(values).value_counts(sort=True, dropna=True)
    return {str(k): int(v) for k, v in counts.items() if v > 0}


def numeric_values(values: pd.Series) -> np.ndarray:
    """Return the column as float64, dates as days since 1970 (NaN where missing)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        days = (values - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
        return np.asarray(days, dtype=float)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def profile_column(
    name: str, values: pd.Series, kind: Kind, exact_max: int = EXACT_MAX
) -> ColumnProfile:
    """Summarise one reference column (see the module docstring)."""
    if kind == "categorical":
        counts = category_counts(values)
        total = sum(counts.values())
        return ColumnProfile(name, kind, total, len(values) - total, counts=counts)
    present = np.sort(_finite(numeric_values(values)))
    n = len(present)
    exact = n <= exact_max
    kept = present if exact else present[((np.arange(exact_max) + 0.5) * n / exact_max).astype(int)]
    few = None
    if n:
        uniq, cnt = np.unique(present, return_counts=True)
        if len(uniq) <= FEW_VALUES:
            few = {repr(float(u)): int(c) for u, c in zip(uniq, cnt, strict=True)}
    return ColumnProfile(
        name,
        kind,
        n,
        len(values) - n,
        values=kept,
        exact=exact,
        std=float(present.std()) if n else 0.0,
        counts=few,
    )


def build_profile(
    frame: pd.DataFrame, kinds: Mapping[str, Kind], exact_max: int = EXACT_MAX
) -> Profile:
    """Summarise the reference columns named in ``kinds`` (name -> numeric | categorical)."""
    missing = [c for c in kinds if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"reference: columns {missing} are missing; the reference must hold every monitored "
            "column", column=missing[0]
        )  # fmt: skip
    columns = {c: profile_column(c, frame[c], k, exact_max) for c, k in kinds.items()}
    return Profile(rows=len(frame), columns=columns)


# --- statistics -------------------------------------------------------------------------------


def _ecdf(sorted_values: np.ndarray, at: np.ndarray) -> np.ndarray:
    return np.searchsorted(sorted_values, at, side="right") / len(sorted_values)


def _cdf_gaps(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both empirical CDFs just right of each point of the merged sample, and the gap widths."""
    merged = np.concatenate([ref, cur])
    merged.sort(kind="stable")
    return _ecdf(ref, merged[:-1]), _ecdf(cur, merged[:-1]), np.diff(merged)


def wasserstein(ref: np.ndarray, cur: np.ndarray) -> float:
    """First Wasserstein distance between two sorted samples (as ``scipy.stats``)."""
    f_ref, f_cur, widths = _cdf_gaps(ref, cur)
    return float(np.sum(np.abs(f_ref - f_cur) * widths))


def ks_pvalue(col: ColumnProfile, cur: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov p-value (SciPy's own on exact references)."""
    if col.exact:
        return float(stats.ks_2samp(col.values, cur).pvalue)
    merged = np.concatenate([col.values, cur])
    d = float(np.max(np.abs(_ecdf(col.values, merged) - _ecdf(cur, merged))))
    n, m = col.count, len(cur)
    return float(stats.kstwo.sf(d, np.round(n * m / (n + m))))


def _category_pairs(col: ColumnProfile, cur: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
    ref = col.counts or {}
    keys = list(dict.fromkeys([*cur, *ref]))
    return (
        np.array([ref.get(k, 0) for k in keys], dtype=float),
        np.array([cur.get(k, 0) for k in keys], dtype=float),
    )


def _fill_zeroes(percents: np.ndarray) -> np.ndarray:
    """Evidently's ``feel_zeroes``: empty bins get a tiny share so logs stay finite."""
    smallest = percents[percents != 0].min()
    return np.where(percents == 0, smallest / 1e6 if smallest <= 1e-4 else 1e-4, percents)


def _binned(
    col: ColumnProfile, cur: np.ndarray | Mapping[str, int], n_cur: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return reference and current shares per bin, as Evidently's ``get_binned_data``."""
    if isinstance(cur, Mapping):
        ref_c, cur_c = _category_pairs(col, cur)
        return ref_c / col.count, cur_c / n_cur
    assert isinstance(cur, np.ndarray)
    if col.counts is not None:  # few distinct values: each value is a bin
        ref_c, cur_c = _category_pairs(col, _value_counts(cur))
        return ref_c / col.count, cur_c / n_cur
    lo, hi = min(col.values[0], cur[0]), max(col.values[-1], cur[-1])
    bins = int(np.ceil(np.log2(col.count + len(cur)) + 1))  # numpy's "sturges" on the union
    edges = np.linspace(lo, hi, bins + 1)
    weight = col.count / len(col.values)  # quantiles each stand for this many rows
    ref_h = np.histogram(col.values, edges)[0] * weight
    return ref_h / col.count, np.histogram(cur, edges)[0] / n_cur


def _value_counts(values: np.ndarray) -> dict[str, int]:
    uniq, cnt = np.unique(values, return_counts=True)
    return {repr(float(u)): int(c) for u, c in zip(uniq, cnt, strict=True)}


def chisquare_pvalue(col: ColumnProfile, cur: Mapping[str, int]) -> float:
    """Pearson's chi-square of current counts against reference shares (as Evidently)."""
    ref_c, cur_c = _category_pairs(col, cur)
    expected = ref_c * (cur_c.sum() / col.count)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(stats.chisquare(cur_c, expected).pvalue)


def z_pvalue(col: ColumnProfile, cur: Mapping[str, int]) -> float:
    """Two-proportion z-test on the share of values other than the first (sorted) one."""
    ref = col.counts or {}
    keys = sorted({*ref, *cur})
    if len(keys) == 1:
        return 1.0
    n1, n2 = col.count, sum(cur.values())
    p1 = 1 - ref.get(keys[0], 0) / n1
    p2 = 1 - cur.get(keys[0], 0) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return float(2 * (1 - stats.norm.cdf(abs(z))))


# --- the check --------------------------------------------------------------------------------


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
    keys |= set(cur) if isinstance(cur, Mapping) else set(_value_counts(cur))
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
        cur = np.sort(_finite(numeric_values(values)))
        n = len(cur)
    if n == 0 or col.count == 0:
        side = "current" if n == 0 else "reference"
        raise DataValidationError(
            f"column {col.name!r}: no present values in the {side} data, so drift cannot be "
            "measured; exclude the column in monitor.exclude or fix the data",
            column=col.name,
        )
    chosen = method or default_method(col, _n_values(col, cur))
    limit = THRESHOLDS[chosen] if threshold is None else threshold
    score = _score(chosen, col, cur, n)
    drifted = score <= limit if chosen == "ks" else score < limit
    if chosen not in P_VALUE_METHODS:
        drifted = score >= limit
    return ColumnDrift(
        column=col.name,
        kind=col.kind,
        method=chosen,
        threshold=limit,
        score=score,
        drifted=bool(drifted),
        reference_rows=col.count,
        current_rows=n,
        reference_missing=col.missing / max(col.count + col.missing, 1),
        current_missing=(len(values) - n) / max(len(values), 1),
    )


def _score(method: str, col: ColumnProfile, cur: np.ndarray | dict[str, int], n: int) -> float:
    numeric = isinstance(cur, np.ndarray)
    if method in ("ks", "wasserstein") and not numeric:
        raise ParamsError(
            f"column {col.name!r} is categorical; {method} applies to numeric columns only "
            "(use chisquare, z, jensenshannon or psi)",
            key=f"monitor.methods.{col.name}",
        )
    if method == "ks":
        assert isinstance(cur, np.ndarray)
        return ks_pvalue(col, cur)
    if method == "wasserstein":
        assert isinstance(cur, np.ndarray)
        return wasserstein(col.values, cur) / max(col.std, 0.001)
    counts = cur if isinstance(cur, dict) else _value_counts(cur)
    if method == "chisquare":
        return chisquare_pvalue(col, counts)
    if method == "z":
        return z_pvalue(col, counts)
    ref_p, cur_p = _binned(col, cur, n)
    if method == "jensenshannon":
        return float(distance.jensenshannon(ref_p, cur_p))
    ref_p, cur_p = _fill_zeroes(ref_p), _fill_zeroes(cur_p)
    return float(np.sum((ref_p - cur_p) * np.log(ref_p / cur_p)))  # psi


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
    names = _validate(profile, columns, methods, thresholds)
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


def _validate(
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


# --- straight from Parquet files, one column at a time ----------------------------------------


def read_column(path: Path, name: str, kind: Kind) -> pd.Series:
    """Read one column of a Parquet file (categorical columns dictionary-encoded)."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(
            path, columns=[name], read_dictionary=[name] if kind == "categorical" else None
        )
    except (OSError, KeyError, ValueError) as exc:
        raise DataValidationError(
            f"{path}: cannot read column {name!r} ({str(exc).splitlines()[0]}); check the file "
            "and the column name",
            path=path,
            column=name,
        ) from None
    series: pd.Series = table.column(0).to_pandas()
    return series


def profile_parquet(path: Path, kinds: Mapping[str, Kind], exact_max: int = EXACT_MAX) -> Profile:
    """Profile a Parquet reference column by column: memory holds one column at a time."""
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(path).metadata.num_rows
    columns = {
        c: profile_column(c, read_column(path, c, k), k, exact_max) for c, k in kinds.items()
    }
    return Profile(rows=rows, columns=columns)


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

    names = _validate(profile, columns, methods, thresholds)
    rows = pq.ParquetFile(path).metadata.num_rows
    kinds = {c: profile.columns[c].kind for c in names}
    return _check(
        profile, names, lambda c: read_column(path, c, kinds[c]), methods, thresholds,
        drift_share, rows,
    )  # fmt: skip
