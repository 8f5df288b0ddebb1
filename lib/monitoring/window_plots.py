"""Figures and tables of the per-window monitoring results (issue #18), for the dashboard.

They take the four long tables the monitor stage saves in ``latest/`` (``window_drift``,
``multivariate``, ``window_quality``, ``window_performance``; one row per window and column or
metric, with a ``period`` column: ``reference`` for the reference's own windows, ``current`` for
the analysed ones) and draw per-window aggregates only, so a page stays small whatever the size of
the monitored data.

Every chart puts the reference windows first, on a shaded background, then the current ones; it
draws the reference band (``lower``/``upper``) and a red cross on every window whose saved
``alert`` flag is set. The flags are the monitor's, never recomputed here. Its rule: a current
window's statistic alerts when it leaves the reference windows' band (mean +- ``monitor.sigmas``
standard deviations, clipped to the statistic's range; distances and error rates alert upwards
only), never on a bare point estimate; p-value methods alert below ``lower``, the cut that
judging the run's windows together (Benjamini-Hochberg) puts on the raw p-value.

Only scatter traces are drawn: the dashboard loads plotly.js's basic bundle, which has no
heatmap; the drift heatmap is an HTML table (:func:`drift_heatmap`). Windows sit at positions
0, 1, ... on the x axis (their labels as tick text, sent once) and the values go as rounded
numeric arrays: a page of 100 windows x 20 columns stays small.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lib.monitoring.monitor_plots import CURRENT_COLOR, REFERENCE_COLOR
from lib.monitoring.optional import optional_figure, optional_html

ALERT_COLOR = "#c0392b"
ESTIMATED_COLOR = "#7b4fa0"
REALIZED_COLOR = "#222222"
BAND_COLOR = "#888888"
# statistic / limit: 1 is the alert line; the colour scale jumps there and saturates at 2
RATIO_CAP = 2.0
QUALITY_COUNTS = ("out_of_range", "unseen", "type_errors")
QUALITY_LIMIT = 200  # rows of the quality table sent to the page
_MARGIN = {"t": 80, "b": 60, "l": 60, "r": 20}


def window_axis(table: pd.DataFrame) -> pd.DataFrame:
    """Return the table's windows in chart order: the reference's first, each side as saved.

    ``pos`` is the window's x position; its ``x`` label is the window's label, prefixed with
    ``ref`` on the reference side so the two sides' windows stay apart when both are cut by rows
    (``rows 1-500`` on each side).
    """
    keys = ["period", "window"]
    axis = table[[*keys, "start", "end", "rows"]].drop_duplicates(keys)
    axis = axis.assign(_ref=axis["period"] != "reference").sort_values("_ref", kind="stable")
    axis = axis.drop(columns="_ref").reset_index(drop=True)
    prefix = np.where(axis["period"] == "reference", "ref ", "")
    axis["pos"] = np.arange(len(axis))
    axis["x"] = prefix + axis["window"].astype(str)
    axis["hover"] = [_window_hover(r) for r in axis.itertuples()]
    return axis


def _window_hover(row: Any) -> str:
    span = ""
    if pd.notna(row.start) and pd.notna(row.end):
        start, end = pd.Timestamp(row.start), pd.Timestamp(row.end)
        span = f"<br>{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}"
    label = f"{row.period} window {row.window}"
    return f"{html.escape(label)}{span}<br>{int(row.rows):,} rows"


def _short(label: str) -> str:
    """Return a window label as a tick shows it: a period's start (``2026-01-05/2026-01-11``)."""
    return label.split("/")[0]


def _on_axis(part: pd.DataFrame, axis: pd.DataFrame) -> pd.DataFrame:
    """Return ``part`` (one row per window) with the axis' labels, in the axis' order."""
    return axis[["period", "window", "pos", "x", "hover"]].merge(part, on=["period", "window"])


def _round(values: pd.Series | np.ndarray) -> np.ndarray:
    """Return values to 4 significant digits (a short page payload; NaN stays NaN)."""
    v = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        digits = 3 - np.floor(np.log10(np.abs(v)))
    digits = np.where(np.isfinite(digits), digits, 0).astype(int)
    return np.array([round(x, d) for x, d in zip(v.tolist(), digits.tolist(), strict=True)])


def _layout(fig: go.Figure, axis: pd.DataFrame, title: str, y_title: str, height: int) -> None:
    """Shade the reference windows and label the x axis with (at most 16) window labels."""
    n_ref = int((axis["period"] == "reference").sum())
    step = max(1, int(np.ceil(len(axis) / 16)))
    if n_ref:
        fig.add_shape(
            type="rect",
            xref="x",
            yref="paper",
            x0=-0.5,
            x1=n_ref - 0.5,
            y0=0,
            y1=1,
            fillcolor=REFERENCE_COLOR,
            opacity=0.12,
            line_width=0,
            layer="below",
        )
        fig.add_annotation(
            x=(n_ref - 1) / 2, y=1, xref="x", yref="paper", yanchor="bottom",
            text="reference windows", showarrow=False, font={"color": REFERENCE_COLOR},
        )  # fmt: skip
    fig.update_layout(
        title=title,
        height=height,
        margin=_MARGIN,
        xaxis={
            "tickmode": "array",
            "tickvals": axis["pos"].tolist()[::step],
            "ticktext": [_short(x) for x in axis["x"].tolist()[::step]],
            "range": [-0.5, len(axis) - 0.5],
            "zeroline": False,
            "title": "window (reference shaded, then current)",
        },
        yaxis_title=y_title,
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        hovermode="closest",
    )


def _band(fig: go.Figure, rows: pd.DataFrame) -> None:
    """Draw the reference band: its upper and lower bounds, filled between when both exist."""
    upper, lower = rows["upper"].to_numpy(float), rows["lower"].to_numpy(float)
    style = {"color": BAND_COLOR, "dash": "dash", "width": 1}
    if np.isfinite(upper).any():
        fig.add_scatter(
            x=rows["pos"], y=_round(upper), mode="lines", line=style, name="band (upper)",
            hoverinfo="skip", legendgroup="band",
        )  # fmt: skip
    if np.isfinite(lower).any():
        both = np.isfinite(upper).any()
        fig.add_scatter(
            x=rows["pos"], y=_round(lower), mode="lines", line=style, name="band (lower)",
            hoverinfo="skip", legendgroup="band", fill="tonexty" if both else None,
            fillcolor="rgba(136,136,136,0.12)",
        )  # fmt: skip


def _estimate_band(fig: go.Figure, rows: pd.DataFrame) -> None:
    """Draw the bounds the estimate is judged against, where they are not the band's own.

    They are the reference band moved by how far the estimates sat from the realized values on
    the reference (:func:`lib.monitoring.estimate.window_performance`): drawn when that moved
    them by more than a hundredth of the band's own width or, one-sided, of its bound.
    """
    width = rows["upper"].to_numpy(float) - rows["lower"].to_numpy(float)
    for bound in ("lower", "upper"):
        if f"{bound}_estimated" not in rows:  # a table written before the estimate's band
            continue
        own, moved = rows[bound].to_numpy(float), rows[f"{bound}_estimated"].to_numpy(float)
        scale = np.where(np.isfinite(width), width, np.abs(own))
        if not (np.abs(moved - own) > 0.01 * scale).any():
            continue
        fig.add_scatter(
            x=rows["pos"], y=_round(moved), mode="lines", name=f"estimate's band ({bound})",
            line={"color": ESTIMATED_COLOR, "dash": "dash", "width": 1}, hoverinfo="skip",
            legendgroup="estimate band",
        )  # fmt: skip


def _series(fig: go.Figure, rows: pd.DataFrame, y: str, name: str, color: str, **kw: Any) -> None:
    """Draw one statistic per window, hovering the window's span and rows."""
    fig.add_scatter(
        x=rows["pos"],
        y=_round(rows[y]),
        mode="lines+markers",
        name=name,
        line={"color": color, **kw.pop("line", {})},
        marker={"size": 5, "color": color},
        customdata=rows["hover"],
        hovertemplate=f"%{{customdata}}<br>{html.escape(name)} %{{y}}<extra></extra>",
        **kw,
    )


def _alerts(fig: go.Figure, rows: pd.DataFrame, y: str, flag: str, name: str) -> None:
    """Mark every window whose ``flag`` is set with a red cross (none: no trace)."""
    hit = rows[rows[flag].fillna(False).astype(bool)]
    if not hit.empty:
        fig.add_scatter(
            x=hit["pos"], y=_round(hit[y]), mode="markers", name=name,
            marker={"symbol": "x", "size": 12, "color": ALERT_COLOR, "line": {"width": 1}},
            customdata=hit["hover"], hovertemplate="%{customdata}<br>ALERT %{y}<extra></extra>",
        )  # fmt: skip


def _error(rows: pd.DataFrame, y: str) -> dict[str, Any] | None:
    """Return asymmetric error bars from ``<y>_lower``/``<y>_upper`` (None if all missing)."""
    lo, hi = rows[f"{y}_lower"].to_numpy(float), rows[f"{y}_upper"].to_numpy(float)
    value = rows[y].to_numpy(float)
    if not (np.isfinite(lo).any() or np.isfinite(hi).any()):
        return None
    return {
        "type": "data",
        "symmetric": False,
        "array": _round(hi - value),
        "arrayminus": _round(value - lo),
        "thickness": 1,
        "width": 2,
    }


@optional_figure  # a failing plot leaves a note in its place
def performance_figure(table: pd.DataFrame, metric: str) -> go.Figure:
    """Plot one metric's estimated and realized values per window, the band and the alerts."""
    axis = window_axis(table)
    rows = _on_axis(table[table["metric"] == metric], axis)
    fig = go.Figure()
    _band(fig, rows)
    if rows["estimated"].notna().any():
        _estimate_band(fig, rows)
        _series(
            fig, rows, "estimated", f"estimated {metric}", ESTIMATED_COLOR,
            line={"dash": "dot"}, error_y=_error(rows, "estimated"),
        )  # fmt: skip
    if rows["realized"].notna().any():
        _series(
            fig, rows, "realized", f"realized {metric}", REALIZED_COLOR,
            error_y=_error(rows, "realized"), connectgaps=False,
        )  # fmt: skip
    _alerts(fig, rows, "estimated", "alert_estimated", "alert (estimated)")
    _alerts(fig, rows, "realized", "alert_realized", "alert (realized)")
    _layout(fig, axis, f"{metric} per window: estimated and realized", metric, 360)
    return fig


def drift_ratio(table: pd.DataFrame) -> pd.Series:
    """Return each row's ``statistic / limit``, 1 at the alert line, capped at ``RATIO_CAP``.

    The limit is the band's upper bound for a distance; a p-value (a ``lower`` bound only)
    alerts downwards, so its ratio is ``lower / statistic``. NaN when there is no limit.
    """
    stat = table["statistic"].to_numpy(float)
    upper, lower = table["upper"].to_numpy(float), table["lower"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        up = np.where(upper > 0, stat / upper, np.where(stat > 0, np.inf, 0.0))
        down = np.where(stat > 0, lower / stat, np.inf)
    ratio = np.where(np.isfinite(upper), up, np.where(np.isfinite(lower), down, np.nan))
    return pd.Series(np.minimum(ratio, RATIO_CAP), index=table.index, name="ratio")


@optional_html  # a failing table leaves a note in its place
def drift_heatmap(table: pd.DataFrame) -> str:
    """Render every column's ``statistic / limit`` per window as an HTML heatmap.

    A row per column (its method on hover), a cell per window (reference windows first, under a
    shaded header), coloured in steps of a quarter of the limit: blues below 1, reds from 1 (at
    or past the limit), the darkest at ``RATIO_CAP`` and beyond. An alerting cell holds a cross;
    every cell tells its window, statistic and ratio on hover. A table rather than a chart:
    plotly.js's basic bundle has no heatmap trace, and 2,000 bars take the browser seconds to
    draw on a busy machine where a table takes milliseconds.
    """
    axis = window_axis(table)
    columns = table["column"].drop_duplicates().tolist()
    rows = _on_axis(table.assign(ratio=drift_ratio(table)), axis)
    n_ref = int((axis["period"] == "reference").sum())
    rows["first_current"] = rows["pos"] == n_ref
    step = max(1, int(np.ceil(len(axis) / 12)))
    head = (
        [f'<th class="qh-period qh-ref" colspan="{n_ref}">reference windows</th>'] if n_ref else []
    )
    if len(axis) > n_ref:
        head.append(f'<th class="qh-period" colspan="{len(axis) - n_ref}">current windows</th>')
    ticks = "".join(
        f'<th class="qh-tick" colspan="{min(step, len(axis) - i)}">'
        f"{html.escape(_short(str(axis['window'].iloc[i])))}</th>"
        for i in range(0, len(axis), step)
    )
    body = []
    for name, part in rows.groupby("column", sort=False):
        method = html.escape(", ".join(str(m) for m in part["method"].dropna().unique()))
        cells = dict(zip(part["pos"].tolist(), map(_heat_cell, part.itertuples()), strict=True))
        line = "".join(cells.get(p, '<td class="hn"></td>') for p in range(len(axis)))
        body.append(f'<tr><th title="{method}">{html.escape(str(name))}</th>{line}</tr>')
    return (
        f'{_HEAT_CSS}<table class="quire-heat" data-windows="{len(axis)}" '
        f'data-reference="{n_ref}"><colgroup><col style="width:130px">'
        f'<col span="{len(axis)}"></colgroup><thead><tr><th></th>{"".join(head)}</tr>'
        f"<tr><th></th>{ticks}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        f'<p class="quire-note">{len(columns)} columns x {len(axis)} windows; colour: '
        "statistic / limit (band upper bound; a p-value's threshold / p); x: alert.</p>"
    )


def _heat_cell(row: Any) -> str:
    """Return one heatmap cell: its level, alert and first-current classes, a short hover.

    Classes: ``h<level>`` (a quarter of the limit per level), ``ha`` if it alerts, ``hc`` on the
    first current window; the hover is short, as a page holds thousands of cells.
    """
    ratio = float(row.ratio)
    level = "n" if not np.isfinite(ratio) else str(min(int(ratio * 4), 8))
    alert = bool(row.alert) if pd.notna(row.alert) else False
    title = html.escape(f"{_short(str(row.window))}: {row.statistic:.3g}, {ratio:.2f}x")
    cls = f"h{level}{' ha' if alert else ''}{' hc' if row.first_current else ''}"
    return f'<td class="{cls}" title="{title}">{"x" if alert else ""}</td>'


_HEAT_COLORS = ["#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#fdbb84", "#fc8d59", "#ef6548",
                "#d7301f", "#990000"]  # fmt: skip
_HEAT_CSS = (
    "<style>.quire-heat{border-collapse:collapse;table-layout:fixed;width:100%;font-size:11px}"
    ".quire-heat td{height:17px;padding:0;border:1px solid #fff;text-align:center;"
    "font-weight:bold;color:#000;overflow:hidden}"
    ".quire-heat tbody th{width:130px;text-align:right;padding-right:6px;font-weight:normal;"
    "white-space:nowrap;overflow:hidden}.quire-heat th.qh-tick{font-weight:normal;"
    "text-align:left;white-space:nowrap;overflow:hidden;color:#555;font-size:10px}"
    f".quire-heat th.qh-period{{background:{CURRENT_COLOR}22;font-weight:normal}}"
    f".quire-heat th.qh-ref{{background:{REFERENCE_COLOR}33}}"
    ".quire-heat td.hn{background:#eee}"
    + "".join(f".quire-heat td.h{i}{{background:{c}}}" for i, c in enumerate(_HEAT_COLORS))
    + ".quire-heat td.ha{outline:2px solid #000;outline-offset:-2px}"
    ".quire-heat td.hc{border-left:2px solid #555}</style>"
)


@optional_figure  # a failing plot leaves a note in its place
def column_figure(table: pd.DataFrame, column: str) -> go.Figure:
    """Plot one column's drift statistic per window with its band and alerts."""
    axis = window_axis(table)
    rows = _on_axis(table[table["column"] == column], axis)
    methods = rows["method"].dropna().unique().tolist()
    method = ", ".join(str(m) for m in methods) or "statistic"
    fig = go.Figure()
    _band(fig, rows)
    _series(fig, rows, "statistic", method, CURRENT_COLOR)
    _alerts(fig, rows, "statistic", "alert", "alert")
    _layout(fig, axis, f"{column}: {method} per window", method, 320)
    return fig


@optional_figure  # a failing plot leaves a note in its place
def multivariate_figure(table: pd.DataFrame) -> go.Figure:
    """Plot the multivariate drift value (PCA reconstruction error) per window, band, alerts."""
    axis = window_axis(table)
    method = str(table["method"].iloc[0]) if len(table) else "multivariate"
    rows = _on_axis(table[table["method"] == method], axis)
    fig = go.Figure()
    _band(fig, rows)
    _series(fig, rows, "value", method.replace("_", " "), CURRENT_COLOR)
    _alerts(fig, rows, "value", "alert", "alert")
    _layout(fig, axis, f"Multivariate drift per window: {method.replace('_', ' ')}", "value", 320)
    return fig


def quality_report(table: pd.DataFrame) -> pd.DataFrame:
    """Return the quality rows with something to report, the most severe first.

    A row is kept when it alerts, gives a reason, or counts out-of-range, unseen or mistyped
    values (missing values alone are within the reference's habits unless they alert).
    Severity: alerting rows first, current windows before reference ones, then by the share of
    problem rows (missing + out of range + unseen + type errors, over the window's rows).
    """
    columns = ["severity", "period", "window", "column", "rows", "missing", "missing_rate"]
    columns += [*QUALITY_COUNTS, "alert", "reason"]
    if table.empty:  # no column checked (a table whose only feature is its date, say)
        return pd.DataFrame(columns=columns)
    counts = table[list(QUALITY_COUNTS)].fillna(0).astype(float)
    alert = table["alert"].fillna(False).astype(bool)
    keep = alert | (table["reason"].fillna("") != "") | (counts.sum(axis=1) > 0)
    part = table[keep]
    missing_rate = part["missing_rate"].astype(float)
    rows = part["rows"].astype(float).clip(lower=1)
    rate = counts[keep].sum(axis=1) / rows + missing_rate.fillna(0)
    severity = alert[keep].astype(int) * 10 + (part["period"] == "current").astype(int) * 5 + rate
    report = part.assign(severity=severity.round(4), missing_rate=missing_rate.round(4))
    return report.sort_values("severity", ascending=False, kind="stable")[columns].reset_index(
        drop=True
    )


@optional_html  # a failing table leaves a note in its place
def quality_section(table: pd.DataFrame) -> str:
    """Return the report's quality table (:func:`quality_report` as :func:`quality_html`)."""
    return quality_html(quality_report(table))


@optional_html  # a failing table leaves a note in its place
def quality_html(
    report: pd.DataFrame, sort_by: str = "severity", limit: int = QUALITY_LIMIT
) -> str:
    """Render the quality report as HTML, alerting rows highlighted, at most ``limit`` rows.

    Numbers sort largest first, text alphabetically.
    """
    if sort_by in report.columns and sort_by != "severity":
        numeric = pd.api.types.is_numeric_dtype(report[sort_by])
        report = report.sort_values(sort_by, ascending=not numeric, kind="stable")
    shown = report.head(limit)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = []
    for row in shown.itertuples(index=False):
        cls = ' class="alert"' if row.alert else ""
        cells = "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row)
        body.append(f"<tr{cls}>{cells}</tr>")
    more = len(report) - len(shown)
    note = f'<p class="quire-note">{more:,} more rows not shown.</p>' if more > 0 else ""
    return (
        "<style>.quire-quality{border-collapse:collapse;font-size:13px}"
        ".quire-quality th,.quire-quality td{padding:3px 8px;border-bottom:1px solid #ddd;"
        "text-align:left}.quire-quality tr.alert td{background:#fde2d3}</style>"
        f'<table class="quire-quality"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>{note}"
    )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
