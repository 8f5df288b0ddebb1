"""Data quality per window: missing, out-of-range, unseen and unparsable values per column.

Alert rules (NannyML's data quality checks):

- missing values: a window alerts when its missing rate rises above the reference windows' mean
  + ``sigmas`` standard deviations (upwards only, clipped to [0, 1]); a reference with no
  missing value in any window allows none;
- out of range (numeric columns): present values below the reference's minimum or above its
  maximum are counted (NannyML's numerical range check). A window alerts when more of them fall
  outside than chance explains, or when one lies far outside. Chance: with no change, the ``n``
  reference values and a window's ``m`` present ones are exchangeable, so the probability that
  ``k`` or more of the ``m`` fall outside the reference's range is exactly
  ``(k + 1) f(k) - k f(k + 1)``, ``f(j) = m! (n + m - j)! / ((m - j)! (n + m)!)`` (the chance
  that ``j`` given extreme places of the ``n + m`` all hold new values; continuous data, ties
  make it smaller), and the window alerts when that is below ``OUT_OF_RANGE_ALPHA`` (0.001).
  The values of a window are not independent draws against a fixed range: they share the
  reference's extremes, and a small reference's range is often narrow for all of them at once.
  A binomial tail with ``p = 2 / (n + 1)``, used before, ignored that: on breast cancer (88
  reference rows, windows of 84, nothing shifted) it alerted on 11 outside, which this tail
  puts at 0.002. Far: beyond the range by more than the range's own width (a unit or sign
  error, a sentinel like 999999), which alerts whatever the count. A single new extreme just
  past the reference's is expected about once every ``(n + 1) / (2 m)`` windows and does not
  alert. Given the range of the project's data at ingest (the monitor stage passes the
  schema's min and max), the range is the union of the two: a value the data the model was
  built from held is not out of range because a small reference missed it. Breast cancer's
  heavy-tailed columns against a test split of 114 rows raised a data-quality alert in the
  real-data corpus's loop (`area error` 525.6 against the split's 6.8-170; the table reaches
  542).
  ``n`` stays the reference's count, which can only make the tail larger: the more cautious;
- unseen (categorical columns): any category the reference never holds alerts;
- type errors (numeric columns of a raw, untyped frame): any present value that does not parse
  as a number (or a date, for date columns) alerts. A typed frame has none.

``reason`` says which rules fired and by how much, "" when none did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import lgamma
from typing import cast

import numpy as np
import pandas as pd

from lib.core.errors import DataValidationError
from lib.core.frames import Columns
from lib.core.logs import get_logger
from lib.core.parallel import map_ordered, thread_count
from lib.data.drift_profile import Codes, category_codes, numeric_values
from lib.monitoring.windows import META, Window, reference_band, window_meta

log = get_logger(__name__)

COLUMNS = [
    *META, "column", "missing", "missing_rate", "out_of_range", "unseen", "type_errors",
    "alert", "reason",
]  # fmt: skip
_NUMERIC = frozenset({"numeric", "datetime"})  # schema kinds checked as numbers
_SHOWN = 3  # offending values quoted in a reason
OUT_OF_RANGE_ALPHA = 0.001  # a window's out-of-range count alerts below this chance probability


@dataclass(frozen=True)
class _Flags:
    """One column of one side, flagged a window at a time.

    No per-row masks of the whole side are held (a million rows took six, with their
    temporaries about 8 MiB of each column job, two at once on two threads): a window's flags
    are worked out from the values when it is counted. The numbers are a float64 column as
    read (not copied), or its conversion.
    """

    raw: pd.Series  # the values as given, to quote offenders
    numbers: np.ndarray | None = None  # numeric: as float64 (NaN where missing or unparsed)
    bad: np.ndarray | None = None  # numeric: where a present value did not parse (None: typed)
    lo: float = 0.0  # numeric: the range checked
    hi: float = 0.0
    codes: np.ndarray | None = None  # categorical: each value's code (-1: missing)
    new: np.ndarray | None = None  # categorical: whether each code is unseen (last: -1, no)
    missing: np.ndarray | None = None  # where isna holds, unless the numbers tell (float64)

    def flag(self, name: str, index: slice | np.ndarray) -> np.ndarray | None:
        """Return a flag of the rows ``index`` (None: the flag cannot hold on this side).

        ``name``: ``missing``, ``out_of_range``, ``unseen``, ``type_error`` or ``far``.
        """
        if name == "missing":
            return self.missing_at(index)
        if name == "unseen" and self.codes is not None and self.new is not None:
            unseen: np.ndarray = self.new[self.codes[index]]
            return unseen
        if name == "type_error":
            return None if self.bad is None else self.bad[index]
        if name in ("out_of_range", "far") and self.numbers is not None:
            values = self.numbers[index]
            # beyond the range, or by more than its own width (a comparison with NaN is
            # false: a missing value is never out of range)
            width = self.hi - self.lo if name == "far" else 0.0
            beyond: np.ndarray = (values < self.lo - width) | (values > self.hi + width)
            return beyond
        return None

    def missing_at(self, index: slice | np.ndarray) -> np.ndarray:
        """Return where the rows ``index`` are missing."""
        if self.missing is not None:
            return self.missing[index]
        nan: np.ndarray = np.isnan(cast(np.ndarray, self.numbers)[index])
        return nan  # a float64 column's numbers are its values: isna is isnan

    def count(self, index: slice | np.ndarray) -> dict[str, int]:
        names = (("missing",) * 2, ("out_of_range",) * 2, ("unseen",) * 2,
                 ("type_errors", "type_error"))  # fmt: skip
        flags = {key: self.flag(flag, index) for key, flag in names}
        return {key: 0 if f is None else int(np.count_nonzero(f)) for key, f in flags.items()}

    def far(self, index: slice | np.ndarray) -> bool:
        """Whether a value of the rows ``index`` lies beyond the range by more than its width."""
        far = self.flag("far", index)
        return far is not None and bool(far.any())

    def examples(self, flag: str, index: np.ndarray) -> str:
        picked = index[cast(np.ndarray, self.flag(flag, index))]  # quoted where some are flagged
        # the first distinct values in order of appearance, spelled only until _SHOWN distinct
        # spellings are found (a shifted window holds tens of thousands of offenders; spelling
        # them all took most of the check's time on a million rows)
        distinct = self.raw.iloc[picked].drop_duplicates()
        shown: dict[str, None] = {}
        for lo in range(0, len(distinct), 8 * _SHOWN):
            shown.update(dict.fromkeys(distinct.iloc[lo : lo + 8 * _SHOWN].astype(str)))
            if len(shown) >= _SHOWN:
                break
        return ", ".join(repr(v) for v in list(shown)[:_SHOWN])


def _as_numbers(values: pd.Series, kind: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Return the values as float64 (dates as days), and where a present value did not parse.

    None for the latter when the values are typed already: no parse error is possible (their
    numbers are NaN exactly where they are missing).
    """
    if kind == "datetime" and not pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.to_datetime(values, errors="coerce", utc=True).dt.tz_localize(None)
        numbers = numeric_values(parsed)
    elif pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        return numeric_values(values), None
    else:
        text = values.astype(object).where(values.notna())
        parsed_text = pd.to_numeric(text.map(_strip, na_action="ignore"), errors="coerce")
        numbers = np.asarray(parsed_text, dtype=float)
    return numbers, values.notna().to_numpy() & np.isnan(numbers)


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _flags(
    name: str,
    kind: str,
    reference: pd.Series,
    values: pd.Series,
    ingested: tuple[float, float] | None = None,
    codes: tuple[Codes, Codes] | None = None,
) -> tuple[_Flags, _Flags, str, int]:
    """Return both sides' row flags, the range described and the reference's present values.

    ``ingested``: a numeric column's range at ingest, which widens the reference's. ``codes``:
    a categorical column's :func:`category_codes` of each side, when the caller has them.
    """
    sides = []
    if kind in _NUMERIC:
        converted = [_as_numbers(series, kind) for series in (reference, values)]
        ref_numbers = converted[0][0]
        present = ref_numbers[~np.isnan(ref_numbers)]
        if not len(present):
            raise DataValidationError(
                f"reference: column {name!r} has no present values, so its range is unknown; "
                "exclude it in monitor.exclude or fix the reference",
                column=name,
            )
        lo, hi = float(present.min()), float(present.max())
        named = "the reference range"
        if ingested is not None and kind == "numeric" and (ingested[0] < lo or ingested[1] > hi):
            lo, hi, named = min(lo, ingested[0]), max(hi, ingested[1]), "the ingested range"
        for series, (numbers, bad) in zip((reference, values), converted, strict=True):
            # a typed float64 column's numbers are its values: missing where NaN (no mask
            # held); parsed ones (dates given as numbers) are NaN where they did not parse too
            floats = bad is None and series.dtype == np.float64
            missing = None if floats else series.isna().to_numpy()
            sides.append(_Flags(series, numbers, bad, lo, hi, missing=missing))
        return sides[0], sides[1], f"{named} [{lo:.4g}, {hi:.4g}]", len(present)
    coded = codes or tuple(category_codes(series) for series in (reference, values))
    ref_codes, ref_names = coded[0]
    known = set(ref_names[np.bincount(ref_codes[ref_codes >= 0], minlength=len(ref_names)) > 0])
    for series, (side_codes, names) in zip((reference, values), coded, strict=True):
        new = np.append([n not in known for n in names], False)  # code -1 (missing): not new
        sides.append(_Flags(series, codes=side_codes, new=new, missing=series.isna().to_numpy()))
    return sides[0], sides[1], "", 0


def outside_tail(outside: int, present: int, reference_values: int) -> float:
    """Return the chance that ``outside`` or more of ``present`` new values fall outside the range.

    ``reference_values`` is ``n``; exact for exchangeable continuous values (see the module).
    """
    k, m, n = outside, present, reference_values
    if k <= 0:
        return 1.0
    if n <= 0 or k > m:
        return 0.0
    total = n + m
    # f(k) in logs (huge factorials), then (k + 1) f(k) - k f(k + 1) = f(k) ((k + 1) - k r),
    # r = f(k + 1) / f(k) = (m - k) / (n + m - k): no cancellation, as the factor is >= 1
    log_f = lgamma(m + 1) - lgamma(m - k + 1) - lgamma(total + 1) + lgamma(total - k + 1)
    ratio = (m - k) / (total - k)
    return float(np.exp(log_f) * ((k + 1) - k * ratio))


def beyond_chance(outside: int, present: int, reference_values: int) -> bool:
    """Return whether ``outside`` of ``present`` new values out of range exceed chance.

    ``reference_values`` is ``n``: see the module (:func:`outside_tail` below
    :data:`OUT_OF_RANGE_ALPHA`).
    """
    if outside == 0 or reference_values == 0:
        return False
    return outside_tail(outside, present, reference_values) < OUT_OF_RANGE_ALPHA


def _reason(counts: dict[str, int], rate: float, upper: float | None, extra: dict[str, str]) -> str:
    parts = []
    if upper is not None and rate > upper:
        parts.append(f"missing {rate:.1%} above the reference's {upper:.1%}")
    if "out_of_range" in extra:  # only where the count alerts (see the module)
        parts.append(f"{counts['out_of_range']} outside {extra['range']} "
                     f"({extra['out_of_range']})")  # fmt: skip
    if counts["unseen"]:
        parts.append(f"{counts['unseen']} unseen ({extra['unseen']})")
    if counts["type_errors"]:
        parts.append(f"{counts['type_errors']} not a number ({extra['type_error']})")
    return "; ".join(parts)


def column_quality(
    name: str,
    kind: str,
    reference: Columns,
    current: Columns,
    windows: Mapping[str, Sequence[Window]],
    sigmas: float,
    ingested: Mapping[str, tuple[float, float]],
    codes: tuple[Codes, Codes] | None = None,
) -> list[dict[str, object]]:
    """Return the table's rows of column ``name`` (``windows`` of each side by period).

    ``codes``: a categorical column's :func:`lib.data.drift_profile.category_codes` of each
    side, when the caller has them.

    Raises
    ------
    DataValidationError
        When a numeric column has no value in the reference.
    """
    ref_flags, cur_flags, span, n_ref = _flags(
        name, kind, reference[name], current[name], ingested.get(name), codes
    )
    flags = {"reference": ref_flags, "current": cur_flags}
    rates = [
        ref_flags.missing_at(w.rows_taken).mean() if w.rows else np.nan
        for w in windows["reference"]
    ]
    band = reference_band(rates, sigmas=sigmas, lower_limit=0.0, upper_limit=1.0, side="upper")
    rows = []
    for period, side in flags.items():
        for w in windows[period]:
            counts = side.count(w.rows_taken)
            rate = counts["missing"] / w.rows if w.rows else float("nan")
            extra = {"range": span}
            present = w.rows - counts["missing"] - counts["type_errors"]
            far = side.far(w.rows_taken)
            if far or beyond_chance(counts["out_of_range"], present, n_ref):
                extra["out_of_range"] = side.examples("out_of_range", w.index)
            for flag, key in (("unseen",) * 2, ("type_error", "type_errors")):
                if counts[key]:  # quote offenders only where there are some
                    extra[flag] = side.examples(flag, w.index)
            reason = _reason(counts, rate, band.upper, extra)
            rows.append(
                {**window_meta(period, w), "column": name, **counts,
                 "missing_rate": rate, "alert": bool(reason), "reason": reason}
            )  # fmt: skip
    return rows


def window_quality(
    reference: Columns,
    current: Columns,
    kinds: Mapping[str, str],
    ref_windows: Sequence[Window],
    cur_windows: Sequence[Window],
    sigmas: float = 3.0,
    threads: int | None = None,
    ingested_ranges: Mapping[str, tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """Count each column's quality problems in every window of both sides (see the module doc).

    Parameters
    ----------
    reference, current
        The two sides' rows; ``current`` may be raw (numbers still text) or typed.
    kinds
        Column -> kind: ``numeric`` or ``datetime`` are checked as numbers, ``categorical`` and
        ``boolean`` as categories.
    ref_windows, cur_windows
        The windows of each side.
    sigmas
        Width of the missing-rate band in reference-window standard deviations.
    threads
        Columns checked at once (``monitor.threads``; None: the cores, at most 4).
    ingested_ranges
        Numeric column -> the (min, max) of the project's data at ingest (the schema's, or as
        params declare them): where it is wider than the reference's range, values are out of
        range only outside it (see the module doc).

    Returns
    -------
    pandas.DataFrame
        ``period, window, start, end, rows, column, missing, missing_rate, out_of_range,
        unseen, type_errors, alert, reason``: one row per window and column.

    Raises
    ------
    DataValidationError
        When a column is missing from a side, or a numeric one has no value in the reference.
    """
    check_columns(reference, current, kinds)
    windows = {"reference": ref_windows, "current": cur_windows}
    per_column = map_ordered(
        lambda item: column_quality(
            *item, reference, current, windows, sigmas, ingested_ranges or {}
        ),
        kinds.items(),
        thread_count(threads),
    )
    return quality_table([row for rows in per_column for row in rows], len(kinds))


def check_columns(reference: Columns, current: Columns, kinds: Mapping[str, str]) -> None:
    """Check that both sides hold every column :func:`window_quality` counts.

    Raises
    ------
    DataValidationError
        When a column is missing from a side.
    """
    for side, frame in (("reference", reference), ("current", current)):
        absent = [c for c in kinds if c not in frame.columns]
        if absent:
            raise DataValidationError(
                f"{side} data: columns {absent} are missing; both sides must hold every "
                "monitored column (or exclude them in monitor.exclude)",
                column=absent[0],
            )


def quality_table(rows: list[dict[str, object]], columns: int) -> pd.DataFrame:
    """Return the table of every column's rows (:func:`column_quality`)."""
    out = pd.DataFrame(rows, columns=COLUMNS)
    out = out.astype({"alert": bool, "rows": "int64", "missing_rate": float})
    current_alerts = int(out.loc[out["period"] == "current", "alert"].sum())
    log.info("window_quality", columns=columns, alerts=current_alerts)
    return out
