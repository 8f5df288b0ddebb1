"""What each task calls its metrics, and the defaults a project's task chooses.

One table for every layer: the metric names users may write per task (``train.primary_metric``,
``evaluate.floors``, ``monitor.alerts.metric_drop``), the task's headline metric, and what
``auto`` means for the floors and the metric-drop alert. A binary project's ROC AUC floor never
reaches a regression or multiclass project: each task has its own defaults.
"""

from __future__ import annotations

from typing import Literal

Task = Literal["binary", "multiclass", "regression"]

# Metric names per task, as params name them (lib.model.metrics maps them to scorers).
METRICS: dict[Task, tuple[str, ...]] = {
    "binary": (
        "roc_auc",
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "average_precision",
        "log_loss",
    ),
    "multiclass": ("f1_macro", "accuracy", "balanced_accuracy", "roc_auc", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}
# Metrics the monitor computes per window (the alert rule ``metric_drop`` may name these).
MONITORED: dict[Task, tuple[str, ...]] = {
    "binary": ("roc_auc", "accuracy", "f1_macro", "log_loss"),
    "multiclass": ("f1_macro", "accuracy", "roc_auc", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}
# Test-split scores the evaluate stage computes (``evaluate.floors`` may name these).
_CLASS_SCORES = (
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "log_loss",
    "brier",
    "roc_auc",
    "pr_auc",
)
SCORES: dict[Task, tuple[str, ...]] = {
    "binary": _CLASS_SCORES,
    "multiclass": _CLASS_SCORES,
    "regression": ("rmse", "mae", "r2", "mape"),
}
LOSSES = frozenset({"log_loss", "rmse", "mae", "brier", "mape"})
HEADLINE: dict[Task, str] = {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "rmse"}
# evaluate.floors: auto. Each says "clearly better than chance": ROC AUC 0.5 and R^2 0 are what
# a model that learned nothing scores; balanced accuracy's chance level is 1/k (set per project).
_FLOORS: dict[Task, dict[str, float]] = {
    "binary": {"roc_auc": 0.6},
    "multiclass": {},  # balanced_accuracy: 1.2/k, k known only from the data
    "regression": {"r2": 0.05},
}
# monitor.alerts.metric_drop: auto. The headline metric for classification; for regression R^2
# (RMSE is in the target's unit, so no single number fits every project).
_METRIC_DROP: dict[Task, dict[str, float]] = {
    "binary": {"roc_auc": 0.05},
    "multiclass": {"f1_macro": 0.05},
    "regression": {"r2": 0.1},
}


def auto_floors(task: Task, n_classes: int | None = None) -> dict[str, float]:
    """Return the floors ``evaluate.floors: auto`` means for ``task``.

    Parameters
    ----------
    task
        The project's task.
    n_classes
        The number of classes (multiclass: the balanced-accuracy floor is 1.2 / k).

    Returns
    -------
    dict of str to float
        Metric name → minimum (maximum for losses).
    """
    floors = dict(_FLOORS[task])
    if task == "multiclass" and n_classes:
        floors["balanced_accuracy"] = round(1.2 / n_classes, 4)
    return floors


def floors(
    value: str | dict[str, float], task: Task, n_classes: int | None = None
) -> dict[str, float]:
    """Return ``evaluate.floors`` resolved: ``auto`` becomes the task's floors."""
    return auto_floors(task, n_classes) if isinstance(value, str) else dict(value)


def metric_drop(value: str | dict[str, float], task: Task) -> dict[str, float]:
    """Return ``monitor.alerts.metric_drop`` resolved: ``auto`` becomes the task's rule."""
    return dict(_METRIC_DROP[task]) if isinstance(value, str) else dict(value)
