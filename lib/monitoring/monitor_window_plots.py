"""Figures and tables of the per-window results (issue #18), for the 04_monitor notebook.

Each takes a saved per-window table (``period`` reference/current, see
:mod:`lib.monitoring.monitor_results`), never raw data. The x axis lists the reference's windows
(``ref ...``) then the current ones (``cur ...``); the shaded band is the reference windows'
band, and a red marker is a current window that left it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lib.core.contracts.predlog import is_log_column

REFERENCE_COLOR = "#4c78a8"
CURRENT_COLOR = "#f58518"
ALERT_COLOR = "#d62728"
BAND_COLOR = "rgba(76, 120, 168, 0.15)"
_LAYOUT: dict[str, Any] = {
    "height": 360,
    "margin": {"t": 50, "b": 60, "l": 60, "r": 20},
    "legend": {"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right"},
}


def _x(table: pd.DataFrame) -> list[str]:
    """Return each row's axis label: its side and window key (the two sides share keys)."""
    side = table["period"].map({"reference": "ref", "current": "cur"}).fillna("")
    return (side + " " + table["window"].astype(str)).tolist()


def _band(fig: go.Figure, x: list[str], lower: pd.Series, upper: pd.Series, name: str) -> None:
    """Shade the band between ``lower`` and ``upper`` (a missing bound: the axis' edge)."""
    lo = lower.astype(float).to_numpy()
    hi = upper.astype(float).to_numpy()
    if np.isnan(lo).all() and np.isnan(hi).all():
        return
    fig.add_scatter(
        x=x,
        y=hi,
        mode="lines",
        line={"width": 0, "dash": "dot"},
        showlegend=False,
        hoverinfo="skip",
    )
    fill = "tonexty" if not np.isnan(lo).all() else "none"
    fig.add_scatter(
        x=x,
        y=lo,
        mode="lines",
        line={"width": 0},
        fill=fill,
        fillcolor=BAND_COLOR,
        name=name,
        hoverinfo="skip",
    )
    for bound in (lo, hi):
        if not np.isnan(bound).all():
            fig.add_scatter(
                x=x,
                y=bound,
                mode="lines",
                showlegend=False,
                hoverinfo="skip",
                line={"color": REFERENCE_COLOR, "width": 1, "dash": "dot"},
            )


def _alerts(fig: go.Figure, x: list[str], y: pd.Series, alert: pd.Series, name: str) -> None:
    hit = alert.astype(bool).to_numpy()
    if hit.any():
        fig.add_scatter(
            x=np.asarray(x)[hit],
            y=y.to_numpy()[hit],
            mode="markers",
            name=name,
            marker={"color": ALERT_COLOR, "size": 11, "symbol": "x"},
        )


def drift_heatmap(window_drift: pd.DataFrame) -> go.Figure:
    """Plot each feature's drift statistic relative to its bound, per current window.

    A cell above 1 is outside the band (distances: statistic / upper; p-values: log p /
    log threshold); alerting cells are marked.
    """
    from lib.monitoring.diagnosis import drift_ratio

    cur = window_drift[window_drift["period"] == "current"].copy()
    cur = cur[~cur["column"].map(is_log_column)]
    cur["ratio"] = cur.apply(drift_ratio, axis=1)
    order = list(dict.fromkeys(cur["window"].astype(str)))
    grid = cur.pivot_table(index="column", columns="window", values="ratio", sort=False)
    grid = grid.reindex(columns=order)
    grid = grid.loc[grid.max(axis=1).sort_values().index]  # most moved on top
    flags = cur.pivot_table(
        index="column", columns="window", values="alert", aggfunc="max", sort=False
    ).reindex(index=grid.index, columns=order)
    text = np.where(flags.fillna(False).astype(bool).to_numpy(), "alert", "")
    fig = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(),
            x=order,
            y=grid.index.tolist(),
            text=text,
            texttemplate="%{text}",
            colorscale="OrRd",
            zmin=0,
            zmax=3,
            colorbar={"title": "x bound"},
            hovertemplate="%{y} in %{x}: %{z:.2f}x its bound<extra></extra>",
        )
    )
    fig.update_layout(title="Drift per window: statistic relative to its band's bound", **_LAYOUT)
    fig.update_layout(height=max(300, 28 * len(grid) + 120))
    return fig


def drift_lines(window_drift: pd.DataFrame, column: str) -> go.Figure:
    """Plot one column's drift statistic over the reference and current windows, with its band."""
    rows = window_drift[window_drift["column"] == column]
    x = _x(rows)
    fig = go.Figure()
    _band(fig, x, rows["lower"], rows["upper"], "reference band")
    for period, color in (("reference", REFERENCE_COLOR), ("current", CURRENT_COLOR)):
        part = rows["period"] == period
        fig.add_scatter(
            x=np.asarray(x)[part.to_numpy()],
            y=rows.loc[part, "statistic"],
            mode="lines+markers",
            name=period,
            line={"color": color},
        )
    _alerts(fig, x, rows["statistic"], rows["alert"] & (rows["period"] == "current"), "alert")
    method = rows["method"].iloc[0] if len(rows) else ""
    fig.update_layout(title=f"{column}: {method} per window", yaxis_title=method, **_LAYOUT)
    return fig


def performance_figure(window_performance: pd.DataFrame, metric: str) -> go.Figure:
    """Plot a metric's estimate (with its sampling band) and realized value per window."""
    rows = window_performance[window_performance["metric"] == metric]
    x = _x(rows)
    fig = go.Figure()
    _band(fig, x, rows["lower"], rows["upper"], "reference band")
    fig.add_scatter(
        x=x,
        y=rows["estimated"],
        mode="lines+markers",
        name="estimated",
        line={"color": REFERENCE_COLOR, "dash": "dash"},
        error_y={
            "type": "data",
            "symmetric": False,
            "array": rows["estimated_upper"] - rows["estimated"],
            "arrayminus": rows["estimated"] - rows["estimated_lower"],
        },
    )
    fig.add_scatter(
        x=x,
        y=rows["realized"],
        mode="lines+markers",
        name="realized",
        line={"color": CURRENT_COLOR},
    )
    current = rows["period"] == "current"
    _alerts(fig, x, rows["estimated"], rows["alert_estimated"] & current, "estimate alert")
    _alerts(fig, x, rows["realized"], rows["alert_realized"] & current, "realized alert")
    fig.update_layout(
        title=f"{metric} per window: estimated vs realized", yaxis_title=metric, **_LAYOUT
    )
    return fig


def multivariate_figure(multivariate: pd.DataFrame) -> go.Figure:
    """Plot the PCA reconstruction error per window with its reference band."""
    x = _x(multivariate)
    fig = go.Figure()
    _band(fig, x, multivariate["lower"], multivariate["upper"], "reference band")
    fig.add_scatter(
        x=x,
        y=multivariate["value"],
        mode="lines+markers",
        name="reconstruction error",
        line={"color": CURRENT_COLOR},
    )
    current = multivariate["period"] == "current"
    _alerts(fig, x, multivariate["value"], multivariate["alert"] & current, "alert")
    fig.update_layout(
        title="Multivariate drift: PCA reconstruction error per window",
        yaxis_title="mean reconstruction error",
        **_LAYOUT,
    )
    return fig


def quality_table(window_quality: pd.DataFrame) -> pd.DataFrame:
    """Return the current windows' data-quality alerts, one row per window and column."""
    cols = [
        "window",
        "column",
        "rows",
        "missing_rate",
        "out_of_range",
        "unseen",
        "type_errors",
        "reason",
    ]
    cur = window_quality[(window_quality["period"] == "current") & window_quality["alert"]]
    table = cur[cols].copy()
    table["missing_rate"] = (table["missing_rate"] * 100).round(1)
    return table.rename(columns={"missing_rate": "missing %"}).reset_index(drop=True)
