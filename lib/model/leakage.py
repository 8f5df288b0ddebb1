"""Leakage checks: a column that alone predicts the target, or validation far above CV.

A column that is a copy of the target in disguise (an outcome recorded after the fact, an ID that
encodes the label) makes a model look excellent in validation and fail in production. Two cheap
signs are checked: a single column whose one-dimensional model (the target's mean per bin or per
category, learnt on train) scores almost perfectly on validation, and a best model whose
validation score is far above its cross-validation score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from lib.data.schema import Task
from lib.model.scoring import classification_metrics, regression_metrics

_MIN_ROWS_PER_BIN = 20
_MAX_BINS = 100
_MIN_BINS = 10
# Validation rows below which a one-column score is not judged a leak. The best honest single
# columns of the clean real tables score up to 0.95 alone (breast cancer's, tests/lib); such a
# column makes no error in n rows with chance 0.95 ** n, under 5 % from n = 59. On fewer rows
# honest columns score 1.0 by chance: statsmodels' spector (32 rows, 5 in validation) had its
# treatment column PSI blocked as a leak in 6 of 20 random splits, scikit-learn's iris (22 in
# validation) a petal measure in 7 of 20, and breast cancer's mean concavity scores 1.0 on 30.
MIN_VALIDATION_ROWS = 60


@dataclass(frozen=True)
class LeakageFinding:
    """One suspected leak: the column, what was seen and the sentence for the report."""

    column: str
    check: Literal["single_feature", "validation_above_cv"]
    metric: str
    score: float
    message: str
    blocks: bool = True  # False: shown, but too few validation rows to judge (never blocks)


def _codes(train: pd.Series, other: pd.Series, bins: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Return bin (numeric) or category codes of both sides, learnt on ``train``; and their count.

    Missing values, and categories not seen in training, get a code of their own.
    """
    if pd.api.types.is_datetime64_any_dtype(train):
        train = (train - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
        other = (other - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    numeric = pd.api.types.is_numeric_dtype(train) and not pd.api.types.is_bool_dtype(train)
    if numeric:
        values = train.to_numpy(dtype=float)
        edges = np.unique(np.nanquantile(values, np.linspace(0, 1, bins + 1))[1:-1])
        a, b = np.searchsorted(edges, values), np.searchsorted(edges, other.to_numpy(dtype=float))
        k = len(edges) + 1
        a = np.where(np.isnan(values), k, a)
        b = np.where(np.isnan(other.to_numpy(dtype=float)), k, b)
        return a, b, k + 1
    index = pd.Index(pd.unique(train.dropna().astype(str)))
    a = np.where(train.isna(), -1, index.get_indexer(pd.Index(train.astype(str))))
    b = np.where(other.isna(), -1, index.get_indexer(pd.Index(other.astype(str))))
    k = len(index)
    return np.where(a < 0, k, a), np.where(b < 0, k, b), k + 1


def _bin_means(codes: np.ndarray, target: np.ndarray, k: int, prior: np.ndarray) -> np.ndarray:
    """Return the mean of each target column per code, shrunk to ``prior`` for sparse codes."""
    counts = np.bincount(codes, minlength=k).astype(float)
    sums = np.stack([np.bincount(codes, weights=t, minlength=k) for t in target.T], axis=1)
    # One pseudo-row of the prior per code: a code seen once is not a perfect predictor.
    means: np.ndarray = (sums + prior[None, :]) / (counts + 1.0)[:, None]
    return means


def _balanced_accuracy(yi: np.ndarray, proba: np.ndarray) -> float:
    """Mean recall over the classes present in ``yi`` of the most probable class."""
    hit = np.argmax(proba, axis=1) == yi
    present = np.unique(yi)
    return float(np.mean([hit[yi == c].mean() for c in present]))


def single_feature_scores(
    train: tuple[pd.DataFrame, pd.Series],
    validation: tuple[pd.DataFrame, pd.Series],
    task: Task,
    classes: Sequence[Any] | None,
) -> pd.DataFrame:
    """Return how well each column alone predicts the target on validation, best first.

    Each column's model is the target's mean (class shares for classification) per bin of the
    column (up to 100 quantile bins, at least 20 training rows each) or per category, learnt on
    train and applied to validation. Classification: its balanced accuracy (the deciding score)
    and ROC AUC (one-vs-rest mean over the classes present, for multiclass); regression: R².

    Parameters
    ----------
    train, validation
        (features, target) of the two splits.
    task
        ``binary``, ``multiclass`` or ``regression``.
    classes
        The full class list (classification).

    Returns
    -------
    pandas.DataFrame
        A row per column: ``score`` (balanced accuracy or R²), ``metric`` (its name) and, for
        classification, ``roc_auc``; sorted by ``score`` descending.
    """
    (X, y), (Xv, yv) = train, validation
    bins = int(np.clip(len(X) // _MIN_ROWS_PER_BIN, _MIN_BINS, _MAX_BINS))
    if task == "regression":
        target = y.to_numpy(dtype=float)[:, None]
    else:
        assert classes is not None
        labels = np.asarray(list(classes), dtype=object)
        target = (np.asarray(y, dtype=object)[:, None] == labels[None, :]).astype(float)
        yi = pd.Index(list(classes)).get_indexer(np.asarray(yv, dtype=object))
    prior = target.mean(axis=0)
    rows = []
    for column in X.columns:
        a, b, k = _codes(X[column], Xv[column], bins)
        predicted = _bin_means(a, target, k, prior)[b]
        if task == "regression":
            r2 = regression_metrics(yv.to_numpy(dtype=float), predicted[:, 0])["r2"]
            rows.append({"column": column, "metric": "r2", "score": r2})
            continue
        proba = predicted / predicted.sum(axis=1, keepdims=True)
        auc = classification_metrics(yv.to_numpy(), proba, list(classes or []))["roc_auc"]
        # Each row to the class its bin over-represents most (share / overall share): the
        # decision that maximises balanced accuracy, so a rare class's leak is not hidden by
        # the majority class winning every bin.
        score = _balanced_accuracy(yi, predicted / np.maximum(prior, 1e-12)[None, :])
        rows.append(
            {"column": column, "metric": "balanced_accuracy", "score": score, "roc_auc": auc}
        )
    columns = ["column", "metric", "score", *([] if task == "regression" else ["roc_auc"])]
    table = pd.DataFrame(rows, columns=columns).set_index("column")  # no column: an empty table
    return table.sort_values("score", ascending=False, kind="stable")


def leakage_findings(
    scores: pd.DataFrame,
    threshold: float,
    cv: tuple[str, float, float, float, bool] | None = None,
    top_column: str | None = None,
    validation_rows: int | None = None,
) -> list[LeakageFinding]:
    """Return the suspected leaks: columns scoring at least ``threshold``; validation far above CV.

    Parameters
    ----------
    scores
        :func:`single_feature_scores`.
    threshold
        A column at or above this score alone is a suspected leak (``evaluate.leakage_threshold``).
    cv
        (metric, validation value, CV mean, CV std, higher is better) of the chosen model, in
        the metric's own values (a loss: lower is better); None skips that check.
    top_column
        The chosen model's most important column on validation, named as the suspect when the
        validation score is far above CV.
    validation_rows
        The rows the scores were measured on: below :data:`MIN_VALIDATION_ROWS` a column at or
        above ``threshold`` is shown but not judged (``blocks`` False); None: judged.

    Returns
    -------
    list of LeakageFinding
        Empty when nothing looks leaked.
    """
    judged = validation_rows is None or validation_rows >= MIN_VALIDATION_ROWS
    found = [
        LeakageFinding(
            column=str(column),
            check="single_feature",
            metric=str(metric),
            score=float(value),
            message=(
                f"column {column!r} alone predicts the target: a one-column model scores "
                f"{metric} {value:.4f} on validation (>= {threshold:g}); a likely leak"
                if judged
                else f"column {column!r} alone scores {metric} {value:.4f} on validation "
                f"(>= {threshold:g}), but validation holds {validation_rows} rows, too few to "
                f"tell a leak from chance (at least {MIN_VALIDATION_ROWS}); not judged, check "
                "the column yourself"
            ),
            blocks=judged,
        )
        for column, value, metric in zip(
            scores.index, scores["score"], scores["metric"], strict=True
        )
        if np.isfinite(value) and value >= threshold
    ]
    if cv is not None and top_column is not None:
        metric, val, mean, std, higher = cv
        better = (val - mean) if higher else (mean - val)
        # scores (0-1) by 0.05; losses are in the target's unit: by a fifth of the CV loss
        margin = 0.05 if higher else 0.2 * abs(mean)
        if better > max(3 * std, margin):
            found.append(
                LeakageFinding(
                    column=top_column,
                    check="validation_above_cv",
                    metric=metric,
                    score=float(val),
                    message=(
                        f"validation {metric} {val:.4f} is far better than cross-validation "
                        f"{mean:.4f} ± {std:.4f}: something differs between train and "
                        f"validation; the model leans most on column {top_column!r}"
                    ),
                )
            )
    return found


def blocking(
    findings: Sequence[LeakageFinding], acknowledged: Sequence[str], block: bool
) -> list[tuple[str, str]]:
    """Return (column, message) of the findings that keep a model from becoming champion.

    None when ``block`` (``evaluate.block_on_leakage``) is off; otherwise every judged finding
    whose column the user has not listed in ``acknowledged`` (``evaluate.leakage_acknowledged``).
    """
    if not block:
        return []
    return [
        (f.column, f.message) for f in findings if f.blocks and f.column not in set(acknowledged)
    ]


def findings_table(findings: Sequence[LeakageFinding], acknowledged: Sequence[str]) -> pd.DataFrame:
    """Return the findings as a table for the report, with whether each column is acknowledged."""
    rows = [
        {
            "column": f.column,
            "check": f.check,
            "metric": f.metric,
            "score": round(f.score, 4),
            "acknowledged": f.column in set(acknowledged),
            "finding": f.message,
        }
        for f in findings
    ]
    columns = ["column", "check", "metric", "score", "acknowledged", "finding"]
    return pd.DataFrame(rows, columns=columns)
