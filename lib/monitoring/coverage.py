"""Does the reference cover what the current data holds? Warnings when it is too narrow.

A reference narrower than the current data - three months of a seasonal series against a year,
or a numeric feature whose current values lie far outside the reference's range - makes the
drift checks flag the part it never saw: that is the reference's narrowness, not a change in the
data. The monitor cannot tell the two apart, so it says so: each finding is a sentence naming the
column and the spans, and the fix (a reference spanning a full cycle: a whole year for seasonal
data, as a date range or ``training``). The sentences are logged and returned for the report.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import pandas as pd

from lib.core.logs import get_logger
from lib.core.params import Params
from lib.data.schema import Schema
from lib.monitoring import inputs
from lib.monitoring.inputs import Current, Reference

log = get_logger(__name__)

SPAN_SHARE = 0.9  # warn when the reference spans less than this share of the current time span
OUTSIDE_SHARE = 0.05  # warn when this share of current values lies outside the reference's range
_FIX = (
    "use a reference spanning a full cycle (a whole year for seasonal data): set "
    "monitor.reference to a date range YYYY-MM-DD..YYYY-MM-DD covering it, or to 'training'"
)


def _span_text(delta: pd.Timedelta) -> str:
    days = delta / pd.Timedelta(days=1)
    if days >= 60:
        return f"{days / 30.44:.0f} months"
    return f"{days:.0f} days" if days >= 1 else f"{delta}"


def _timestamps(values: pd.Series) -> pd.Series:
    """Return the values as UTC timestamps, NaT-free (empty when the column is not a time)."""
    try:
        times = pd.to_datetime(values, utc=True)
    except (ValueError, TypeError):  # not a time column on this side: no span to compare
        return pd.Series(dtype="datetime64[ns, UTC]")
    return times.dropna()


def time_span_warning(reference: pd.Series, current: pd.Series, column: str) -> str | None:
    """Return a warning when the reference's times span less than the current ones'.

    Parameters
    ----------
    reference, current
        The time column on each side.
    column
        Its name, for the message.

    Returns
    -------
    str or None
        The sentence (spans, days and the fix), or None when the reference spans at least
        ``SPAN_SHARE`` of the current span.
    """
    ref, cur = _timestamps(reference), _timestamps(current)
    if len(ref) == 0 or len(cur) < 2:
        return None
    ref_span, cur_span = ref.max() - ref.min(), cur.max() - cur.min()
    if cur_span <= pd.Timedelta(0) or ref_span >= SPAN_SHARE * cur_span:
        return None
    return (
        f"monitor.reference: the reference spans {_span_text(ref_span)} of {column!r} "
        f"({ref.min():%Y-%m-%d}..{ref.max():%Y-%m-%d}) but the current data "
        f"{_span_text(cur_span)} ({cur.min():%Y-%m-%d}..{cur.max():%Y-%m-%d}): what the "
        f"reference never saw (other seasons) shows as drift; {_FIX}"
    )


def season_warning(reference: pd.Series, current: pd.Series, column: str) -> str | None:
    """Return a warning when current rows fall in calendar months the reference never covers.

    A reference spanning many years of one season only (every summer) passes the span check but
    still misses the other seasons; the months show it.

    Parameters
    ----------
    reference, current
        The time column on each side.
    column
        Its name, for the message.

    Returns
    -------
    str or None
        The sentence (the months on each side, the share of current rows outside them, the
        fix), or None when at most ``OUTSIDE_SHARE`` of the current rows fall in such months.
    """
    ref, cur = _timestamps(reference), _timestamps(current)
    if len(ref) == 0 or len(cur) == 0:
        return None
    covered = set(ref.dt.month.unique().tolist())
    missing = ~cur.dt.month.isin(covered)
    if missing.mean() <= OUTSIDE_SHARE:
        return None
    months = [calendar.month_abbr[m] for m in sorted(set(cur.dt.month[missing].tolist()))]
    known = [calendar.month_abbr[m] for m in sorted(covered)]
    return (
        f"monitor.reference: {missing.mean():.0%} of the current rows fall in months of "
        f"{column!r} the reference has no row in ({', '.join(months)}; the reference covers "
        f"{', '.join(known)}): seasonal patterns it never saw show as drift; {_FIX}"
    )


def range_warning(reference: pd.Series, current: pd.Series, column: str) -> str | None:
    """Return a warning when many current values lie outside the reference's min..max.

    Parameters
    ----------
    reference, current
        A numeric feature on each side.
    column
        Its name, for the message.

    Returns
    -------
    str or None
        The sentence (both ranges, the share outside and the fix), or None when less than
        ``OUTSIDE_SHARE`` of the current values lie outside (single outliers do not warn).
    """
    ref = pd.to_numeric(reference, errors="coerce").to_numpy(dtype=float)
    cur = pd.to_numeric(current, errors="coerce").to_numpy(dtype=float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return None
    lo, hi = float(ref.min()), float(ref.max())
    outside = float(np.mean((cur < lo) | (cur > hi)))
    if outside < OUTSIDE_SHARE:
        return None
    return (
        f"monitor.reference: {outside:.0%} of the current values of {column!r} lie outside the "
        f"reference's range {lo:.4g}..{hi:.4g} (current {cur.min():.4g}..{cur.max():.4g}): the "
        f"reference does not cover them, so their drift may be its narrowness; {_FIX}"
    )


def coverage_warnings(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    schema: Schema,
    kinds: Mapping[str, str],
    time_column: str | None,
) -> list[str]:
    """Return a warning per way the reference is narrower than the current data.

    Parameters
    ----------
    reference, current
        The two sides' rows.
    schema
        Tells numeric features from dates.
    kinds
        The columns checked for drift (:func:`lib.monitoring.inputs.drift_kinds`); the numeric
        features among them are compared by range.
    time_column
        The time column compared by span (None, or absent from a side: not compared).

    Returns
    -------
    list of str
        The time-span and calendar-month warnings first (if any), then one per numeric feature
        whose current values lie outside the reference's range, in ``kinds`` order.
    """
    found: list[str | None] = []
    if time_column and time_column in reference.columns and time_column in current.columns:
        sides = reference[time_column], current[time_column]
        found.append(time_span_warning(*sides, time_column))
        found.append(season_warning(*sides, time_column))
    numeric = set(schema.names("numeric"))
    for column in kinds:
        if column in numeric and column in reference.columns and column in current.columns:
            found.append(range_warning(reference[column], current[column], column))
    return [w for w in found if w is not None]


def with_coverage(
    ref: Reference, cur: Current, schema: Schema, kinds: Mapping[str, str], params: Params
) -> Reference:
    """Return ``ref`` with the coverage warnings added to its ``warnings`` (and logged).

    Call it once both sides are loaded, before the findings; the monitor shows
    ``Reference.warnings`` in its report and summary.
    """
    column = inputs.time_column(params, schema)
    found = coverage_warnings(ref.frame, cur.frame, schema, kinds, column)
    for warning in found:
        log.warning("reference_narrower_than_current", reference=ref.source, warning=warning)
    return replace(ref, warnings=[*ref.warnings, *found]) if found else ref
