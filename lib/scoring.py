"""Held-out metrics with bootstrap confidence intervals, decision thresholds, segments, errors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from lib.schema import Task

MetricFn = Callable[..., dict[str, float]]
_MIN_SEGMENT_ROWS = 10


def predict_labels(
    proba: np.ndarray, classes: Sequence[Any], threshold: float | None
) -> np.ndarray:
    """Labels from probabilities: the positive class at ``threshold`` (binary) or the argmax."""
    labels = np.asarray(classes)  # a real dtype (int, str): scikit-learn rejects object ints
    if threshold is not None and len(labels) == 2:
        chosen: np.ndarray = np.where(proba[:, 1] >= threshold, labels[1], labels[0])
    else:
        chosen = labels[np.argmax(proba, axis=1)]
    return chosen


def classification_metrics(
    y: np.ndarray, proba: np.ndarray, classes: Sequence[Any], threshold: float | None = None
) -> dict[str, float]:
    """Accuracy, precision/recall/F1 (macro and per class), ROC AUC, PR AUC, log loss, Brier.

    Multiclass ROC and PR AUC are one-vs-rest macro averages; the multiclass Brier score is the
    mean squared distance between the probability vector and the one-hot truth.
    """
    labels = list(classes)
    pred = predict_labels(proba, labels, threshold)
    onehot = np.asarray(y, dtype=object)[:, None] == np.asarray(labels, dtype=object)[None, :]
    onehot = onehot.astype(float)
    p, r, f, _ = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    out = {
        "accuracy": skm.accuracy_score(y, pred),
        "precision_macro": float(p.mean()),
        "recall_macro": float(r.mean()),
        "f1_macro": float(f.mean()),
        "log_loss": skm.log_loss(y, proba, labels=labels),
        "brier": float(np.mean(np.sum((proba - onehot) ** 2, axis=1))),
    }
    if len(labels) == 2:
        out["roc_auc"] = skm.roc_auc_score(onehot[:, 1], proba[:, 1])
        out["pr_auc"] = skm.average_precision_score(onehot[:, 1], proba[:, 1])
        out["brier"] = skm.brier_score_loss(onehot[:, 1], proba[:, 1])
    else:
        present = onehot.sum(axis=0) > 0
        out["roc_auc"] = skm.roc_auc_score(onehot[:, present], proba[:, present], average="macro")
        out["pr_auc"] = skm.average_precision_score(onehot[:, present], proba[:, present])
    for i, label in enumerate(labels):
        out[f"precision[{label}]"], out[f"recall[{label}]"], out[f"f1[{label}]"] = p[i], r[i], f[i]
    return {k: float(v) for k, v in out.items()}


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, R² and MAPE (rows with a true value of 0 are left out of MAPE)."""
    nonzero = y != 0
    mape = (
        float(np.mean(np.abs((y[nonzero] - pred[nonzero]) / y[nonzero])))
        if nonzero.any()
        else np.nan
    )
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
        "mae": float(skm.mean_absolute_error(y, pred)),
        "r2": float(skm.r2_score(y, pred)),
        "mape": mape,
    }


def bootstrap(
    fn: MetricFn, arrays: Sequence[np.ndarray], resamples: int, confidence: float, seed: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Percentile bootstrap interval of every metric ``fn`` returns.

    Parameters
    ----------
    fn
        Called as ``fn(*arrays)`` on each resample (rows drawn with replacement).
    arrays
        Row-aligned arrays.
    resamples
        How many resamples; 0 gives NaN bounds.
    confidence
        Interval level, e.g. 0.95.
    seed
        Integer seed of the resampling.

    Returns
    -------
    tuple of (dict, dict)
        Lower and upper bounds per metric (resamples where a metric is undefined, e.g. one class
        only, are left out of that metric).
    """
    n = len(arrays[0])
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        index = rng.integers(0, n, n)
        try:
            values = fn(*[a[index] for a in arrays])
        except ValueError:  # e.g. a resample with a single class has no ROC AUC
            continue
        for key, value in values.items():
            draws.setdefault(key, []).append(value)
    alpha = (1 - confidence) / 2
    low = {k: float(np.nanquantile(v, alpha)) for k, v in draws.items()}
    high = {k: float(np.nanquantile(v, 1 - alpha)) for k, v in draws.items()}
    return low, high


def best_threshold(y: np.ndarray, positive_proba: np.ndarray, positive: Any) -> float:
    """Return the threshold in 0.01..0.99 that maximises F1 of the positive class."""
    grid = np.round(np.linspace(0.01, 0.99, 99), 2)
    truth = np.asarray(y, dtype=object) == positive
    scores = [skm.f1_score(truth, positive_proba >= t, zero_division=0) for t in grid]
    return float(grid[int(np.argmax(scores))])


def threshold_table(y: np.ndarray, positive_proba: np.ndarray, positive: Any) -> pd.DataFrame:
    """Precision, recall, F1 and accuracy of the positive class at thresholds 0.01..0.99."""
    truth = np.asarray(y, dtype=object) == positive
    rows = []
    for t in np.round(np.linspace(0.01, 0.99, 99), 2):
        pred = positive_proba >= t
        rows.append(
            {
                "threshold": t,
                "precision": skm.precision_score(truth, pred, zero_division=0),
                "recall": skm.recall_score(truth, pred, zero_division=0),
                "f1": skm.f1_score(truth, pred, zero_division=0),
                "accuracy": skm.accuracy_score(truth, pred),
            }
        )
    return pd.DataFrame(rows)


def segment_table(
    frame: pd.DataFrame,
    columns: Sequence[str],
    fn: MetricFn,
    arrays: Sequence[np.ndarray],
    keep: Sequence[str],
) -> pd.DataFrame:
    """Metrics per value of each segment column (missing values are their own segment).

    Parameters
    ----------
    frame
        The evaluated rows (for the segment columns).
    columns
        Categorical columns to slice by.
    fn
        Metric function, called on each segment's rows of ``arrays``.
    arrays
        Row-aligned arrays passed to ``fn``.
    keep
        Names of the metrics to report.

    Returns
    -------
    pandas.DataFrame
        One row per (column, value) with rows, share and the metrics (NaN where undefined or the
        segment has fewer than 10 rows).
    """
    overall = fn(*arrays)
    rows = []
    for column in columns:
        values = frame[column].astype(object).where(frame[column].notna(), "(missing)")
        for value, index in values.groupby(values, sort=True).indices.items():
            row: dict[str, Any] = {"column": column, "value": value, "rows": len(index)}
            row["share"] = len(index) / len(frame)
            scores: dict[str, float] = {}
            if len(index) >= _MIN_SEGMENT_ROWS:
                try:
                    scores = fn(*[a[index] for a in arrays])
                except ValueError:
                    scores = {}
            for name in keep:
                row[name] = scores.get(name, np.nan)
                row[f"{name} vs all"] = row[name] - overall[name]
            rows.append(row)
    return pd.DataFrame(rows)


def worst_errors(
    frame: pd.DataFrame, task: Task, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
    classes: Sequence[Any] | None, n: int,
) -> pd.DataFrame:  # fmt: skip
    """Return the ``n`` rows the model got most wrong (highest log loss, or absolute error)."""
    out = frame.copy()
    out.insert(0, "predicted", pred)
    out.insert(0, "actual", y)
    if task == "regression":
        error = np.abs(np.asarray(y, dtype=float) - np.asarray(pred, dtype=float))
        out.insert(2, "abs error", error)
    else:
        assert proba is not None and classes is not None
        position = {c: i for i, c in enumerate(classes)}
        p_true = proba[np.arange(len(y)), [position[v] for v in y]]
        out.insert(2, "p(actual)", p_true)
        error = -np.log(np.clip(p_true, 1e-15, 1.0))
    order = np.argsort(-error, kind="stable")[:n]
    return out.iloc[order]
