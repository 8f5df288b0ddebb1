"""What the monitor finds on its two sides: drift of the inputs and outputs, and model quality.

Pure functions of the loaded :class:`~lib.monitoring.inputs.Reference` and
:class:`~lib.monitoring.inputs.Current`: nothing is read or written here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lib.core import tasks
from lib.core.contracts.predlog import PREDICTION, proba_column
from lib.core.contracts.summary import Concept
from lib.core.param_sections import MonitorParams
from lib.data import drift
from lib.data.drift_profile import ColumnProfile, category_counts, numeric_values
from lib.data.schema import Schema, Task
from lib.model.reference import output_kinds
from lib.monitoring import performance
from lib.monitoring.inputs import Current, Reference, align_target

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
    names = [proba_column(c) for c in schema.classes or []]
    proba = frame[names].to_numpy(float) if names and all(n in frame for n in names) else None
    y = align_target(frame[schema.target], schema, Path(ref.source)).to_numpy()
    return _scored(y, frame[PREDICTION].to_numpy(), proba, schema)


def find_quality(
    ref: Reference,
    cur: Current,
    schema: Schema,
    params: MonitorParams,
    *,
    seed: int,
    dataset_drift: bool,
) -> QualityFindings:
    """Measure quality on both sides (with bootstrap intervals), per window, and concept drift."""
    task = schema.task
    ref_scored = _reference_scored(ref, schema)
    cur_scored = _scored(cur.y, cur.pred, cur.proba, schema) if cur.y is not None else None
    times = None
    if cur.times is not None and cur.y is not None:
        times = cur.times[labelled(cur.y)].reset_index(drop=True)
    if ref_scored is None or cur_scored is None or not len(cur_scored.y):
        concept = _concept(task, ref_scored, cur_scored, times, dataset_drift, [])
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
        concept=_concept(task, ref_scored, cur_scored, times, dataset_drift, drops),
    )


def _concept(
    task: Task,
    ref: performance.Scored | None,
    cur: performance.Scored | None,
    times: pd.Series | None,
    dataset_drift: bool,
    drops: list[dict[str, Any]],
) -> Concept:
    """Judge concept drift: a Page-Hinkley alarm on errors, or quality falling, inputs stable."""
    if ref is None or cur is None or len(cur.y) == 0:
        return Concept(checked=False, drift=False, reason="no labels for the current rows")
    ref_err = performance.errors(task, ref)
    cur_err = performance.errors(task, cur)
    alarm = performance.PageHinkley().detect(cur_err, float(ref_err.mean()), float(ref_err.std()))
    reasons = []
    if alarm is not None:
        reasons.append(f"the error rate rose (Page-Hinkley alarm at labelled row {alarm + 1:,})")
    if drops and not dataset_drift:
        reasons.append("quality fell while the inputs show no dataset drift")
    return Concept(
        checked=True,
        drift=bool(reasons),
        reason="; ".join(reasons) or "error stream stable",
        alarm_row=alarm,
        alarm_time=None if alarm is None or times is None else str(times.iloc[alarm]),
        reference_error=float(ref_err.mean()),
        current_error=float(cur_err.mean()),
    )


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
