"""Tables and figures that describe a dataset: profile, distributions, class balance, splits."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lib.core.contracts.manifest import Manifest
from lib.core.param_sections import PreprocessingParams
from lib.data.infer import KEEP_HINT
from lib.data.preprocess import build_preprocessor
from lib.data.schema import ColumnSchema, Schema

_MAX_BARS = 15


def profile_table(sample: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Return one row per feature: kind, missing share, distinct values and a summary.

    Parameters
    ----------
    sample
        Conformed rows (a sample of the data).
    schema
        The schema, giving each feature's kind.

    Returns
    -------
    pandas.DataFrame
        Indexed by column name.
    """
    rows = []
    for col in schema.features:
        values = sample[col.name]
        row: dict[str, Any] = {
            "column": col.name,
            "kind": col.kind,
            "missing": f"{values.isna().mean():.1%}",
            "distinct": int(values.nunique()),
        }
        if col.kind in ("numeric", "boolean"):
            q = values.quantile([0.0, 0.5, 1.0])
            row["summary"] = f"min {q.iloc[0]:.4g} · median {q.iloc[1]:.4g} · max {q.iloc[2]:.4g}"
        elif col.kind == "datetime":
            row["summary"] = f"{values.min():%Y-%m-%d} → {values.max():%Y-%m-%d}"
        else:
            top = values.value_counts().head(3)
            row["summary"] = " · ".join(f"{k} ({v / len(values):.0%})" for k, v in top.items())
        rows.append(row)
    return pd.DataFrame(rows).set_index("column")


def columns_read_table(schema: Schema) -> pd.DataFrame:
    """Return how each column of the table was read: its role or kind, the rule, how to change it.

    Parameters
    ----------
    schema
        The inferred or saved schema (rules and excluded columns; older schemas show no rule).

    Returns
    -------
    pandas.DataFrame
        Indexed by column name: ``read as`` (a feature kind, ``target``, ``id`` or ``excluded``),
        ``rule`` and ``to change``; the target and id first, the excluded columns last.
    """
    rows = [
        {
            "column": schema.target,
            "read as": "target",
            "rule": f"data.target ({schema.task})",
            "to change": "set data.target (and data.task)",
        }
    ]
    if schema.id_column:
        rows.append(
            {
                "column": schema.id_column,
                "read as": "id",
                "rule": "data.id_column: kept in the splits, never a feature",
                "to change": "set data.id_column (null if there is none)",
            }
        )
    rows += [
        {
            "column": c.name,
            "read as": c.kind,
            "rule": c.rule or "(not recorded)",
            "to change": _hint(c, schema.date_column),
        }
        for c in schema.features
    ]
    rows += [
        {
            "column": name or "(no name)",
            "read as": "excluded",
            "rule": reason,
            "to change": _keep_hint(name),
        }
        for name, reason in schema.excluded.items()
    ]
    return pd.DataFrame(rows).set_index("column")


def _yaml_key(name: str) -> str:
    """Return the column name as a YAML key: quoted unless it is a plain word."""
    return name if re.fullmatch(r"[A-Za-z_][\w.-]*", name) else json.dumps(name)


def _hint(col: ColumnSchema, date_column: str | None) -> str:
    key = _yaml_key(col.name)
    if col.declared:
        return "edit data.columns"
    if col.kind == "datetime" and col.format is not None and col.format[:2] in ("%m", "%d"):
        swapped = col.format.replace("%m", "%_").replace("%d", "%m").replace("%_", "%d")
        return f"data.columns: {{{key}: {{kind: datetime, format: '{swapped}'}}}}"
    if col.name == date_column:
        return "set data.date_column (null if there is none)"
    other = "numeric" if col.kind == "categorical" else "categorical"
    return f"data.columns: {{{key}: {other}}}"


def _keep_hint(name: str) -> str:
    return f"{KEEP_HINT}, e.g. data.columns: {{{_yaml_key(name)}: categorical}}"


def distributions_figure(sample: pd.DataFrame, schema: Schema, columns: int = 4) -> go.Figure:
    """Return a grid with a histogram or bar chart per feature.

    Parameters
    ----------
    sample
        Conformed rows.
    schema
        Feature kinds.
    columns
        Charts per grid row.

    Returns
    -------
    plotly.graph_objects.Figure
        One subplot per feature.
    """
    names = schema.names()
    n_rows = math.ceil(len(names) / columns)
    fig = make_subplots(rows=n_rows, cols=columns, subplot_titles=names)
    for i, col in enumerate(schema.features):
        r, c = divmod(i, columns)
        values = sample[col.name].dropna()
        if col.kind in ("numeric", "datetime"):
            trace: go.BaseTraceType = _binned(values, col.name)
        else:
            counts = values.astype(str).value_counts().head(_MAX_BARS)
            trace = go.Bar(x=counts.index.tolist(), y=counts.to_numpy(), name=col.name)
        fig.add_trace(trace, row=r + 1, col=c + 1)
    fig.update_layout(height=230 * n_rows, showlegend=False, margin={"t": 40, "b": 20})
    return fig


def _binned(values: pd.Series, name: str, bins: int = 40) -> go.Bar:
    """Return a histogram as bars of pre-computed counts (the report carries counts, not rows)."""
    is_date = pd.api.types.is_datetime64_any_dtype(values)
    numbers = values.astype("int64").to_numpy() if is_date else values.to_numpy(dtype=float)
    if len(numbers) == 0:
        return go.Bar(x=[], y=[], name=name)
    counts, edges = np.histogram(numbers, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    x = pd.to_datetime(centres.astype("int64")) if is_date else centres
    return go.Bar(x=x, y=counts, width=np.diff(edges) if not is_date else None, name=name)


def class_balance_figure(manifest: Manifest) -> go.Figure:
    """Return a grouped bar chart of class counts per split (classification only)."""
    fig = go.Figure()
    for split, info in manifest.splits.items():
        counts = info.class_counts or {}
        fig.add_trace(go.Bar(name=split, x=list(counts), y=list(counts.values())))
    fig.update_layout(
        barmode="group",
        title=f"Class balance of {manifest.target!r} per split",
        xaxis_title="class",
        yaxis_title="rows",
        height=350,
    )
    return fig


def target_figure(sample: pd.DataFrame, schema: Schema) -> go.Figure:
    """Return a histogram of a numeric target (regression)."""
    fig = go.Figure(_binned(sample[schema.target].dropna(), schema.target, bins=50))
    fig.update_layout(title=f"Distribution of {schema.target!r}", height=350)
    return fig


def split_table(manifest: Manifest) -> pd.DataFrame:
    """Return rows, share and file hash of each split."""
    total = sum(s.rows for s in manifest.splits.values())
    return pd.DataFrame(
        [
            {
                "split": name,
                "rows": info.rows,
                "share": f"{info.rows / total:.1%}",
                "sha256": info.sha256[:16],
            }
            for name, info in manifest.splits.items()
        ]
    ).set_index("split")


def preprocessing_preview(
    sample: pd.DataFrame, schema: Schema, p: PreprocessingParams, rows: int = 5
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit the preprocessor on the sample and show a few rows before and after.

    Parameters
    ----------
    sample
        Conformed rows; the preprocessor is fitted on them (display only; training refits).
    schema
        Feature kinds.
    p
        Preprocessing choices.
    rows
        How many rows to show.

    Returns
    -------
    tuple of (pandas.DataFrame, pandas.DataFrame)
        The rows as stored, and the same rows as the model sees them.
    """
    pre = build_preprocessor(schema, p).set_output(transform="pandas")
    features = sample[schema.names()]
    pre.fit(features)
    head = features.head(rows)
    return head, pre.transform(head)


def target_overview(manifest: Manifest, sample: pd.DataFrame, schema: Schema) -> go.Figure:
    """Class balance per split for classification, the target's histogram for regression."""
    if schema.task == "regression":
        return target_figure(sample, schema)
    return class_balance_figure(manifest)
