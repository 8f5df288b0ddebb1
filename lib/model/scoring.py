"""Held-out metrics with bootstrap confidence intervals, decision thresholds, segments, errors."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lib.data.drift_profile import stable_order
from lib.data.schema import Task

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

    Macro precision, recall and F1 average over the classes in ``y`` or predicted (as
    scikit-learn's default labels); multiclass ROC and PR AUC are one-vs-rest macro averages
    over the classes in ``y``, and log loss uses every column of ``proba``; the
    multiclass Brier score is the mean squared distance between the probability vector and the
    one-hot truth. Plain NumPy, equal to scikit-learn's metrics (tested against them): their
    input checks cost milliseconds a call, which the bootstrap pays hundreds of times.

    Raises
    ------
    ValueError
        When ``y`` holds a value outside ``classes`` (as scikit-learn's log loss does).
    """
    labels = list(classes)
    k = len(labels)
    index = pd.Index(labels)
    yi = index.get_indexer(np.asarray(y, dtype=object))
    if (yi < 0).any():
        raise ValueError(f"y holds values outside the classes {labels}")
    pi = index.get_indexer(np.asarray(predict_labels(proba, labels, threshold), dtype=object))
    tp, p, r, f = confusion_scores(yi, pi, k)
    onehot = yi[:, None] == np.arange(k)[None, :]
    # Macro averages over the classes in the truth or the predictions (scikit-learn's labels
    # default): a class absent from the rows scored would otherwise count as an F1 of 0.
    seen = onehot.any(axis=0) | np.isin(np.arange(k), pi)
    out = {
        "accuracy": tp.sum() / len(yi),
        "precision_macro": p[seen].mean(),
        "recall_macro": r[seen].mean(),
        # mean recall over the classes present in y, as scikit-learn's balanced_accuracy_score
        "balanced_accuracy": r[onehot.any(axis=0)].mean(),
        "f1_macro": f[seen].mean(),
        "log_loss": mean_log_loss(proba, yi),
        "brier": np.mean(np.sum((proba - onehot) ** 2, axis=1)),
    }
    if k == 2:
        out["roc_auc"], out["pr_auc"] = _ranking(onehot[:, 1], proba[:, 1])
        out["brier"] = np.mean((proba[:, 1] - onehot[:, 1]) ** 2)
    else:  # one-vs-rest over the classes present
        curves = [_ranking(onehot[:, j], proba[:, j]) for j in np.flatnonzero(onehot.any(axis=0))]
        out["roc_auc"], out["pr_auc"] = np.mean(curves, axis=0)
    in_truth = onehot.any(axis=0)
    for i, label in enumerate(labels):
        # A class without rows here has no recall, and no precision or F1 unless predicted.
        out[f"precision[{label}]"] = p[i] if seen[i] else np.nan
        out[f"recall[{label}]"] = r[i] if in_truth[i] else np.nan
        out[f"f1[{label}]"] = f[i] if seen[i] else np.nan
    return {key: float(v) for key, v in out.items()}


def absent_classes(y: np.ndarray, classes: Sequence[Any]) -> list[Any]:
    """Return the classes of ``classes`` that have no row in ``y``, in class order."""
    present = set(pd.unique(np.asarray(y, dtype=object)).tolist())
    return [c for c in classes if c not in present]


def averaging_note(y: np.ndarray, classes: Sequence[Any], split: str = "test") -> str:
    """Return a sentence saying which classes the macro averages of ``split`` are over."""
    absent = absent_classes(y, classes)
    if not absent:
        return f"Macro averages are over all {len(classes)} classes (each has {split} rows)."
    names = ", ".join(repr(c) for c in absent)
    return (
        f"Macro averages are over the {len(classes) - len(absent)} of {len(classes)} classes "
        f"present in the {split} split: {names} has no {split} rows, so its ROC AUC, PR AUC and "
        "recall are undefined and left out (its probabilities still count in the log loss, and a "
        "prediction of it still counts in precision and F1)."
    )


def confusion_scores(
    yi: np.ndarray, pi: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return per-class true positives, precision, recall and F1 from class indices.

    ``yi`` and ``pi`` are the true and predicted classes as indices 0..k-1; a score whose
    denominator is 0 is 0 (scikit-learn's ``zero_division=0``).
    """
    confusion = np.bincount(yi * k + pi, minlength=k * k).reshape(k, k)
    tp = np.diag(confusion).astype(float)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros(k), where=actual > 0)
    both = predicted + actual  # 2tp + fp + fn
    f1 = np.divide(2 * tp, both, out=np.zeros(k), where=both > 0)
    return tp, precision, recall, f1


def mean_log_loss(proba: np.ndarray, yi: np.ndarray) -> float:
    """Return the log loss of the true classes' probabilities (clipped as scikit-learn does)."""
    eps = np.finfo(float).eps
    chosen = np.clip(np.asarray(proba, dtype=float)[np.arange(len(yi)), yi], eps, 1 - eps)
    return float(-np.mean(np.log(chosen)))


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Return ROC AUC (Mann-Whitney, ties averaged) as scikit-learn computes it.

    NaN when ``positive`` is all true or all false (undefined; scikit-learn also gives NaN).
    """
    return _ranking(positive, score)[0]


def _ranking(positive: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """Return (ROC AUC, average precision) from one sort of the scores, highest first.

    Average precision: the precision at each distinct score, weighted by the recall it adds.
    """
    n = len(score)
    # tied scores are one group whatever their order: sorted by bucket first (faster)
    order = stable_order(-np.asarray(score, dtype=float))
    ranked = score[order]
    ends = np.r_[np.flatnonzero(np.diff(ranked)), n - 1]  # last place of each tied group
    starts = np.r_[0, ends[:-1] + 1]
    tps = np.cumsum(positive[order])[ends]  # positives at or above each distinct score
    n1 = int(tps[-1]) if n else 0
    auc = _grouped_auc(np.diff(tps, prepend=0), starts, ends, n, n1)
    if n1 == 0:
        return auc, 0.0
    precision = tps / (ends + 1)
    recall = tps / n1
    return auc, float(np.sum(np.diff(recall, prepend=0.0) * precision))


def ranked_roc_aucs(positive: np.ndarray, score: np.ndarray) -> list[float]:
    """Return :func:`roc_auc` of each row of ``positive`` and ``score``, each row's scores sorted.

    For samples held in the order of their scores, highest first (the bootstrap's): every
    row's tied groups found and counted in one pass over them all, then each row's rank sum
    added up as :func:`roc_auc` does (the same sum, so the same number to the last bit).
    """
    rows, n = score.shape
    if n == 0:
        return [float("nan")] * rows
    end = np.ones((rows, n), dtype=bool)  # the last place of each tied group, as _ranking's
    np.not_equal(score[:, 1:], score[:, :-1], out=end[:, :-1])
    place = np.flatnonzero(end)
    tps = np.cumsum(positive, axis=1).ravel()[place]  # positives at or above each group
    row, ends = np.divmod(place, n)
    first = np.r_[True, row[1:] != row[:-1]]  # each row's first group
    starts = np.r_[0, ends[:-1] + 1]
    starts[first] = 0
    in_group = np.diff(tps, prepend=0)
    in_group[first] = tps[first]
    bounds = np.r_[np.flatnonzero(first), len(place)]
    return [
        _grouped_auc(in_group[lo:hi], starts[lo:hi], ends[lo:hi], n, int(tps[hi - 1]))
        for lo, hi in itertools.pairwise(bounds.tolist())
    ]


def _grouped_auc(
    in_group: np.ndarray, starts: np.ndarray, ends: np.ndarray, n: int, n1: int
) -> float:
    """Return ROC AUC from the positives of each tied group (first and last places, highest first).

    ``n`` rows, ``n1`` of them positive; NaN when either class is absent.
    """
    n0 = n - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    # ascending rank of the tied group, averaged: n - (start + end) / 2 (0-based, descending)
    rank_sum = float(np.sum(in_group * (n - (starts + ends) / 2)))
    return (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0)


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, R² and MAPE (rows with a true value of 0 are left out of MAPE).

    Plain NumPy, equal to scikit-learn's metrics (R² of a constant truth: 1 if predicted
    exactly, else 0, as scikit-learn's ``force_finite``).
    """
    y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    err = y - pred
    nonzero = y != 0
    mape = float(np.mean(np.abs(err[nonzero] / y[nonzero]))) if nonzero.any() else np.nan
    residual, total = np.sum(err**2), np.sum((y - y.mean()) ** 2)
    r2 = 1 - residual / total if total > 0 else (1.0 if residual == 0 else 0.0)
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "r2": float(r2),
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
    from sklearn import metrics as skm  # here: the monitor's checks import this module

    truth = np.asarray(y, dtype=object) == positive
    scores = [skm.f1_score(truth, positive_proba >= t, zero_division=0) for t in grid]
    return float(grid[int(np.argmax(scores))])


def threshold_table(y: np.ndarray, positive_proba: np.ndarray, positive: Any) -> pd.DataFrame:
    """Precision, recall, F1 and accuracy of the positive class at thresholds 0.01..0.99."""
    from sklearn import metrics as skm

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
