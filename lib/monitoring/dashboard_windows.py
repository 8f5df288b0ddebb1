"""The dashboard's windows section: performance, drift and data quality per window (issue #18).

Reads the per-window tables the monitor stage saves beside its other results in ``latest/``
(:func:`load_windows`) and shows them as widgets: estimated vs realized performance per window,
the drift heatmap of every column, a picked column's drift line, the multivariate drift line and
the data-quality problems, most severe first. A table an older run did not write is named in the
section instead of its chart. The figures are in :mod:`lib.monitoring.window_plots`; the alert
rule they mark is described there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from lib.core.errors import DataValidationError
from lib.monitoring import estimate, multivariate, window_drift, window_quality
from lib.monitoring.monitor_results import (
    MULTIVARIATE,
    WINDOW_DRIFT,
    WINDOW_PERFORMANCE,
    WINDOW_QUALITY,
)
from lib.monitoring.window_plots import (
    column_figure,
    drift_heatmap,
    multivariate_figure,
    performance_figure,
    quality_html,
    quality_report,
)

# each table's columns, as the module that computes it names them (one source for both sides)
SCHEMAS: dict[str, list[str]] = {
    WINDOW_DRIFT: list(window_drift.COLUMNS),
    MULTIVARIATE: list(multivariate.COLUMNS),
    WINDOW_QUALITY: list(window_quality.COLUMNS),
    WINDOW_PERFORMANCE: list(estimate.COLUMNS),
}
RERUN = "run the monitor stage again (python run_all.py --only monitor) to rewrite it"

Show = Callable[..., None]  # (Output widget, *figures): draw now or when the page asks
Note = Callable[[Any, str], None]  # (Output widget, text): a note in place of a chart
Later = Callable[[Any, str, int], None]  # (Output widget, HTML, height): sent with the charts


def read_window_table(path: Path) -> pd.DataFrame | None:
    """Read one per-window table, only the columns the dashboard draws; None if absent.

    Raises
    ------
    DataValidationError
        When the file lacks a column of its schema (naming the file, the columns and the fix).
    """
    if not path.exists():
        return None
    wanted = SCHEMAS[path.name]
    present = set(pq.read_schema(path).names)
    missing = [c for c in wanted if c not in present]
    if missing:
        raise DataValidationError(
            f"{path}: missing column(s) {', '.join(missing)} of the per-window schema; {RERUN}",
            path=path,
            check="schema",
        )
    return pd.read_parquet(path, columns=wanted)


def load_windows(latest: Path) -> dict[str, pd.DataFrame | None]:
    """Read the four per-window tables of ``latest/``, keyed by file name (None when absent)."""
    return {name: read_window_table(latest / name) for name in SCHEMAS}


def _missing(name: str) -> str:
    return (
        f"No {name} in this run's results (written by the monitor stage since per-window "
        "monitoring; an older run): run the monitor stage to see it."
    )


class WindowsSection:
    """The windows section's widgets, drawn through the dashboard's ``show`` and ``note``.

    Parameters
    ----------
    show
        Draws figures in an Output widget (or keeps them until the page asks for charts).
    note
        Puts a short note in an Output widget in place of its charts.
    later
        Puts HTML in an Output widget when the charts are sent (the heatmap: not in the first
        page, which shows the status first).
    """

    def __init__(self, show: Show, note: Note, later: Later) -> None:
        import ipywidgets as w

        self.show, self.note, self.later = show, note, later
        self.tables: dict[str, pd.DataFrame | None] = {}
        self.message = w.HTML()
        self.metric = w.Dropdown(description="metric")
        self.performance = w.Output()
        self.heatmap = w.Output()
        self.column = w.Dropdown(description="column")
        self.column_chart = w.Output()
        self.multivariate = w.Output()
        self.quality_sort = w.Dropdown(description="sort by")
        self.quality = w.HTML()
        self.report = pd.DataFrame()
        self.loading = False  # the pickers' options are being reset: load draws once after
        self.metric.observe(lambda _: self._redraw(self.draw_performance), names="value")
        self.column.observe(lambda _: self._redraw(self.draw_column), names="value")
        self.quality_sort.observe(lambda _: self._redraw(self.draw_quality), names="value")

    def _redraw(self, draw: Callable[[], None]) -> None:
        if not self.loading:
            draw()

    def outputs(self) -> tuple[Any, ...]:
        """Return the Output widgets that hold charts."""
        return (self.performance, self.heatmap, self.column_chart, self.multivariate)

    def load(self, latest: Path) -> None:
        """Read the tables in ``latest`` and redraw every part (a bad table: its message)."""
        try:
            self.tables = load_windows(latest)
        except DataValidationError as exc:  # a run written by another version: say so, no error
            self.tables = dict.fromkeys(SCHEMAS)
            self.message.value = f'<p class="quire-note quire-error">{exc}</p>'
        else:
            self.message.value = ""
        self.loading = True
        self._options(self.metric, WINDOW_PERFORMANCE, "metric")
        self._options(self.column, WINDOW_DRIFT, "column")
        self.draw_performance()
        drift = self.tables[WINDOW_DRIFT]
        if drift is None:
            self.note(self.heatmap, _missing("per-window drift table"))
        else:
            n_columns = drift["column"].nunique()
            self.later(self.heatmap, drift_heatmap(drift), 60 + 19 * n_columns)
        self.draw_column()
        multi = self.tables[MULTIVARIATE]
        if multi is None:
            self.note(self.multivariate, _missing("multivariate drift table"))
        else:
            self.show(self.multivariate, multivariate_figure(multi))
        quality = self.tables[WINDOW_QUALITY]
        self.report = quality_report(quality) if quality is not None else pd.DataFrame()
        sort = self.quality_sort.value
        self.quality_sort.options = list(self.report.columns)  # resets the value: set it after
        keep = sort if sort in self.report.columns else "severity"
        self.quality_sort.value = keep if keep in self.report.columns else None
        self.loading = False
        self.draw_quality()

    def _options(self, picker: Any, name: str, column: str) -> None:
        """Offer the table's values of ``column`` in ``picker``, keeping the pick if still there."""
        table = self.tables[name]
        values = table[column].drop_duplicates().tolist() if table is not None else []
        keep = picker.value if picker.value in values else None
        picker.options = values  # resets the value: set it after
        picker.value = keep or (values[0] if values else None)

    def draw_performance(self) -> None:
        """Redraw the picked metric's estimated vs realized chart."""
        table = self.tables.get(WINDOW_PERFORMANCE)
        if table is None:
            self.note(self.performance, _missing("per-window performance table"))
        elif self.metric.value is not None:
            self.show(self.performance, performance_figure(table, self.metric.value))

    def draw_column(self) -> None:
        """Redraw the picked column's drift line."""
        table = self.tables.get(WINDOW_DRIFT)
        if table is None:
            self.note(self.column_chart, _missing("per-window drift table"))
        elif self.column.value is not None:
            self.show(self.column_chart, column_figure(table, self.column.value))

    def draw_quality(self) -> None:
        """Re-render the data-quality table in the chosen order."""
        if self.tables.get(WINDOW_QUALITY) is None:
            self.quality.value = f'<p class="quire-note">{_missing("data-quality table")}</p>'
        elif self.report.empty:
            self.quality.value = '<p class="quire-note">No data-quality problem in any window.</p>'
        else:
            self.quality.value = quality_html(self.report, self.quality_sort.value or "severity")

    def widget(self) -> Any:
        """Return the section as one widget."""
        import ipywidgets as w

        def part(title: str, *children: Any) -> Any:
            return w.VBox([w.HTML(f"<h4>{title}</h4>"), *children])

        return w.VBox(
            [
                self.message,
                part("Performance per window", self.metric, self.performance),
                part("Drift per column and window", self.heatmap),
                part("Drift of one column", self.column, self.column_chart),
                part("Multivariate drift", self.multivariate),
                part("Data quality per window", self.quality_sort, self.quality),
            ]
        )
