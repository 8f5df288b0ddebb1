"""Drift per window: each window of a side against the whole reference, judged by a band.

Every column (the checked features and the model outputs ``prediction`` / ``proba_<class>``) is
scored in every window with the method the whole-period engine (:mod:`lib.data.drift`) picks for
it on the whole current data, or ``monitor.methods``; each statistic is computed by
:func:`lib.data.drift_stats.score` against the whole reference profile, so one window holding the
whole current side gives exactly :func:`lib.data.drift.column_drift`'s statistic.

Alert rule (NannyML's):

- distances (``wasserstein``, ``jensenshannon``, ``psi``): each *reference* window is scored
  against the rest of the reference (:func:`_left_out`; NannyML scores it against the whole
  reference, itself included, which pulls the band down); a window alerts when its distance
  rises above the reference windows' mean + ``sigmas`` standard deviations (upwards only; the
  band is clipped at 0). Fewer than 20 row windows are topped up with windows drawn at random
  from the reference (:func:`_drawn`). ``monitor.thresholds`` are not used
  here: they set the whole-period verdict only.
- p-values (``ks``, ``chisquare``, ``z``; Evidently's choice for references of at most 1,000
  rows): every current window of every such column is one test, so a run holds many, and at a
  fixed 0.05 each one alerts by chance one time in twenty: on statsmodels' randhie split at
  random with no shift (800 reference rows, 5 windows), 65-95 % of runs raised chance alerts,
  1.5-4 a run. The tests of a run are taken together (Benjamini-Hochberg, scipy's
  ``false_discovery_control``): a window alerts when its adjusted p-value is below the column's
  threshold (``monitor.thresholds`` or Evidently's 0.05; ``ks`` at or below, as the whole-period
  engine). ``lower`` is that cut on the raw p-value, ``k * threshold / m`` for ``k`` alerts
  among ``m`` tests (``threshold / m`` when none): the line the report draws.

Speed: each column is converted once for the whole side (numbers to float64, categories to
integer codes); a window then takes its rows by position, sorts them (numbers) or counts the
codes with one ``bincount`` (categories), and scores them against the reference values that the
profile already holds sorted; the Wasserstein distance is read off the two quantile functions,
whose steps meet where the two sample sizes alone say
(:func:`lib.monitoring.window_wasserstein.wasserstein`: no merge of the samples; the same
number to about 1e-15). Windows of 20,000 rows and more are not sorted: their distance comes
from counts in bins of the reference's range
(:func:`lib.monitoring.window_wasserstein.binned_wasserstein`, the same number to about 1e-13;
drift's CPU time on the monitor benchmark 2.6-2.9 to 1.9-2.2 s). No step loops over rows in
Python: 1,000,000 rows x 20 columns x 50 windows (and 50 reference windows) take about 2 s of
CPU. Binned statistics (``jensenshannon`` and ``psi`` on numbers) keep the engine's bins, spanned
per window over both samples, not bins shared by all windows: shared bins would be faster but
would no longer give the whole-period engine's number on the same rows.

With the bounded-memory backends the current side's rows are a sample; :class:`Exact` then
carries every current row's summaries per window (:mod:`lib.monitoring.stream`), and the
current windows' statistics (and rows) come from those: the numbers the whole rows would give
(:mod:`lib.data.drift_summary` says where they are exact). The reference side is unchanged.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import pandas as pd

from lib.core.contracts.predlog import PREDICTION, PROBA_PREFIX
from lib.core.errors import DataValidationError
from lib.core.frames import Columns
from lib.core.logs import get_logger
from lib.core.parallel import map_ordered, thread_count
from lib.core.param_sections import MonitorParams
from lib.data import drift, drift_stats, drift_summary
from lib.data.drift_profile import (
    FEW_VALUES,
    Codes,
    ColumnProfile,
    Kind,
    Profile,
    category_codes,
    numeric_values,
    profile_column,
    sorted_floats,
)
from lib.monitoring.window_verdicts import taken_together, verdict
from lib.monitoring.window_wasserstein import (
    BINNED_ROWS,
    BinnedReference,
    binned_wasserstein,
    wasserstein,
)
from lib.monitoring.windows import (
    DRAWN_ROWS,
    META,
    Window,
    band_top_up,
    median_rows,
    reference_band,
    window_meta,
)

log = get_logger(__name__)

COLUMNS = [*META, "column", "method", "statistic", "lower", "upper", "alert"]


@dataclass(frozen=True)
class Exact:
    """Summaries of every current row: per window key and column, and over all windows."""

    windows: Mapping[str, Mapping[str, drift_summary.Summary]]
    overall: Mapping[str, drift_summary.Summary]

    def method(self, col: ColumnProfile, given: str | None) -> str:
        """Return the whole-period engine's method on all current rows (or the one given)."""
        return given or drift.default_method(
            col, drift_summary.n_values(col, self.overall[col.name])
        )

    def score(self, method: str, col: ColumnProfile, key: str) -> float:
        """Return the window's statistic (NaN when it holds no value of the column)."""
        summary = self.windows.get(key, {}).get(col.name)
        if summary is None or summary.count == 0:
            return float("nan")
        return drift_summary.score(method, col, summary)

    def rows(self, key: str) -> int | None:
        """Return the window's rows, or None when no current row fell in it."""
        cols = self.windows.get(key)
        return next(iter(cols.values())).rows if cols else None


def output_kinds(reference: Columns, current: Columns) -> dict[str, Kind]:
    """Return the model-output columns present on both sides, with how they are compared.

    Probabilities are numeric; ``prediction`` is numeric when it holds floats (a regression)
    and categorical otherwise (class labels).
    """
    kinds: dict[str, Kind] = {}
    for name in current.columns:
        if name not in reference.columns:
            continue
        if name.startswith(PROBA_PREFIX):
            kinds[name] = "numeric"
        elif name == PREDICTION:
            floats = pd.api.types.is_float_dtype(reference[name])
            kinds[name] = "numeric" if floats else "categorical"
    return kinds


@dataclass(frozen=True)
class _Side:
    """One column of one side, converted once: floats, or category codes and their names."""

    values: np.ndarray  # numeric: float64 (NaN where missing); categorical: codes (-1 missing)
    names: np.ndarray | None = None  # categorical: the category of each code
    complete: bool = False  # numeric: every value finite (no window needs its present ones picked)

    @classmethod
    def of(cls, series: pd.Series, kind: Kind, codes: Codes | None = None) -> _Side:
        """Convert ``series`` (``codes``: a categorical one's :func:`category_codes`, if known)."""
        if kind == "numeric":
            values = numeric_values(series)
            return cls(values, complete=bool(np.isfinite(values).all()))
        return cls(*(codes or category_codes(series)))

    def present(
        self, index: slice | np.ndarray | None = None, *, sort: bool = True
    ) -> np.ndarray | dict[str, int]:
        """Return the window's present values as the statistics take them: sorted or counted.

        ``sort=False``: numbers in row order (for :func:`binned_wasserstein`, which needs none),
        a read-only view of the side's values where the window is a run of rows of a column
        without missing values: no mask and no copy of each window (on the monitor bench 12 of
        its 17 numeric columns, 0.08 s of CPU and 520 windows' fresh memory).
        """
        if self.names is None:
            taken = self.values if index is None else self.values[index]
            present = taken if self.complete else taken[np.isfinite(taken)]
            if sort:
                return sorted_floats(present)
            present = present.view()  # maybe the side's own values: no statistic may write there
            present.flags.writeable = False
            return present
        codes = self.values if index is None else self.values[index]
        counts = np.bincount(codes[codes >= 0], minlength=len(self.names))
        order = np.argsort(-counts, kind="stable")  # largest first, as category_counts
        return {str(self.names[i]): int(counts[i]) for i in order if counts[i] > 0}


def _method(col: ColumnProfile, cur: _Side, given: str | None) -> str:
    """Return the whole-period engine's method on the whole current side (or the one given)."""
    if given is not None:
        return given
    n_values = FEW_VALUES + 1  # more than any rule looks at
    if col.counts is not None:  # few reference values: count the distinct ones on both sides
        if cur.names is None:
            present = pd.unique(cur.values[np.isfinite(cur.values)])
            keys = {repr(float(u)) for u in present}
        else:
            keys = {str(u) for u in cur.names}
        n_values = len(set(col.counts) | keys)
    return drift.default_method(col, n_values)


def _size(present: np.ndarray | dict[str, int]) -> int:
    return sum(present.values()) if isinstance(present, dict) else len(present)


def _score(
    method: str,
    col: ColumnProfile,
    present: np.ndarray | dict[str, int],
    binned: BinnedReference | None = None,
) -> float:
    """Score a window against the reference (``binned``: its values binned, the window unsorted)."""
    n = _size(present)
    if n == 0:
        return float("nan")  # nothing present in this window: no statistic, no alert
    if method == "wasserstein" and isinstance(present, np.ndarray):
        distance = (
            wasserstein(col.values, present) if binned is None
            else binned_wasserstein(binned, present)
        )  # fmt: skip
        return distance / max(col.std, 0.001)  # as drift_stats.score
    return drift_stats.score(method, col, present, n)


def _left_out(
    method: str,
    col: ColumnProfile,
    present: np.ndarray | dict[str, int],
    binned: BinnedReference | None = None,
) -> float:
    """Score a reference window against the reference *without it* (leave one window out).

    A reference window is part of the reference it is compared with, which pulls its distance
    towards 0: for the Wasserstein distance by exactly the window's share of the reference
    (``F_R = s F_W + (1 - s) F_rest``, so ``d(W, R) = (1 - s) d(W, rest)``). Scored in-sample, the
    reference windows' band sat too low for the current windows, which are out-of-sample: on a
    random split of a real table with no shift (statsmodels' randhie, 4 reference windows) a
    quarter of the current window-columns alerted. So the reference windows are scored as the
    current ones are: Wasserstein rescaled by ``1 / (1 - s)``, counted statistics (categories,
    and numbers with few values) against the reference's counts minus the window's. p-values
    keep their own rule (the band is not used), and the binned distances of many-valued
    numbers (``jensenshannon``/``psi`` chosen for them) stay in-sample.
    """
    n = _size(present)
    if n == 0 or n >= col.count:
        return float("nan")
    if method == "wasserstein" and isinstance(present, np.ndarray):
        return _score(method, col, present, binned) / (1 - n / col.count)
    if method in drift.P_VALUE_METHODS or col.counts is None:
        return _score(method, col, present)
    window = present if isinstance(present, dict) else drift_stats.value_counts(present)
    rest = {k: c - window.get(k, 0) for k, c in col.counts.items()}
    rest = {k: c for k, c in rest.items() if c > 0}
    return _score(method, replace(col, counts=rest, count=col.count - n), present)


def _drawn(ref_windows: Sequence[Window], column: str) -> list[np.ndarray]:
    """Return the extra reference windows a distance's band is learned from (``band_top_up``).

    Measured on a real table with no shift (statsmodels' randhie split at random), each window
    left out: 4 reference windows gave 12.6 % chance alerts per window and column, 10 windows
    2.6 %; topped up to 20, 3.2 % and 1.8 %. Each is as large as the median reference window,
    drawn from the reference's rows seeded by the column's name, at most ``DRAWN_ROWS`` rows in
    all (large windows vary less, and each costs a sort). In the order drawn, not sorted: each
    statistic sorts or counts the values (drawn and gathered, 0.95 against 1.7 ms sorted, for
    50,000 of 500,000 rows).
    """
    extra = band_top_up(ref_windows)
    if not extra:
        return []
    n_rows = max(int(w.index.max()) for w in ref_windows if w.rows) + 1
    size = median_rows(ref_windows)
    rng = np.random.default_rng(zlib.crc32(column.encode()))
    draws = min(extra, DRAWN_ROWS // max(size, 1))
    return [rng.choice(n_rows, size, replace=False, shuffle=False) for _ in range(draws)]


def _column(
    col: ColumnProfile,
    ref: _Side,
    cur: _Side,
    ref_windows: Sequence[Window],
    cur_windows: Sequence[Window],
    method: str | None,
    threshold: float | None,
    sigmas: float,
    exact: Exact | None = None,
) -> list[dict[str, object]]:
    chosen = _method(col, cur, method) if exact is None else exact.method(col, method)
    sides = (("reference", ref, ref_windows), ("current", cur, cur_windows))
    binned = _binned(chosen, col, [*ref_windows, *cur_windows])
    score = {
        "reference": partial(_left_out, binned=binned),
        "current": partial(_score, binned=binned),
    }
    sort = binned is None
    scores = {
        period: [score[period](chosen, col, side.present(w.rows_taken, sort=sort)) for w in windows]
        for period, side, windows in sides
        if exact is None or period == "reference"
    }
    if exact is not None:
        scores["current"] = [exact.score(chosen, col, w.key) for w in cur_windows]
    lower = upper = float("nan")
    if chosen in drift.P_VALUE_METHODS:
        lower = drift.THRESHOLDS[chosen] if threshold is None else threshold
    else:
        drawn = [
            _left_out(chosen, col, ref.present(i, sort=sort), binned)
            for i in _drawn(ref_windows, col.name)
        ]
        band = reference_band(
            [*scores["reference"], *drawn], sigmas=sigmas, lower_limit=0.0, side="upper"
        )
        upper = float("nan") if band.upper is None else band.upper
    return [
        {
            **window_meta(period, w),
            **({"rows": exact.rows(w.key) or w.rows} if exact and period == "current" else {}),
            "column": col.name,
            "method": chosen,
            "statistic": v,
            "lower": lower,
            "upper": upper,
            "alert": verdict(chosen, v, lower, upper),
        }
        for period, _, windows in sides
        for w, v in zip(windows, scores[period], strict=True)
    ]


def _binned(method: str, col: ColumnProfile, windows: Sequence[Window]) -> BinnedReference | None:
    """Return the reference binned for the Wasserstein distance of large windows, else None.

    Windows from :data:`BINNED_ROWS` rows on are scored from counts (:func:`binned_wasserstein`,
    the same number without a sort); smaller ones are sorted, which is cheaper there.
    """
    if method != "wasserstein" or col.values is None or not len(col.values):
        return None
    rows = median_rows(windows)
    return BinnedReference.of(col.values, rows) if rows >= BINNED_ROWS else None


def window_drift(
    reference: Columns,
    current: Columns,
    kinds: Mapping[str, Kind],
    ref_windows: Sequence[Window],
    cur_windows: Sequence[Window],
    params: MonitorParams,
    *,
    profile: Profile | None = None,
    exact: Exact | None = None,
) -> pd.DataFrame:
    """Score every column in every window against the whole reference (see the module doc).

    Parameters
    ----------
    reference, current
        The two sides' rows; the windows index into them by position.
    kinds
        Columns to check -> ``numeric`` or ``categorical``. The model outputs (``prediction``,
        ``proba_<class>``) are added when both frames hold them.
    ref_windows, cur_windows
        The windows of each side (:func:`lib.monitoring.windows.reference_windows`, ``split``).
    params
        ``methods`` and ``thresholds`` (per column) and ``sigmas`` are used.
    profile
        The reference's saved profile; columns it lacks are profiled from ``reference``.
    exact
        Summaries of every current row (``current`` is then a sample of them): the current
        windows are scored from those. Every checked column must be summarised.

    Returns
    -------
    pandas.DataFrame
        ``period, window, start, end, rows, column, method, statistic, lower, upper, alert``:
        one row per window and column, the reference's windows first.

    Raises
    ------
    DataValidationError
        When a column is missing from a side, or has no present value in the reference.
    """
    wanted = checked_columns(reference, current, kinds)
    run = DriftRun(ref_windows, cur_windows, params, profile, exact)
    # one column at a time per thread: its two sides are converted, scored and dropped
    per_column = map_ordered(
        lambda item: run.column(*item, reference, current),
        wanted.items(),
        thread_count(params.threads),
    )
    return run.table([row for rows in per_column for row in rows], len(wanted))


def checked_columns(
    reference: Columns, current: Columns, kinds: Mapping[str, Kind]
) -> dict[str, Kind]:
    """Return the columns :func:`window_drift` scores: ``kinds`` and the model outputs.

    Raises
    ------
    DataValidationError
        When a column is missing from a side.
    """
    wanted: dict[str, Kind] = {**kinds, **output_kinds(reference, current)}
    for side, frame in (("reference", reference), ("current", current)):
        absent = [c for c in wanted if c not in frame.columns]
        if absent:
            raise DataValidationError(
                f"{side} data: columns {absent} are missing; both sides must hold every "
                "monitored column (or exclude them in monitor.exclude)",
                column=absent[0],
            )
    return wanted


@dataclass(frozen=True)
class DriftRun:
    """One :func:`window_drift` call: each column scored on its own, then the table assembled.

    Split so that :func:`lib.monitoring.window_checks.run_window_checks` can score a column
    from the same read as the quality check counts it.
    """

    ref_windows: Sequence[Window]
    cur_windows: Sequence[Window]
    params: MonitorParams
    profile: Profile | None = None
    exact: Exact | None = None

    def column(
        self,
        name: str,
        kind: Kind,
        reference: Columns,
        current: Columns,
        codes: tuple[Codes, Codes] | None = None,
    ) -> list[dict[str, object]]:
        """Return the table's rows of column ``name`` (read from the two sides).

        ``codes``: each side's :func:`category_codes` of the column, when the caller has them
        (used where the column is checked as categorical).

        Raises
        ------
        DataValidationError
            When the column has no present value in the reference.
        """
        known = self.profile.columns.get(name) if self.profile is not None else None
        ref_values = reference[name]
        col = known if known is not None else profile_column(name, ref_values, kind)
        if col.count == 0:
            raise DataValidationError(
                f"column {name!r}: no present values in the reference data, so drift cannot be "
                "measured; exclude the column in monitor.exclude or fix the data",
                column=name,
            )
        exact = self.exact if self.exact is not None and name in self.exact.overall else None
        params = self.params
        return _column(
            col,
            _Side.of(ref_values, col.kind, codes and codes[0]),
            _Side.of(current[name], col.kind, codes and codes[1]),
            self.ref_windows,
            self.cur_windows,
            params.methods.get(name),
            params.thresholds.get(name),
            params.sigmas,
            exact,
        )

    def table(self, rows: list[dict[str, object]], columns: int) -> pd.DataFrame:
        """Return the table of every column's rows (p-values judged together)."""
        out = taken_together(pd.DataFrame(rows, columns=COLUMNS))
        log.info(
            "window_drift", columns=columns, windows=len(self.cur_windows),
            alerts=_count_alerts(out),
        )  # fmt: skip
        return out.astype({"alert": bool, "rows": "int64"})


def _count_alerts(frame: pd.DataFrame) -> int:
    return int(frame.loc[frame["period"] == "current", "alert"].sum())
