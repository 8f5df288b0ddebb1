"""Metric names users write in params, mapped to scikit-learn scorers and their direction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lib.core import tasks
from lib.core.errors import ParamsError
from lib.data.schema import Task
from lib.model.scoring import classification_metrics


@dataclass(frozen=True)
class ClassAwareScorer:
    """A scorer that scores probabilities against the model's full class list.

    scikit-learn's ``neg_log_loss`` and ``roc_auc_ovr`` scorers infer the classes from the rows
    scored and raise when a cross-validation fold (or a split of a time-ordered table) lacks a
    class the model knows. This one takes the classes from ``estimator.classes_``: log loss uses
    every column of ``predict_proba``, multiclass ROC AUC is the one-vs-rest mean over the
    classes present in the rows (as :func:`lib.model.scoring.classification_metrics`).

    Parameters
    ----------
    metric
        ``log_loss`` or ``roc_auc``: a key of ``classification_metrics``.
    sign
        1 for scores, -1 for losses (scorers always maximise).
    """

    metric: str
    sign: float

    def __call__(self, estimator: Any, X: Any, y: Any) -> float:
        """Return the signed metric of a fitted classifier on (X, y)."""
        proba = np.asarray(estimator.predict_proba(X))
        values = classification_metrics(np.asarray(y), proba, list(estimator.classes_))
        return self.sign * values[self.metric]


@dataclass(frozen=True)
class PositiveClassScorer:
    """Average precision of a binary classifier, its positive class the model's second one.

    scikit-learn's ``average_precision`` scorer takes ``pos_label=1``, so it raises on a target
    of text labels (``"no"``/``"yes"``) - at the first cross-validation fold, after the search
    had started. The positive class here is ``estimator.classes_[1]``, as ``roc_auc`` does.
    """

    def __call__(self, estimator: Any, X: Any, y: Any) -> float:
        """Return the average precision of a fitted binary classifier on (X, y)."""
        from sklearn.metrics import average_precision_score

        proba = np.asarray(estimator.predict_proba(X))[:, 1]
        positive = np.asarray(y, dtype=object) == estimator.classes_[1]
        return float(average_precision_score(positive, proba))


Scorer = str | ClassAwareScorer | PositiveClassScorer  # a scikit-learn scorer name or ours


@dataclass(frozen=True)
class Metric:
    """A metric: its params name, scikit-learn scorer (name or callable), higher is better."""

    name: str
    scorer: Scorer
    higher_is_better: bool

    def from_score(self, score: float) -> float:
        """Turn a scorer's value (negated for losses) into the metric's own value."""
        return float(score if self.higher_is_better else -score)


_CLASSIFICATION = {
    "accuracy": Metric("accuracy", "accuracy", True),
    "balanced_accuracy": Metric("balanced_accuracy", "balanced_accuracy", True),
    "f1_macro": Metric("f1_macro", "f1_macro", True),
    "log_loss": Metric("log_loss", ClassAwareScorer("log_loss", -1.0), False),
}
_BINARY = {
    **_CLASSIFICATION,
    "roc_auc": Metric("roc_auc", "roc_auc", True),
    "average_precision": Metric("average_precision", PositiveClassScorer(), True),
}
_MULTICLASS = {
    **_CLASSIFICATION,
    "roc_auc": Metric("roc_auc", ClassAwareScorer("roc_auc", 1.0), True),
}
_REGRESSION = {
    "rmse": Metric("rmse", "neg_root_mean_squared_error", False),
    "mae": Metric("mae", "neg_mean_absolute_error", False),
    "r2": Metric("r2", "r2", True),
}
_BY_TASK = {"binary": _BINARY, "multiclass": _MULTICLASS, "regression": _REGRESSION}
_PRIMARY = tasks.HEADLINE
_SECONDARY = {
    "binary": ["accuracy", "f1_macro", "average_precision", "log_loss"],
    "multiclass": ["accuracy", "balanced_accuracy", "roc_auc", "log_loss"],
    "regression": ["mae", "r2"],
}


def metric(name: str, task: Task, key: str = "train.primary_metric") -> Metric:
    """Return the metric called ``name`` for ``task``, or raise naming the params key."""
    known = _BY_TASK[task]
    if name not in known:
        raise ParamsError(
            f"{key}: {name!r} is not a {task} metric; use one of {', '.join(sorted(known))}",
            key=key,
        )
    return known[name]


def metrics_for(
    task: Task, primary: str, secondary: list[str] | None
) -> tuple[Metric, list[Metric]]:
    """Resolve ``auto`` and ``null`` into the primary metric and the secondary ones."""
    first = metric(_PRIMARY[task] if primary == "auto" else primary, task)
    names = _SECONDARY[task] if secondary is None else secondary
    others = [metric(n, task, "train.secondary_metrics") for n in names if n != first.name]
    return first, others
