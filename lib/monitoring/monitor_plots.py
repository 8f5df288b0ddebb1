"""Figures and tables of monitoring results, shared by 04_monitor and the Voila dashboard.

Everything here takes saved results (plain dicts and frames), never raw data, so the dashboard
opens fast whatever the size of the monitored data.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lib.monitoring.optional import optional_figure

REFERENCE_COLOR = "#4c78a8"
CURRENT_COLOR = "#f58518"
TABLE_COLUMNS = [
    "column",
    "kind",
    "method",
    "score",
    "threshold",
    "drifted",
    "reference_missing",
    "current_missing",
    "current_rows",
]


@optional_figure  # a failing plot leaves a note in its place
def distribution_figure(name: str, dist: dict[str, Any], drifted: bool | None = None) -> go.Figure:
    """Plot reference vs current shares of one column: overlaid bars over bins or categories."""
    if dist["kind"] == "categorical":
        x = dist["labels"]
        width = None
    else:
        edges = np.asarray(dist["edges"], dtype=float)
        x = ((edges[:-1] + edges[1:]) / 2).tolist()
        width = float(edges[1] - edges[0])
    fig = go.Figure()
    for side, color in (("reference", REFERENCE_COLOR), ("current", CURRENT_COLOR)):
        fig.add_bar(x=x, y=dist[side], name=side, marker_color=color, opacity=0.65, width=width)
    state = "" if drifted is None else (" - drifted" if drifted else " - stable")
    fig.update_layout(
        title=f"{name}{state}",
        barmode="overlay",
        yaxis_title="share of rows",
        xaxis_title=name,
        height=340,
        margin={"t": 50, "b": 40, "l": 50, "r": 20},
        legend={"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right"},
    )
    return fig


def feature_table(features: pd.DataFrame) -> pd.DataFrame:
    """Return the per-column drift table, rounded, most drifted first."""
    if features.empty:
        return features
    table = features[[c for c in TABLE_COLUMNS if c in features.columns]].copy()
    for c in ("score", "threshold"):
        table[c] = table[c].round(4)
    for c in ("reference_missing", "current_missing"):
        table[c] = (table[c] * 100).round(1)
    return table.rename(
        columns={"reference_missing": "ref missing %", "current_missing": "cur missing %"}
    )


def html_table(table: pd.DataFrame, sort_by: str | None = None, ascending: bool = True) -> str:
    """Render the table as HTML (drifted rows highlighted), optionally sorted by a column."""
    if sort_by is not None and sort_by in table.columns:
        table = table.sort_values(sort_by, ascending=ascending, kind="stable")
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    for _, row in table.iterrows():
        style = ' class="drifted"' if bool(row.get("drifted", False)) else ""
        cells = "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row.tolist())
        rows.append(f"<tr{style}>{cells}</tr>")
    return (
        "<style>.quire-table{border-collapse:collapse;font-size:13px}"
        ".quire-table th,.quire-table td{padding:3px 8px;border-bottom:1px solid #ddd;"
        "text-align:left}.quire-table tr.drifted td{background:#fde2d3}</style>"
        f'<table class="quire-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@optional_figure  # a failing plot leaves a note in its place
def drift_share_figure(history: pd.DataFrame | None) -> go.Figure:
    """Plot the share of drifted columns per monitor run over time."""
    fig = go.Figure()
    if history is not None and not history.empty:
        runs = (
            history.groupby("run_id", sort=False)
            .agg(time=("time", "first"), share=("drifted_share", "first"))
            .sort_values("time")
        )
        fig.add_scatter(x=runs["time"], y=runs["share"], mode="lines+markers", name="drifted share")
    fig.update_layout(
        title="Share of drifted columns per monitor run",
        yaxis={"title": "share", "range": [0, 1.05], "tickformat": ".0%"},
        height=300,
        margin={"t": 50, "b": 40, "l": 50, "r": 20},
    )
    return fig


@optional_figure  # a failing plot leaves a note in its place
def windows_figure(
    windows: pd.DataFrame | None, reference: dict[str, Any] | None, metric: str
) -> go.Figure:
    """Plot one metric per window of current rows with its interval, against the reference."""
    fig = go.Figure()
    if windows is not None and not windows.empty:
        part = windows[windows["metric"] == metric]
        x = part["window"].tolist()
        fig.add_scatter(
            x=x,
            y=part["value"],
            mode="lines+markers",
            name=f"current {metric}",
            error_y={
                "type": "data",
                "symmetric": False,
                "array": (part["ci_high"] - part["value"]).tolist(),
                "arrayminus": (part["value"] - part["ci_low"]).tolist(),
            },
        )
        if reference and metric in reference:
            ref = reference[metric]
            fig.add_hline(y=ref["value"], line_dash="dash", annotation_text="reference")
            if np.isfinite(ref.get("ci_low", np.nan)):
                fig.add_hrect(
                    y0=ref["ci_low"],
                    y1=ref["ci_high"],
                    fillcolor="grey",
                    opacity=0.15,
                    line_width=0,
                )
    fig.update_layout(
        title=f"{metric} per window of current rows (reference dashed, with its interval)",
        xaxis_title="window (time order)",
        yaxis_title=metric,
        height=320,
        margin={"t": 50, "b": 40, "l": 50, "r": 20},
    )
    return fig


def alerts_table(
    alerts: pd.DataFrame | list[dict[str, Any]] | None, last: int = 20
) -> pd.DataFrame:
    """Return the most recent alerts, newest first."""
    frame = pd.DataFrame(alerts) if not isinstance(alerts, pd.DataFrame) else alerts
    if frame is None or frame.empty:
        return pd.DataFrame(columns=["time", "rule", "severity", "message"])
    cols = [c for c in ("time", "version", "rule", "severity", "message") if c in frame.columns]
    return frame[cols].iloc[::-1].head(last).reset_index(drop=True)
