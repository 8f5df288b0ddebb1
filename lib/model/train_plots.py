"""Training figures: plotly for the report, seaborn/matplotlib PNGs for MLflow's UI."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go

from lib.model.metrics import Metric
from lib.model.search import FamilyResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def cv_scores_figure(results: list[FamilyResult], primary: Metric) -> go.Figure:
    """Box plot of the best configuration's per-fold CV scores, one box per family."""
    fig = go.Figure()
    for r in results:
        fig.add_trace(go.Box(y=r.fold_scores, name=r.family, boxpoints="all", jitter=0.3))
    fig.update_layout(
        title=f"Cross-validated {primary.name} of each family's best configuration (per fold)",
        yaxis_title=primary.name,
        showlegend=False,
        height=380,
    )
    return fig


def learning_curve_figure(lc: pd.DataFrame, primary: Metric, family: str) -> go.Figure:
    """Train and CV score of the best model against training rows, with ±1 std bands."""
    fig = go.Figure()
    for part, colour in (("train", "#636efa"), ("cv", "#ef553b")):
        mean, std = lc[f"{part}_mean"], lc[f"{part}_std"]
        fig.add_trace(
            go.Scatter(
                x=lc["train_rows"], y=mean, name=part, mode="lines+markers",
                line={"color": colour},
                error_y={"type": "data", "array": std, "visible": True},
            )
        )  # fmt: skip
    fig.update_layout(
        title=f"Learning curve of the best model ({family})",
        xaxis_title="training rows",
        yaxis_title=primary.name,
        height=380,
    )
    return fig


def learning_curve_view(lc: pd.DataFrame | None, primary: Metric, family: str) -> go.Figure | str:
    """Return the learning-curve figure, or a sentence saying it was switched off."""
    if lc is None:
        return "Learning curve switched off (train.learning_curve: false)."
    return learning_curve_figure(lc, primary, family)


def importance_figure(
    importances: pd.Series, family: str, top: int = 15, split: str = "validation"
) -> go.Figure:
    """Horizontal bars of the largest permutation importances."""
    shown = importances.head(top).iloc[::-1]
    fig = go.Figure(go.Bar(x=shown.to_numpy(), y=shown.index.tolist(), orientation="h"))
    fig.update_layout(
        title=f"Permutation importance on {split} ({family})",
        xaxis_title="drop in score when the column is shuffled",
        height=max(300, 24 * len(shown) + 120),
    )
    return fig


def _axes(width: float, height: float) -> tuple[Figure, Axes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    return fig, ax


def importance_png(importances: pd.Series, family: str, top: int = 15) -> Figure:
    """Seaborn bar chart of permutation importances, for MLflow."""
    import seaborn as sns

    shown = importances.head(top)
    fig, ax = _axes(7, max(3.0, 0.35 * len(shown) + 1))
    sns.barplot(x=shown.to_numpy(), y=shown.index.tolist(), ax=ax, color="#4c72b0")
    ax.set_title(f"Permutation importance ({family})")
    ax.set_xlabel("drop in score when shuffled")
    fig.tight_layout()
    return fig


def cv_scores_png(results: list[FamilyResult], primary: Metric) -> Figure:
    """Seaborn box plot of per-fold CV scores by family, for MLflow."""
    import seaborn as sns

    rows = [{"family": r.family, primary.name: s} for r in results for s in r.fold_scores]
    fig, ax = _axes(7, 4)
    sns.boxplot(data=pd.DataFrame(rows), x="family", y=primary.name, ax=ax)
    ax.set_title(f"Cross-validated {primary.name} per fold")
    fig.tight_layout()
    return fig


def learning_curve_png(lc: pd.DataFrame, primary: Metric, family: str) -> Figure:
    """Matplotlib learning curve, for MLflow."""
    fig, ax = _axes(7, 4)
    for part in ("train", "cv"):
        ax.errorbar(
            lc["train_rows"], lc[f"{part}_mean"], yerr=lc[f"{part}_std"], label=part, marker="o"
        )
    ax.set_xlabel("training rows")
    ax.set_ylabel(primary.name)
    ax.set_title(f"Learning curve ({family})")
    ax.legend()
    fig.tight_layout()
    return fig
