"""What the monitor finds on its two sides: drift of the inputs and outputs, and model quality.

Pure functions of the loaded :class:`~lib.monitoring.inputs.Reference` and
:class:`~lib.monitoring.inputs.Current`: nothing is read or written here. Whole-period drift
(:func:`find_drift`) and quality (:func:`find_quality`); per window (:func:`find_windows`) drift,
multivariate drift, data quality and estimated and realized performance, and their diagnosis
(:mod:`lib.monitoring.diagnosis`), which gives the concept-drift verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lib.core import frames, tasks
from lib.core.contracts.predlog import PREDICTION, proba_column
from lib.core.contracts.predlog import TIME as PREDLOG_TIME
from lib.core.contracts.summary import Concept
from lib.core.errors import ParamsError
from lib.core.param_sections import MonitorParams
from lib.data import drift
from lib.data.drift_profile import ColumnProfile, category_counts, numeric_values
from lib.data.schema import Schema, Task
from lib.model.reference import output_kinds
from lib.monitoring import performance, windows
from lib.monitoring.diagnosis import CONCEPT, NONE, Diagnosis, diagnose
from lib.monitoring.estimate import current_frame
from lib.monitoring.inputs import Current, Reference, align_target
from lib.monitoring.labelled_rows import Rows
from lib.monitoring.window_checks import Performance, run_window_checks
from lib.monitoring.window_drift import Exact

_BINS = 30  # histogram bins of a numeric column's distribution plot
_TOP = 25  # categories shown by name; the rest are summed as "(other)"


@dataclass(frozen=True, kw_only=True)
class DriftFindings:
    """Drift of the model's inputs and of its outputs, and where missing values rose."""

    features: drift.DriftReport
    outputs: drift.DriftReport
    output_frame: pd.DataFrame  # the model's outputs on the current rows, as the reference has
    missing_jumps: dict[str, float]  # column -> rise in its missing share

    @property
    def drifted(self) -> list[str]:
        """The drifted input columns, most drifted first."""
        return [c.column for c in self.features.columns if c.drifted]

    @property
    def prediction_drifted(self) -> list[str]:
        """The drifted output columns (prediction, class probabilities)."""
        return [c.column for c in self.outputs.columns if c.drifted]


@dataclass(frozen=True, kw_only=True)
class QualityFindings:
    """The model's quality where labels are known: now, on the reference, over time."""

    reference_metrics: dict[str, dict[str, float]] | None  # metric -> value, ci_low, ci_high
    current_metrics: dict[str, dict[str, float]] | None
    windows: pd.DataFrame | None  # the primary metric per window of the current rows
    drops: list[dict[str, Any]]  # metrics that fell by more than their alert limit
    concept: Concept


def find_drift(
    ref: Reference, cur: Current, schema: Schema, kinds: dict[str, Any], params: MonitorParams
) -> DriftFindings:
    """Check the ``kinds`` columns and the model's outputs for drift against the reference."""
    features = drift.check_drift(
        ref.profile,
        cur.frame,
        columns=list(kinds),
        methods=params.methods,
        thresholds=params.thresholds,
        drift_share=params.drift_share,
    )
    frame = _output_frame(cur, schema)
    names = [n for n in output_kinds(schema) if n in ref.profile.columns and n in frame.columns]
    jumps = {c.column: c.current_missing - c.reference_missing for c in features.columns}
    return DriftFindings(
        features=features,
        outputs=drift.check_drift(ref.profile, frame, columns=names),
        output_frame=frame,
        missing_jumps={k: v for k, v in jumps.items() if v > 0},
    )


def with_exact(
    found: DriftFindings, features: drift.DriftReport, outputs: drift.DriftReport | None
) -> DriftFindings:
    """Return ``found`` (drift of a sample) with the whole-period reports of every row.

    ``outputs`` None keeps the sample's (the current files hold no model outputs).
    """
    jumps = {c.column: c.current_missing - c.reference_missing for c in features.columns}
    return DriftFindings(
        features=features,
        outputs=found.outputs if outputs is None else outputs,
        output_frame=found.output_frame,
        missing_jumps={k: v for k, v in jumps.items() if v > 0},
    )


def _output_frame(cur: Current, schema: Schema) -> pd.DataFrame:
    """Return the predicted classes (or values) and class probabilities of the current rows."""
    frame = pd.DataFrame({PREDICTION: cur.pred})
    if cur.proba is not None and schema.classes:
        for j, label in enumerate(schema.classes):
            frame[proba_column(label)] = cur.proba[:, j]
    return frame


def labelled(y: np.ndarray | None) -> np.ndarray:
    """Return a mask of the rows whose truth is known (empty without labels)."""
    if y is None:
        return np.zeros(0, dtype=bool)
    return np.asarray(pd.notna(pd.Series(y, dtype=object)))


def _scored(
    y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, schema: Schema
) -> performance.Scored:
    known = labelled(y)
    truth = y[known]
    # object arrays confuse scikit-learn's target typing: give the labels their own dtype
    truth = truth.astype(float) if schema.task == "regression" else np.asarray(truth.tolist())
    return performance.Scored(
        truth, pred[known], None if proba is None else proba[known], schema.classes
    )


def _reference_scored(ref: Reference, schema: Schema) -> performance.Scored | None:
    frame = ref.frame
    if schema.target not in frame.columns or PREDICTION not in frame.columns:
        return None
    proba = _probabilities(frame, schema)
    y = align_target(frame[schema.target], schema, Path(ref.source)).to_numpy()
    return _scored(y, frame[PREDICTION].to_numpy(), proba, schema)


def ingested_ranges(schema: Schema) -> dict[str, tuple[float, float]]:
    """Return each numeric feature's range as ingest learned it (or params declared it)."""
    return {
        c.name: (float(c.min), float(c.max))
        for c in schema.features
        if c.kind == "numeric" and c.min is not None and c.max is not None
    }


def _probabilities(frame: pd.DataFrame, schema: Schema) -> np.ndarray | None:
    """Return a classifier's ``proba_<class>`` columns as a matrix, None when any is absent."""
    names = [proba_column(c) for c in schema.classes or []]
    if not names or not all(n in frame.columns for n in names):
        return None
    proba: np.ndarray = frame[names].to_numpy(float)
    return proba


def _confidence(frame: pd.DataFrame, schema: Schema) -> np.ndarray | None:
    """Return a classifier's top class probability per row, None without its probabilities."""
    proba = _probabilities(frame, schema)
    return None if proba is None else proba.max(axis=1)


def find_quality(
    ref: Reference,
    cur: Current,
    schema: Schema,
    params: MonitorParams,
    *,
    seed: int,
    diagnosis: Diagnosis,
) -> QualityFindings:
    """Measure quality on both sides (with bootstrap intervals), per window, and concept drift.

    The concept-drift verdict is the per-window ``diagnosis``'s; a Page-Hinkley alarm on the
    error stream is reported beside it as supporting evidence only (on its own it called a
    covariate shift concept drift on real data).
    """
    task = schema.task
    ref_scored = _reference_scored(ref, schema)
    cur_scored = _scored(cur.y, cur.pred, cur.proba, schema) if cur.y is not None else None
    times = None
    if cur.times is not None and cur.y is not None:
        times = cur.times[labelled(cur.y)].reset_index(drop=True)
    if ref_scored is None or cur_scored is None or not len(cur_scored.y):
        concept = _concept(task, ref_scored, cur_scored, times, diagnosis)
        return QualityFindings(
            reference_metrics=None, current_metrics=None, windows=None, drops=[], concept=concept
        )
    b, c = params.bootstrap, params.confidence
    ref_metrics = performance.metric_table(task, ref_scored, b, c, seed)
    cur_metrics = performance.metric_table(task, cur_scored, b, c, seed)
    drops = performance.metric_drops(
        ref_metrics, cur_metrics, tasks.metric_drop(params.alerts.metric_drop, task), task
    )
    return QualityFindings(
        reference_metrics=ref_metrics,
        current_metrics=cur_metrics,
        windows=performance.windows(task, cur_scored, times, params.windows, b, c, seed),
        drops=drops,
        concept=_concept(task, ref_scored, cur_scored, times, diagnosis),
    )


def _diagnosed(diagnosis: Diagnosis) -> dict[str, Any]:
    """Return the diagnosis fields of a :class:`Concept`."""
    segment = diagnosis.segment
    return {
        "kind": diagnosis.kind,
        "windows": diagnosis.kind_windows,
        "features": [f["column"] for f in diagnosis.features],
        "segment": None if segment is None else {**segment.__dict__, "rise": segment.rise},
    }


def _concept(
    task: Task,
    ref: performance.Scored | None,
    cur: performance.Scored | None,
    times: pd.Series | None,
    diagnosis: Diagnosis,
) -> Concept:
    """Return the concept-drift finding: the diagnosis, with the Page-Hinkley alarm as evidence."""
    if ref is None or cur is None or len(cur.y) == 0:
        reason = "no labels for the current rows"
        if diagnosis.kind != NONE:
            reason += f"; {diagnosis.text()}"
        return Concept(checked=False, drift=False, reason=reason, **_diagnosed(diagnosis))
    ref_err = performance.errors(task, ref)
    cur_err = performance.errors(task, cur)
    alarm = performance.PageHinkley().detect(cur_err, float(ref_err.mean()), float(ref_err.std()))
    reason = diagnosis.text()
    if alarm is not None:
        reason += (
            f" Supporting evidence: the error rate rose (Page-Hinkley alarm at labelled row "
            f"{alarm + 1:,})."
        )
    return Concept(
        checked=True,
        drift=diagnosis.kind == CONCEPT,
        reason=reason,
        alarm_row=alarm,
        alarm_time=None if alarm is None or times is None else str(times.iloc[alarm]),
        reference_error=float(ref_err.mean()),
        current_error=float(cur_err.mean()),
        **_diagnosed(diagnosis),
    )


# --- per window --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class WindowFindings:
    """The per-window tables of both sides (``period`` reference/current) and their diagnosis."""

    spec: str  # the window spec, as written
    drift: pd.DataFrame
    multivariate: pd.DataFrame
    quality: pd.DataFrame
    performance: pd.DataFrame
    diagnosis: Diagnosis
    warnings: list[str] = field(default_factory=list)  # about the windows (small_windows)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Return the four tables by their saved name (``monitor_results.WINDOW_TABLES``)."""
        return {
            "window_drift": self.drift,
            "multivariate": self.multivariate,
            "window_quality": self.quality,
            "window_performance": self.performance,
        }


MIN_WINDOW_ROWS = 30  # reference windows holding fewer rows (median) give bands of noise


def small_windows(ref_cut: Sequence[windows.Window], spec: str) -> str | None:
    """Return a warning when the reference windows are too small to learn a band from.

    A band is the reference windows' mean +- 3 sd of a statistic; from windows of a few rows
    each statistic is mostly sampling noise, so the band is wide (shifts missed) or, for
    distances, biased (chance alerts). A long-span reference cut by a short period does it: 1,000
    rows spread over six years are 300 weekly windows of 3 rows.
    """
    sizes = [w.rows for w in ref_cut if w.rows]
    if len(sizes) < 2:
        return None
    median = float(np.median(sizes))
    if median >= MIN_WINDOW_ROWS:
        return None
    return (
        f"monitor.window {spec!r} cuts the reference into {len(sizes)} windows of a median "
        f"{median:g} rows; bands learned from windows this small are mostly noise (missed "
        f"shifts, chance alerts). Use a longer period or 'N rows' windows of at least "
        f"{MIN_WINDOW_ROWS} rows, or a reference with more rows per window"
    )


def time_column_name(
    columns: Sequence[str], schema: Schema, params: MonitorParams, from_log: bool
) -> str | None:
    """Return the column a side's windows follow, or None (windows are then cut by rows).

    ``monitor.time_column`` when set; else the log's serving time (``time``); else the
    schema's first date column among ``columns``.

    Raises
    ------
    ParamsError
        When ``monitor.time_column`` names a column the data lacks.
    """
    name = params.time_column
    if name is not None:
        if name in columns:
            return name
        if from_log:  # the log keeps its time as ``time``
            return PREDLOG_TIME
        raise ParamsError(
            f"monitor.time_column: {name!r} is not a column of the data (columns: "
            f"{list(columns)[:20]}); name a date column, or null to use the first one",
            key="monitor.time_column",
        )
    if from_log:
        return PREDLOG_TIME
    dates = [c.name for c in schema.features if c.kind == "datetime" and c.name in columns]
    return dates[0] if dates else None


def side_times(
    frame: pd.DataFrame, schema: Schema, params: MonitorParams, served: pd.Series | None = None
) -> pd.Series | None:
    """Return the times a side's windows follow (:func:`time_column_name`), or None.

    ``served``: the log's serving times, when the side is the prediction log.
    """
    name = time_column_name(list(frame.columns), schema, params, served is not None)
    if name is None:
        return None
    if served is not None and name == PREDLOG_TIME:
        return served.reset_index(drop=True)
    return frame[name].reset_index(drop=True)


def row_errors(task: Task, y: np.ndarray | None, pred: np.ndarray) -> np.ndarray:
    """Return each row's error (0/1 misclassification, or absolute error); NaN where unlabelled."""
    out = np.full(len(pred), np.nan)
    if y is None:
        return out
    known = labelled(y)
    if task == "regression":
        out[known] = np.abs(y[known].astype(float) - pred[known].astype(float))
    else:
        out[known] = [float(a != b) for a, b in zip(y[known], pred[known], strict=True)]
    return out


def window_keys(n_rows: int, cut: list[windows.Window]) -> np.ndarray:
    """Return each row's window key (None for rows in no window)."""
    keys = np.full(n_rows, None, dtype=object)
    for w in cut:
        keys[w.index] = w.key
    return keys


def find_windows(
    ref: Reference,
    cur: Current,
    schema: Schema,
    kinds: dict[str, Any],
    params: MonitorParams,
    *,
    seed: int,
    cur_cut: list[windows.Window] | None = None,
    exact: Exact | None = None,
) -> WindowFindings:
    """Cut both sides into windows, run every per-window check, and diagnose the result.

    The current side is cut by ``monitor.window`` (``monitor.windows`` equal windows when
    null) along :func:`side_times`; the reference into windows of the same size. Every check
    alerts when a current window's statistic leaves the band of the reference windows' values
    (see :mod:`lib.monitoring.windows`). Performance per window needs a reference holding the
    target and the model's predictions; without them the performance table is empty and the
    diagnosis rests on drift alone.

    With a bounded-memory backend ``cur`` holds a sample of the current rows: ``cur_cut`` then
    cuts the sample where the windows of all the rows are cut (row windows), and ``exact``
    holds every row's drift summaries per window; the per-window drift is scored from those,
    against reference windows of the whole windows' size (the other checks read the sample,
    against reference windows of the sample's).
    """
    spec = windows.parse_spec(params.window, default_count=params.windows)
    if cur_cut is None:
        cur_times = side_times(cur.frame, schema, params, cur.times)
        cur_cut = windows.split(len(cur.frame), spec, cur_times)
    ref_times = side_times(ref.frame, schema, params)
    ref_cut = windows.reference_windows(len(ref.frame), spec, cur_cut, ref_times)
    drift_ref_cut = ref_cut
    if exact is not None:
        full = [exact.rows(w.key) or w.rows for w in cur_cut]
        drift_ref_cut = windows.reference_windows(len(ref.frame), spec, cur_cut, ref_times, full)
    cur_frame = current_frame(cur, schema.target, schema.classes)
    ref_frame = frames.positional(ref.frame)
    scored_reference = schema.target in ref_frame.columns and PREDICTION in ref_frame.columns
    tables = run_window_checks(
        ref_frame, cur_frame, kinds, ref_cut, cur_cut, params,
        performance=Performance(
            task=schema.task, classes=schema.classes, target=schema.target, seed=seed
        ) if scored_reference else None,
        drift_ref_windows=drift_ref_cut, profile=ref.profile, exact=exact,
        ingested_ranges=ingested_ranges(schema),
    )  # fmt: skip
    ref_errors = row_errors(
        schema.task,
        _reference_truth(ref, schema) if scored_reference else None,
        ref_frame[PREDICTION].to_numpy() if scored_reference else np.zeros(len(ref_frame)),
    )
    names = list(kinds)
    diagnosis = diagnose(
        window_drift=tables.drift,
        multivariate=tables.multivariate,
        window_quality=tables.quality,
        window_performance=tables.performance,
        reference_rows=Rows(
            frames.positional(ref_frame, names),
            ref_errors,
            confidence=_confidence(ref_frame, schema),
        ),
        current_rows=Rows(
            frames.positional(cur.frame, names),
            row_errors(schema.task, cur.y, cur.pred),
            window_keys(len(cur.frame), cur_cut),
            confidence=None if cur.proba is None else cur.proba.max(axis=1),
        ),
        kinds=kinds,
    )
    return WindowFindings(
        spec=spec.text,
        drift=tables.drift,
        multivariate=tables.multivariate,
        quality=tables.quality,
        performance=tables.performance,
        diagnosis=diagnosis,
        warnings=[w for w in [small_windows(ref_cut, spec.text)] if w],
    )


def _reference_truth(ref: Reference, schema: Schema) -> np.ndarray:
    """Return the reference's target as the model's classes (or numbers)."""
    return align_target(ref.frame[schema.target], schema, Path(ref.source)).to_numpy()


def distribution(col: ColumnProfile, values: pd.Series) -> dict[str, Any]:
    """Return reference and current shares over common bins or categories, for plotting."""
    if col.kind == "categorical":
        return _category_shares(col, category_counts(values))
    present = numeric_values(values)
    present = present[np.isfinite(present)]
    lo = min(col.values[0], present.min()) if len(present) else col.values[0]
    hi = max(col.values[-1], present.max()) if len(present) else col.values[-1]
    edges = np.linspace(lo, hi, _BINS + 1) if hi > lo else np.array([lo - 0.5, lo + 0.5])
    ref_h = np.histogram(col.values, edges)[0] / max(len(col.values), 1)
    cur_h = np.histogram(present, edges)[0] / max(len(present), 1)
    return {
        "kind": "numeric",
        "edges": edges.tolist(),
        "reference": ref_h.tolist(),
        "current": cur_h.tolist(),
    }


def _category_shares(col: ColumnProfile, cur: dict[str, int]) -> dict[str, Any]:
    """Return the shares of the ``_TOP`` most common categories, the rest as ``(other)``."""
    n_cur = max(sum(cur.values()), 1)
    ref = col.counts or {}
    order = sorted({*ref, *cur}, key=lambda k: -(ref.get(k, 0) / col.count + cur.get(k, 0) / n_cur))
    shown, rest = order[:_TOP], order[_TOP:]
    ref_s = [ref.get(k, 0) / max(col.count, 1) for k in shown]
    cur_s = [cur.get(k, 0) / n_cur for k in shown]
    if rest:
        shown = [*shown, "(other)"]
        ref_s.append(sum(ref.get(k, 0) for k in rest) / max(col.count, 1))
        cur_s.append(sum(cur.get(k, 0) for k in rest) / n_cur)
    return {"kind": "categorical", "labels": shown, "reference": ref_s, "current": cur_s}
