"""Evaluation figures (plotly): confusion matrix, ROC/PR, calibration, thresholds, residuals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from lib.model.scoring import predict_labels

_MAX_POINTS = 3000


def confusion_figure(
    y: np.ndarray, proba: np.ndarray, classes: Sequence[Any], threshold: float | None
) -> go.Figure:
    """Confusion matrix as counts and normalised by the true class, side by side."""
    labels = [str(c) for c in classes]
    pred = predict_labels(proba, classes, threshold)
    counts = skm.confusion_matrix(y, pred, labels=list(classes))
    norm = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = make_subplots(rows=1, cols=2, subplot_titles=["counts", "share of each true class"])
    for col, (z, fmt) in enumerate(((counts, "d"), (norm, ".2f")), start=1):
        text = [[format(v, fmt) for v in row] for row in z]
        fig.add_trace(
            go.Heatmap(z=z, x=labels, y=labels, text=text, texttemplate="%{text}",
                       colorscale="Blues", showscale=False),
            row=1, col=col,
        )  # fmt: skip
        fig.update_xaxes(title_text="predicted", row=1, col=col)
        fig.update_yaxes(title_text="actual", autorange="reversed", row=1, col=col)
    fig.update_layout(title="Confusion matrix (test split)", height=420)
    return fig


def _one_vs_rest(
    y: np.ndarray, proba: np.ndarray, classes: Sequence[Any]
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, truth, score) per curve: the positive class for binary, each class otherwise."""
    truth = np.asarray(y, dtype=object)
    if len(classes) == 2:
        return [(str(classes[1]), truth == classes[1], proba[:, 1])]
    return [(str(c), truth == c, proba[:, i]) for i, c in enumerate(classes)]


def roc_pr_figure(y: np.ndarray, proba: np.ndarray, classes: Sequence[Any]) -> go.Figure:
    """ROC and precision-recall curves (one-vs-rest per class for multiclass)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["ROC", "precision-recall"])
    for name, truth, score in _one_vs_rest(y, proba, classes):
        if truth.all() or not truth.any():
            continue
        fpr, tpr, _ = skm.roc_curve(truth, score)
        auc = skm.roc_auc_score(truth, score)
        fig.add_trace(
            go.Scatter(x=fpr, y=tpr, name=f"{name} (AUC {auc:.3f})", mode="lines"), row=1, col=1
        )
        prec, rec, _ = skm.precision_recall_curve(truth, score)
        ap = skm.average_precision_score(truth, score)
        fig.add_trace(
            go.Scatter(x=rec, y=prec, name=f"{name} (AP {ap:.3f})", mode="lines"), row=1, col=2
        )
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            line={"dash": "dot", "color": "grey"},
            showlegend=False,
        ),
        row=1,
        col=1,
    )
    fig.update_xaxes(title_text="false positive rate", row=1, col=1)
    fig.update_yaxes(title_text="true positive rate", row=1, col=1)
    fig.update_xaxes(title_text="recall", row=1, col=2)
    fig.update_yaxes(title_text="precision", row=1, col=2)
    fig.update_layout(title="ROC and precision-recall curves (test split)", height=420)
    return fig


def calibration_figure(
    y: np.ndarray, proba: np.ndarray, classes: Sequence[Any], bins: int = 10
) -> go.Figure:
    """Mean predicted probability against the observed frequency, per class (quantile bins)."""
    fig = go.Figure()
    for name, truth, score in _one_vs_rest(y, proba, classes):
        if truth.all() or not truth.any():
            continue
        observed, predicted = calibration_curve(truth, score, n_bins=bins, strategy="quantile")
        fig.add_trace(go.Scatter(x=predicted, y=observed, mode="lines+markers", name=name))
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dot", "color": "grey"}
        )
    )
    fig.update_layout(
        title="Calibration (test split)", xaxis_title="mean predicted probability",
        yaxis_title="observed frequency", height=400,
    )  # fmt: skip
    return fig


def threshold_figure(table: pd.DataFrame, chosen: float) -> go.Figure:
    """Precision, recall, F1 and accuracy against the decision threshold, the chosen one marked."""
    fig = go.Figure()
    for name in ("precision", "recall", "f1", "accuracy"):
        fig.add_trace(go.Scatter(x=table["threshold"], y=table[name], name=name, mode="lines"))
    fig.add_vline(x=chosen, line_dash="dash", annotation_text=f"chosen {chosen:.2f}")
    fig.update_layout(
        title="Metrics against the decision threshold (test split)",
        xaxis_title="threshold",
        height=400,
    )
    return fig


def regression_figure(y: np.ndarray, pred: np.ndarray, seed: int) -> go.Figure:
    """Predicted against actual, and residuals against predicted (a sample of points)."""
    index = np.arange(len(y))
    if len(index) > _MAX_POINTS:
        index = np.random.default_rng(seed).choice(index, _MAX_POINTS, replace=False)
    yt, yp = np.asarray(y, dtype=float)[index], np.asarray(pred, dtype=float)[index]
    fig = make_subplots(rows=1, cols=2, subplot_titles=["predicted vs actual", "residuals"])
    fig.add_trace(
        go.Scattergl(x=yt, y=yp, mode="markers", marker={"size": 4, "opacity": 0.5}, name="rows"),
        row=1,
        col=1,
    )
    low, high = float(min(yt.min(), yp.min())), float(max(yt.max(), yp.max()))
    fig.add_trace(
        go.Scatter(
            x=[low, high],
            y=[low, high],
            mode="lines",
            line={"dash": "dot", "color": "grey"},
            name="y = x",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scattergl(
            x=yp, y=yt - yp, mode="markers", marker={"size": 4, "opacity": 0.5}, name="residual"
        ),
        row=1,
        col=2,
    )
    fig.add_hline(y=0, line_dash="dot", row=1, col=2)
    fig.update_xaxes(title_text="actual", row=1, col=1)
    fig.update_yaxes(title_text="predicted", row=1, col=1)
    fig.update_xaxes(title_text="predicted", row=1, col=2)
    fig.update_yaxes(title_text="actual - predicted", row=1, col=2)
    fig.update_layout(title="Regression diagnostics (test split)", height=420, showlegend=False)
    return fig
