"""Model quality over time for monitoring: windowed metrics with intervals, and concept drift.

Metrics here are the lean few that monitoring tracks (not the evaluate stage's full set), so a
bootstrap over many windows stays fast.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lib.core import tasks
from lib.core.errors import ParamsError
from lib.data.schema import Task
from lib.model.scoring import bootstrap, confusion_scores, mean_log_loss, roc_auc


@dataclass(frozen=True)
class Scored:
    """Rows with truth and model outputs, aligned."""

    y: np.ndarray
    pred: np.ndarray
    proba: np.ndarray | None  # classification: one column per class, in ``classes`` order
    classes: list[Any] | None


def lean_metrics(task: Task, classes: Sequence[Any] | None) -> Any:
    """Return ``fn(y, pred, proba) -> {metric: value}`` for the task's monitored metrics.

    Plain NumPy, equal to scikit-learn's metrics (tested): its input validation costs about
    10 ms a call, which a bootstrap over many windows pays thousands of times.
    """
    labels = pd.Index(list(classes or []))

    def classification(y: np.ndarray, pred: np.ndarray, proba: np.ndarray) -> dict[str, float]:
        k = len(labels)
        yi, pi = labels.get_indexer(y), labels.get_indexer(pred)
        tp, _, _, f1 = confusion_scores(yi, pi, k)
        # macro F1 over the classes in the truth or the predictions, as the evaluate stage
        seen = (np.bincount(yi[yi >= 0], minlength=k) > 0) | np.isin(np.arange(k), pi)
        out = {
            "accuracy": float(tp.sum() / max(len(yi), 1)),
            "f1_macro": float(f1[seen].mean()) if seen.any() else float("nan"),
            "log_loss": mean_log_loss(proba, yi),
        }
        onehot = yi[:, None] == np.arange(k)[None, :]
        present = onehot.any(axis=0)
        if present.sum() >= 2:  # ROC AUC needs two classes
            if k == 2:
                out["roc_auc"] = roc_auc(onehot[:, 1], proba[:, 1])
            else:  # one-vs-rest macro average over the classes present
                aucs = [roc_auc(onehot[:, j], proba[:, j]) for j in np.flatnonzero(present)]
                out["roc_auc"] = float(np.mean(aucs))
        return out

    def regression(y: np.ndarray, pred: np.ndarray, _: np.ndarray) -> dict[str, float]:
        err = y - pred
        total = np.sum((y - y.mean()) ** 2)
        return {
            "rmse": float(np.sqrt(np.mean(err**2))),
            "mae": float(np.mean(np.abs(err))),
            "r2": float(1 - np.sum(err**2) / total) if total > 0 else float("nan"),
        }

    return regression if task == "regression" else classification


def _arrays(scored: Scored) -> list[np.ndarray]:
    proba = scored.proba if scored.proba is not None else np.zeros((len(scored.y), 1))
    return [scored.y, scored.pred, proba]


def metric_table(
    task: Task, scored: Scored, resamples: int, confidence: float, seed: int
) -> dict[str, dict[str, float]]:
    """Each monitored metric with its bootstrap interval: ``{name: {value, ci_low, ci_high}}``."""
    fn = lean_metrics(task, scored.classes)
    arrays = _arrays(scored)
    values = fn(*arrays)
    low, high = bootstrap(fn, arrays, resamples, confidence, seed) if resamples else ({}, {})
    nan = float("nan")
    order = [m for m in tasks.MONITORED[task] if m in values]  # the task's headline metric first
    return {
        k: {"value": values[k], "ci_low": low.get(k, nan), "ci_high": high.get(k, nan)}
        for k in order
    }


def windows(
    task: Task,
    scored: Scored,
    times: pd.Series | None,
    count: int,
    resamples: int,
    confidence: float,
    seed: int,
) -> pd.DataFrame:
    """Compute the monitored metrics per consecutive window of rows, with intervals.

    Returns
    -------
    DataFrame
        One row per window and metric: window, start, end (times, when known), rows, metric,
        value, ci_low, ci_high.
    """
    n = len(scored.y)
    edges = np.linspace(0, n, min(count, max(n // 20, 1)) + 1).astype(int)
    rows = []
    for w, (a, b) in enumerate(itertools.pairwise(edges)):
        part = Scored(
            scored.y[a:b],
            scored.pred[a:b],
            None if scored.proba is None else scored.proba[a:b],
            scored.classes,
        )
        table = metric_table(task, part, resamples, confidence, seed + w)
        start = times.iloc[a] if times is not None else None
        end = times.iloc[b - 1] if times is not None else None
        for name, stats_ in table.items():
            rows.append(
                {"window": w + 1, "start": start, "end": end, "rows": int(b - a), "metric": name}
                | stats_
            )
    return pd.DataFrame(rows)


def errors(task: Task, scored: Scored) -> np.ndarray:
    """Per-row error stream: 0/1 misclassification, or absolute error for regression."""
    out: np.ndarray
    if task == "regression":
        out = np.abs(scored.y.astype(float) - scored.pred.astype(float))
    else:
        out = (scored.y != scored.pred).astype(float)
    return out


@dataclass(frozen=True)
class PageHinkley:
    """Page-Hinkley test for an increase in the mean of a stream.

    ``delta`` is the tolerated change and ``threshold`` the alarm level, both in units of the
    stream's reference standard deviation (so one setting fits 0/1 errors and absolute errors).
    """

    delta: float = 0.1
    threshold: float = 50.0

    def detect(self, stream: np.ndarray, mean: float, std: float) -> int | None:
        """Return the index at which the alarm fires, or None.

        Parameters
        ----------
        stream
            The values in time order.
        mean, std
            The stream's mean and standard deviation on the reference data.
        """
        scale = std if std > 0 else 1.0
        z = (np.asarray(stream, dtype=float) - mean) / scale - self.delta
        cumulative = np.cumsum(z)
        statistic = cumulative - np.minimum.accumulate(np.minimum(cumulative, 0.0))
        hits = np.flatnonzero(statistic > self.threshold)
        return int(hits[0]) if len(hits) else None


def metric_drops(
    reference: dict[str, dict[str, float]],
    current: dict[str, dict[str, float]],
    limits: dict[str, float],
    task: Task,
) -> list[dict[str, Any]]:
    """Metrics that fell by more than their limit (losses: rose), worst first."""
    known = set(tasks.MONITORED[task])
    for name in limits:
        if name not in known:
            raise ParamsError(
                f"monitor.alerts.metric_drop: {name!r} is not monitored for {task} models; use "
                f"one of {sorted(known)}",
                key="monitor.alerts.metric_drop",
            )
    drops = []
    for name, limit in limits.items():
        if name not in reference or name not in current:
            continue
        before, now = reference[name]["value"], current[name]["value"]
        drop = (now - before) if name in tasks.LOSSES else (before - now)
        if drop > limit:
            drops.append({"metric": name, "reference": before, "current": now, "drop": drop})
    return sorted(drops, key=lambda d: -d["drop"])
