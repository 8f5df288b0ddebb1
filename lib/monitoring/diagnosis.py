"""Why a window's performance moved: covariate shift, concept drift, or nothing.

Pure functions of the four per-window tables (``window_drift``, ``multivariate``,
``window_quality``, ``window_performance``: see :mod:`lib.monitoring.monitor_results`) and, for
the segment that fell most and the test of a concept drift's errors, the labelled rows of both
sides (:mod:`lib.monitoring.labelled_rows`). Nothing is read or written here.

The kinds, per current window (NannyML's reading of estimated against realized performance):

- ``concept drift``: the realized metric falls outside the estimate's sampling band, on the bad
  side (below it; above it for a loss), in a window where the realized or the estimated metric
  left its reference band. The estimate models how the inputs moved, so what it does not explain
  is a change of P(y|x). Where neither left its band, the gap is one the reference windows
  themselves show: a small reference's sampling band is too narrow for a near-perfect model
  whose scores it cannot calibrate (breast cancer, 88 reference rows, an over-confident logistic
  model, nothing shifted, 20 splits: 50 % of runs were called concept drift for it, 20 % now,
  the rest windows whose realized value left its band by chance). Without an estimate,
  realized performance that left its reference band while no feature and no multivariate
  statistic did counts as concept drift too. Where both sides' labelled rows are given (the
  monitor stage gives them), a classifier's concept drift also needs the window's errors to
  exceed the reference's at equal confidence by more than the two samples' sizes explain
  (:func:`lib.monitoring.labelled_rows.errors_rose`, one-sided p < 0.05): a reference of 88 rows
  holding a few errors cannot vouch for the estimate it calibrates, and its bootstrap band is
  too narrow. Such a window is a covariate shift whose reason says why it was not called
  concept drift. Breast cancer and wine, 88 reference rows, 20 random splits each: with nothing
  changed, concept drift was called in 4 (random forest), 6 (over-confident logistic) and 1
  (wine) runs, now 0, 2 and 0; with the labels of 15 % or 30 % of two windows' rows flipped it
  is still called in 19-20 of 20 runs; a one-sd shift of two features, called concept drift
  in 3 runs, is now a covariate shift in all 20.
- ``covariate shift``: performance (estimated or realized) left its reference band, or features
  or the multivariate statistic drifted, and the estimate explains the realized value.
- ``none``: nothing left its band, or the only input that did is a lone alert chance explains.

A lone alert: the only input (feature or the multivariate statistic) that alerted in its window,
alerting in no other window, and less than ``LONE_RATIO`` (1.5) times its bound. A run makes a
band test per feature and window (30 features and 5 windows: 150), so one of them leaves its
band by chance in many runs, just past it: on breast cancer (88 reference rows, nothing
changed, 20 random splits) chance alerts lay 1.03-1.36 times their bounds, and a one-sd shift of
two features in two windows of 84 rows alerted at 1.6-6.3 times them. A lone alert is named in
the window's reason but does not make it a covariate shift; an input alerting in two windows,
two inputs alerting in one, or one alert 1.5 times past its bound does.

Performance is the judged metric's: the first with an estimate and a realized value. Other
metrics that left their bands are named in the window's reason ("also out of band") but do not
decide its kind: with the default five metrics, each estimated and realized, a window makes ten
more band tests, and one of them leaves its band by chance often (breast cancer and wine, 88
reference rows, 60 training rows, nothing changed, 20 random splits each: 2 to 4 runs of 20
were called a covariate shift on another metric's excursion alone).

The run's kind is the worst window's (concept drift, then covariate shift). The features named
are those that moved most in the windows where performance fell (else where anything drifted),
ranked by how far their statistic went past its bound: ``statistic / upper`` for distances and
``log p / log threshold`` for p-values (a ratio above 1 is outside the band).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from lib.core.contracts.predlog import is_log_column
from lib.core.tasks import LOSSES
from lib.monitoring.labelled_rows import (
    MIN_SEGMENT_ROWS,
    Rows,
    Segment,
    errors_rose,
    worst_segment,
)

CONCEPT = "concept drift"
COVARIATE = "covariate shift"
NONE = "none"
LONE_RATIO = 1.5  # a lone input alert nearer its bound than this is one chance explains
_SHOWN = 5  # features named in the text


@dataclass(frozen=True)
class Diagnosis:
    """The run's kind, why, the features that moved most and the segment that fell most."""

    kind: str
    reason: str
    windows: pd.DataFrame  # one row per current window: window, start, end, kind, reason
    features: list[dict[str, Any]] = field(default_factory=list)  # column, ratio, windows
    segment: Segment | None = None
    metric: str | None = None  # the metric whose windows were judged
    # window -> the input whose alert there is a lone one chance explains (not a shift)
    chance: dict[str, list[str]] = field(default_factory=dict)

    @property
    def kind_windows(self) -> list[str]:
        """The current windows of the run's kind (empty when the kind is ``none``)."""
        if self.windows.empty or self.kind == NONE:
            return []
        return self.windows.loc[self.windows["kind"] == self.kind, "window"].astype(str).tolist()

    def text(self) -> str:
        """Return the diagnosis in one paragraph."""
        parts = [self.reason]
        if self.features:
            shown = ", ".join(
                f"{f['column']} ({f['ratio']:.1f}x its bound)" for f in self.features[:_SHOWN]
            )
            parts.append(f"Features that moved most: {shown}.")
        if self.segment is not None:
            s = self.segment
            parts.append(
                f"Segment that fell most: {s.column} {s.segment} ({s.rows:,} labelled rows), "
                f"error {s.current_error:.3f} vs {s.reference_error:.3f} on the reference."
            )
        return " ".join(parts)


def _current(table: pd.DataFrame | None) -> pd.DataFrame:
    if table is None or table.empty or "period" not in table.columns:
        return pd.DataFrame()
    return table[table["period"] == "current"]


def _window_order(*tables: pd.DataFrame) -> pd.DataFrame:
    """Return the current windows (window, start, end) in order of first appearance."""
    frames = [t[["window", "start", "end"]] for t in tables if not t.empty]
    if not frames:
        return pd.DataFrame(columns=["window", "start", "end"])
    return pd.concat(frames).drop_duplicates("window").reset_index(drop=True)


def _worse(a: float, b: float, loss: bool) -> bool:
    """Whether value ``a`` is worse than ``b`` (NaN is never worse)."""
    if not (np.isfinite(a) and np.isfinite(b)):
        return False
    return a > b if loss else a < b


def _judged_metric(perf: pd.DataFrame) -> str | None:
    """Return the metric judged: the first with an estimate and a realized value somewhere."""
    if perf.empty:
        return None
    for metric, rows in perf.groupby("metric", sort=False):
        if (rows["estimated"].notna() & rows["realized"].notna()).any():
            return str(metric)
    return str(perf["metric"].iloc[0])


def _fell(row: pd.Series, value: str, loss: bool) -> bool:
    """Whether ``row[value]`` left its reference band on the bad side.

    The estimate's band is the realized one moved by the estimates' offset on the reference
    (``lower_estimated``/``upper_estimated``; tables written before it have the one band).
    """
    suffix = "_estimated" if value == "estimated" and "lower_estimated" in row.index else ""
    bound = row[f"upper{suffix}"] if loss else row[f"lower{suffix}"]
    return _worse(float(row[value]), float(bound), loss) if pd.notna(bound) else False


def drift_ratio(row: pd.Series) -> float:
    """Return how far a drift statistic went past its bound (> 1: outside the band).

    ``statistic / upper`` for distances; ``log p / log threshold`` for p-values (``lower``).
    """
    stat, lower, upper = float(row["statistic"]), float(row["lower"]), float(row["upper"])
    if np.isfinite(upper) and upper > 0:
        return stat / upper
    if np.isfinite(lower) and 0 < lower < 1:  # a p-value alerts downwards: compare in -log10
        return float(np.log10(max(stat, 1e-300)) / np.log10(lower))
    return float("nan")


def _judge_window(
    perf: pd.Series | None,
    loss: bool,
    alerts: list[str],
    others: list[str],
    quality: list[str],
    lone: list[str] | None = None,
) -> tuple[str, str, bool]:
    """Return (kind, reason, performance fell) for one current window.

    ``alerts``: the inputs that left their band there; ``others``: the other metrics that left
    theirs on the bad side; ``quality``: the columns with data-quality alerts; ``lone``: the
    window's alert when it is a lone one chance explains (it then does not count as moved).
    """
    moved = [] if lone else alerts
    notes = []
    if moved:
        notes.append(f"drifted: {', '.join(moved[:_SHOWN])}{' ...' if len(moved) > _SHOWN else ''}")
    if lone:
        notes.append(f"a lone alert within chance: {', '.join(lone)}")
    if others:
        notes.append(f"also out of band: {', '.join(others)}")
    if quality:
        notes.append(f"data quality: {', '.join(quality[:_SHOWN])}")
    if perf is None:
        kind = COVARIATE if moved else NONE
        return kind, "; ".join(notes or ["inputs within their band"]), False
    m = str(perf["metric"])
    realized, estimated = float(perf["realized"]), float(perf["estimated"])
    est_bound = perf["estimated_upper"] if loss else perf["estimated_lower"]
    real_fell, est_fell = _fell(perf, "realized", loss), _fell(perf, "estimated", loss)
    fell = real_fell or est_fell
    if pd.notna(est_bound) and _worse(realized, float(est_bound), loss) and (real_fell or est_fell):
        side = "above" if loss else "below"
        why = (
            f"realized {m} {realized:.3f} is {side} what the estimate explains "
            f"({estimated:.3f}, band {perf['estimated_lower']:.3f}-{perf['estimated_upper']:.3f})"
        )
        return CONCEPT, "; ".join([why, *notes]), True
    if not np.isfinite(estimated) and real_fell and not alerts:
        why = f"realized {m} {realized:.3f} left its reference band, inputs within theirs"
        return CONCEPT, "; ".join([why + " (no estimate)", *notes]), True
    if fell or moved:
        what = []
        if est_fell:
            what.append(f"estimated {m} {estimated:.3f} left its reference band")
        if real_fell:
            what.append(f"realized {m} {realized:.3f} left its reference band")
        if np.isfinite(estimated) and np.isfinite(realized):
            what.append(f"the estimate ({estimated:.3f}) explains realized {realized:.3f}")
        return COVARIATE, "; ".join([*what, *notes]), fell
    return NONE, "; ".join([f"{m} within its reference band", *notes]), False


def _moved(drift: pd.DataFrame, multi: pd.DataFrame) -> dict[str, list[tuple[str, float]]]:
    """Return window -> the features (and ``multivariate``) that alerted there, with ratios."""
    out: dict[str, list[tuple[str, float]]] = {}
    if not drift.empty:
        inputs = drift[~drift["column"].map(is_log_column) & drift["alert"].astype(bool)]
        for (_, row), w, c in zip(
            inputs.iterrows(), inputs["window"].astype(str), inputs["column"].astype(str),
            strict=True,
        ):  # fmt: skip
            out.setdefault(w, []).append((c, drift_ratio(row)))
    if not multi.empty:
        hit = multi[multi["alert"].astype(bool)]
        upper = hit["upper"].astype(float).where(hit["upper"].astype(float) > 0)
        for w, ratio in zip(hit["window"].astype(str), hit["value"] / upper, strict=True):
            out.setdefault(w, []).append(("multivariate", float(ratio)))
    return out


def _lone(moved: Mapping[str, list[tuple[str, float]]]) -> dict[str, tuple[str, float]]:
    """Return window -> its lone alert, when it is one chance explains (see the module doc).

    Lone: the only input that alerted in its window, alerting in no other window, and less than
    ``LONE_RATIO`` times its bound.
    """
    windows_of: dict[str, int] = {}
    for alerts in moved.values():
        for name, _ in alerts:
            windows_of[name] = windows_of.get(name, 0) + 1
    out = {}
    for w, alerts in moved.items():
        if len(alerts) == 1:
            name, ratio = alerts[0]
            if windows_of[name] == 1 and np.isfinite(ratio) and ratio < LONE_RATIO:
                out[w] = (name, ratio)
    return out


def _other_metrics(perf: pd.DataFrame, judged: str | None) -> dict[str, list[str]]:
    """Return window -> the metrics other than ``judged`` whose value fell out of its band."""
    out: dict[str, list[str]] = {}
    for _, row in perf[perf["metric"] != judged].iterrows() if not perf.empty else []:
        loss = row["metric"] in LOSSES
        for value in ("estimated", "realized"):
            if _fell(row, value, loss):
                out.setdefault(str(row["window"]), []).append(f"{value} {row['metric']}")
    return out


def _quality_columns(quality: pd.DataFrame) -> dict[str, list[str]]:
    """Return window -> the columns with a data-quality alert there."""
    if quality.empty:
        return {}
    hit = quality[quality["alert"].astype(bool)]
    out: dict[str, list[str]] = {}
    for w, c in zip(hit["window"].astype(str), hit["column"].astype(str), strict=True):
        out.setdefault(w, []).append(c)
    return out


def rank_features(drift: pd.DataFrame, windows: Sequence[str]) -> list[dict[str, Any]]:
    """Rank the features that alerted in ``windows`` by how far past their bound they went.

    Returns
    -------
    list of dict
        ``column``, ``ratio`` (the largest statistic-to-bound ratio over those windows; > 1 is
        outside the band), ``windows`` (where it alerted), largest ratio first.
    """
    cur = _current(drift)
    if cur.empty or not windows:
        return []
    rows = cur[cur["window"].astype(str).isin(list(windows)) & ~cur["column"].map(is_log_column)]
    rows = rows[rows["alert"].astype(bool)]
    ranked = []
    for column, group in rows.groupby("column", sort=False):
        ratios = group.apply(drift_ratio, axis=1)
        ranked.append(
            {
                "column": str(column),
                "ratio": float(np.nanmax(ratios)) if ratios.notna().any() else float("nan"),
                "windows": group["window"].astype(str).tolist(),
            }
        )
    return sorted(ranked, key=lambda f: -np.nan_to_num(f["ratio"], nan=0.0))


def diagnose(
    *,
    window_drift: pd.DataFrame | None,
    multivariate: pd.DataFrame | None,
    window_quality: pd.DataFrame | None,
    window_performance: pd.DataFrame | None,
    reference_rows: Rows | None = None,
    current_rows: Rows | None = None,
    kinds: Mapping[str, str] | None = None,
    min_segment_rows: int = MIN_SEGMENT_ROWS,
) -> Diagnosis:
    """Diagnose each current window and the run from the per-window tables.

    Parameters
    ----------
    window_drift, multivariate, window_quality, window_performance
        The per-window tables (any may be None or empty); only ``period == "current"`` rows are
        judged, their ``alert`` flags and bands having been set against the reference windows.
    reference_rows, current_rows
        Labelled rows of both sides, for the segment that fell most (optional).
    kinds
        Feature -> ``numeric`` or ``categorical``: the features segments are cut from.
    min_segment_rows
        Smallest segment (labelled current rows) that is named.

    Returns
    -------
    Diagnosis
    """
    drift, multi = _current(window_drift), _current(multivariate)
    quality, perf = _current(window_quality), _current(window_performance)
    metric = _judged_metric(perf)
    loss = metric in LOSSES
    perf_rows = pd.DataFrame()
    if metric is not None:
        perf_rows = perf[perf["metric"] == metric]
        perf_rows = perf_rows.set_index(perf_rows["window"].astype(str))
    moved, others, notes = (
        _moved(drift, multi),
        _other_metrics(perf, metric),
        _quality_columns(quality),
    )
    lone = _lone(moved)
    records = []
    for _, w in _window_order(perf, drift, multi, quality).iterrows():
        key = str(w["window"])
        row = perf_rows.loc[key] if metric and key in perf_rows.index else None
        if isinstance(row, pd.DataFrame):  # a repeated key: judge its first row
            row = row.iloc[0]
        kind, reason, fell = _judge_window(
            row,
            loss,
            [name for name, _ in moved.get(key, [])],
            others.get(key, []),
            notes.get(key, []),
            [f"{lone[key][0]} ({lone[key][1]:.2f}x its bound)"] if key in lone else None,
        )
        if kind == CONCEPT and reference_rows is not None and current_rows is not None:
            rise = errors_rose(reference_rows, current_rows, key)
            if rise is not None and not rise.rose:  # see the module doc
                kind = COVARIATE
                reason = (
                    f"{reason}; not called concept drift: {rise.text} (p = {rise.p_value:.2g}), "
                    "too few labelled rows to tell"
                )
        records.append(
            {
                "window": key,
                "start": w["start"],
                "end": w["end"],
                "kind": kind,
                "reason": reason,
                "performance_fell": fell,
            }
        )
    table = pd.DataFrame(
        records, columns=["window", "start", "end", "kind", "reason", "performance_fell"]
    )
    found = _overall(
        table, window_drift, metric, reference_rows, current_rows, kinds or {}, min_segment_rows
    )
    return replace(found, chance={w: [name] for w, (name, _) in lone.items()})


def _overall(
    table: pd.DataFrame,
    window_drift: pd.DataFrame | None,
    metric: str | None,
    reference_rows: Rows | None,
    current_rows: Rows | None,
    kinds: Mapping[str, str],
    min_rows: int,
) -> Diagnosis:
    """Gather the windows' verdicts into the run's: its kind, text, features and segment."""
    kinds_seen = set(table["kind"])
    kind = CONCEPT if CONCEPT in kinds_seen else COVARIATE if COVARIATE in kinds_seen else NONE
    fell = table.loc[table["performance_fell"], "window"].tolist()
    flagged = table.loc[table["kind"] != NONE, "window"].tolist()
    focus = fell or flagged
    features = rank_features(window_drift, focus) if window_drift is not None else []
    segment = None
    if fell and reference_rows is not None and current_rows is not None:
        segment = worst_segment(reference_rows, current_rows, fell, kinds, min_rows=min_rows)
    if kind == NONE:
        reason = f"No window left its reference band ({len(table)} current windows checked)."
    else:
        hit = table[table["kind"] == kind]
        first = hit.iloc[0]
        reason = (
            f"{kind.capitalize()} in {len(hit)} of {len(table)} windows "
            f"({', '.join(hit['window'].astype(str))}). {first['window']}: {first['reason']}."
        )
    return Diagnosis(
        kind=kind, reason=reason, windows=table, features=features, segment=segment, metric=metric
    )
