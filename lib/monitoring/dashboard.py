"""The Voila drift dashboard: widgets over saved monitoring results, and its launcher.

``python -m lib.monitoring.dashboard [--port 8866]`` (``make dashboard``) serves
``notebooks/dashboard.ipynb`` with Voila on 127.0.0.1: code cells hidden, no other files served,
idle kernels culled. The page reads only the saved results of the monitor stage
(``data/monitoring/<model>/``), never raw data.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lib.core.contracts.summary import MonitorSummary, read_summary
from lib.core.env import kernel_paths
from lib.core.errors import DataValidationError
from lib.core.layout import LATEST, SUMMARY, Layout
from lib.core.paths import NOTEBOOKS_DIR
from lib.monitoring.dashboard_page import (  # noqa: F401 (PLOTLY_BASIC, plotly_source: tests)
    CHARTS_LOADER,
    PLOTLY_BASIC,
    chart_html,
    figure_height,
    html_outputs,
    pending_html,
    plotly_js,
)
from lib.monitoring.dashboard_windows import WindowsSection
from lib.monitoring.monitor_plots import (
    alerts_table,
    distribution_figure,
    drift_share_figure,
    feature_table,
    html_table,
    windows_figure,
)
from lib.monitoring.monitor_results import load_latest

RESULTS_ENV = "QUIRE_DASHBOARD_RESULTS"
NOTEBOOK = NOTEBOOKS_DIR / "dashboard.ipynb"
CULL_IDLE_SECONDS = 300
# Voila leaves these JupyterLab extensions out of the page: charts come with their own plotly.js
# and no code is shown (nothing for pygments to colour).
UNUSED_EXTENSIONS = ("jupyterlab-plotly", "jupyterlab_pygments")


def results_dir(
    given: str | None = None, presets: Sequence[str] = (), overrides: Sequence[str] = ()
) -> Path:
    """Return the monitoring results folder: given, from the environment, or from params.

    Parameters
    ----------
    given
        A folder; wins over everything else.
    presets, overrides
        Parameter layers (``--params``, ``-p``) naming the project whose champion's results to
        show, as for ``run_all.py``.
    """
    if given:
        return Path(given)
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV])
    from lib.core.env import environment
    from lib.core.params import load_params

    params = load_params(presets, overrides, env=environment())
    return Layout.of(params).monitoring


def _status_html(summary: MonitorSummary) -> str:
    drift = summary.dataset_drift
    color = "#c0392b" if drift else ("#d68910" if summary.alerts else "#1e8449")
    label = "DRIFT" if drift else ("ALERTS" if summary.alerts else "OK")
    cur, ref = summary.current, summary.reference
    return (
        f'<div class="quire-status" style="border-left:8px solid {color};padding:6px 12px">'
        f'<span class="quire-state" style="font-size:22px;font-weight:bold;color:{color}">'
        f"{label}</span> &nbsp; {summary.verdict}<br>"
        f"model <b>{summary.model}</b> version {summary.version} · run "
        f"{summary.time[:19].replace('T', ' ')} UTC · {cur.rows:,} current rows "
        f"({cur.source}) vs {ref.rows:,} reference rows{_sampled_html(cur.rows, cur.sampled_rows)}"
        f"{_diagnosis_html(summary)}{_lineage_html(summary.lineage)}</div>"
    )


def _sampled_html(rows: int, sampled: int | None) -> str:
    """Say what was read from a sample (``monitor.backend`` stream or dask), if anything."""
    if sampled is None or sampled >= rows:
        return ""
    return (
        f' <span class="quire-sampled">(drift exact over every row; quality, performance and '
        f"multivariate drift on a uniform sample of {sampled:,})</span>"
    )


def _diagnosis_html(summary: MonitorSummary) -> str:
    """One line: what the run's windows say happened (covariate shift, concept drift), and why."""
    concept = summary.concept
    if concept.kind is None:  # a summary written before the per-window diagnosis
        return ""
    windows = concept.windows or []
    where = f" in {len(windows)} window(s): {', '.join(windows[:6])}" if windows else ""
    where += " ..." if len(windows) > 6 else ""
    return (
        f'<br><span class="quire-diagnosis">diagnosis: <b>{html.escape(concept.kind)}</b>'
        f"{html.escape(where)} - {html.escape(concept.reason)}</span>"
    )


def _lineage_html(lineage: dict[str, Any] | None) -> str:
    """One line: the monitored version's MLflow run, params, code and training data."""
    if not lineage:
        return ""
    run = html.escape(str(lineage.get("run_id") or ""))
    url = html.escape(str(lineage.get("mlflow_url") or ""))
    trained = f'<a href="{url}" target="_blank">{run[:12]}</a>' if url else run[:12]
    data = lineage.get("data_manifest") or {}
    rows = f"{data['rows']:,} rows of {html.escape(str(data.get('dataset')))}" if data else "?"
    return (
        f'<br><span class="quire-lineage">trained in MLflow run {trained} · params '
        f"<code>{html.escape(str(lineage.get('params_digest')))}</code> · git "
        f"<code>{html.escape(str(lineage.get('git_commit') or '')[:12])}</code> · on {rows} "
        f"(manifest <code>{html.escape(str(lineage.get('manifest_sha256') or '')[:12])}</code>)"
        "</span>"
    )


def _picked_html(table: pd.DataFrame, name: str) -> str:
    """Return the picked feature's verdict in one line (shown at once, before its chart)."""
    row = table.loc[table["column"] == name].iloc[0]
    verdict = "drifted" if row["drifted"] else "stable"
    return (
        f'<span class="quire-picked">{html.escape(name)}</span>: {html.escape(str(row["method"]))}'
        f" score {row['score']:.4g}, threshold {row['threshold']:.4g} - {verdict}"
    )


class Dashboard:
    """The dashboard's widgets over one results folder, redrawn when a new monitor run lands.

    Every part is a widget whose content is set directly (not captured from printed output), so
    a background watcher can redraw the page: Voila keeps a pre-started kernel that has already
    run the notebook, and its watcher keeps it current until someone opens the page. The charts
    are sent only when the page asks for them (``show_charts``, after its status is drawn; the
    windows section's, ``show_windows``, after the first chart is drawn): until then each chart's
    Output widget shows a placeholder and its figure waits in ``charts``.
    """

    def __init__(self, folder: Path) -> None:
        import ipywidgets as w

        self.folder = folder
        self.charts_live = False  # the page has asked for the charts
        self.windows_live = False  # ... and for the windows section's
        self.charts: dict[str, tuple[dict[str, Any], ...]] = {}  # chart outputs by widget id
        self.status = w.HTML()
        self.history = w.Output()
        self.sort_by = w.Dropdown(description="sort by")
        self.order = w.ToggleButtons(options=["ascending", "descending"], value="ascending")
        self.table_html = w.HTML()
        self.picker = w.Dropdown(description="feature")
        self.picked = w.HTML()
        self.chart = w.Output()
        self.predictions = w.Output()
        self.performance = w.Output()
        self.alerts = w.HTML()
        self.windows = WindowsSection(self._show, self._note, self._later)
        self.charts_ready = w.Button(layout=w.Layout(display="none"))
        self.charts_ready.add_class("quire-charts-ready")
        self.charts_ready.on_click(lambda _: self.show_charts())
        self.windows_ready = w.Button(layout=w.Layout(display="none"))
        self.windows_ready.add_class("quire-windows-ready")
        self.windows_ready.on_click(lambda _: self.show_windows())
        self.loader = w.Output(outputs=html_outputs(CHARTS_LOADER))
        self.figure: Any = None  # the picked feature's chart, as last drawn
        self.run_id: str | None = None
        self.load()
        self.sort_by.observe(lambda _: self.draw_table(), names="value")
        self.order.observe(lambda _: self.draw_table(), names="value")
        self.picker.observe(lambda _: self.draw_feature(), names="value")

    def load(self) -> None:
        """Read the latest saved results and redraw every part."""
        self.data = load_latest(self.folder)
        summary = self.data["summary"]
        self.run_id = summary.run_id
        self.table = feature_table(self.data["features"])
        self.status.value = _status_html(summary)
        self._show(self.history, drift_share_figure(self.data["history"]))
        sort_by = self.sort_by.value if self.sort_by.value in self.table.columns else "score"
        self.sort_by.options = list(self.table.columns)  # resets the value: set it after
        self.sort_by.value = sort_by if sort_by in self.table.columns else None
        columns = self.table["column"].tolist() if not self.table.empty else []
        keep = self.picker.value if self.picker.value in columns else None
        self.picker.options = columns
        self.picker.value = keep or (columns[0] if columns else None)
        outputs = self.data["outputs"]
        names = outputs["column"].tolist()[:2] if not outputs.empty else []
        self._show(self.predictions, *(self._distribution(n) for n in names))
        windows = self.data["windows"]
        if windows is None or windows.empty:
            self._note(self.performance, "No labels for the current rows: quality is not measured.")
        else:
            metric = str(windows["metric"].iloc[0])
            figure = windows_figure(windows, summary.reference_metrics, metric)
            self._show(self.performance, figure)
        table = alerts_table(self.data["alerts"])
        self.alerts.value = table.to_html(index=False, classes="quire-alerts", border=0)
        self.windows.load(self.folder / LATEST)
        self.draw_table()
        self.draw_feature()

    def _chart_outputs(self) -> tuple[Any, ...]:
        return (self.history, self.chart, self.predictions, self.performance)

    def _live(self, out: Any) -> bool:
        """Whether the page has asked for the charts of this Output widget's part."""
        if any(out is o for o in self.windows.outputs()):
            return self.windows_live
        return self.charts_live

    def _later(self, out: Any, text: str, height: int) -> None:
        """Show HTML in an Output widget, or keep it until the page asks for the charts."""
        self.charts[out.model_id] = html_outputs(text)
        out.outputs = (
            self.charts[out.model_id] if self._live(out) else html_outputs(pending_html(height))
        )

    def _note(self, out: Any, text: str) -> None:
        """Show a note in an Output widget in place of its charts (kept when the charts come)."""
        self.charts[out.model_id] = html_outputs(f'<p class="quire-note">{html.escape(text)}</p>')
        out.outputs = self.charts[out.model_id]

    def _show(self, out: Any, *figures: Any) -> None:
        """Show figures in an Output widget, or keep them until the page asks for the charts."""
        self.charts[out.model_id] = html_outputs("".join(chart_html(f) for f in figures))
        if self._live(out):
            out.outputs = self.charts[out.model_id]
        else:
            out.outputs = html_outputs(pending_html(sum(figure_height(f) for f in figures)))

    def show_charts(self) -> None:
        """Send plotly.js, then every chart, to the page (it asks once its status is drawn)."""
        if not self.charts_live:
            self.charts_live = True
            self.loader.outputs = html_outputs(plotly_js())
        for out in self._chart_outputs():
            if out.model_id in self.charts:
                out.outputs = self.charts[out.model_id]

    def show_windows(self) -> None:
        """Send the windows section's charts (the page asks once its first chart is drawn)."""
        self.show_charts()  # plotly.js first, should the page ask out of order
        self.windows_live = True
        for out in self.windows.outputs():
            if out.model_id in self.charts:
                out.outputs = self.charts[out.model_id]

    def _distribution(self, name: str) -> Any:
        dists = self.data["distributions"]
        verdicts = pd.concat([self.data["features"], self.data["outputs"]], ignore_index=True)
        drifted = bool(verdicts.loc[verdicts["column"] == name, "drifted"].any())
        return distribution_figure(name, dists[name], drifted)

    def draw_table(self) -> None:
        """Re-render the per-feature table in the chosen order."""
        ascending = self.order.value == "ascending"
        self.table_html.value = html_table(self.table, self.sort_by.value, ascending)

    def draw_feature(self) -> None:
        """Redraw the reference vs current chart of the picked feature."""
        if self.picker.value:
            self.figure = self._distribution(self.picker.value)
            self.picked.value = _picked_html(self.table, self.picker.value)
            self._show(self.chart, self.figure)

    def refresh(self) -> bool:
        """Reload if a newer monitor run has been saved; return whether it did."""
        try:
            summary = read_summary(self.folder / LATEST / SUMMARY)
        except (OSError, DataValidationError):  # mid-replacement or removed: try again next time
            return False
        if summary.run_id == self.run_id:
            return False
        self.load()
        return True

    def watch(self, seconds: float = 2.0) -> Any:
        """Check for a new monitor run every ``seconds`` in the kernel's event loop."""
        import asyncio

        async def loop() -> None:
            while True:
                await asyncio.sleep(seconds)
                self.refresh()

        return asyncio.ensure_future(loop())

    def widget(self) -> Any:
        """Return the whole page as one widget."""
        import ipywidgets as w

        def section(title: str, *children: Any) -> Any:
            return w.VBox([w.HTML(f"<h3>{title}</h3>"), *children])

        return w.VBox(
            [
                self.status,
                section("Drift over time", self.history),
                section("Per-feature drift", w.HBox([self.sort_by, self.order]), self.table_html),
                section("Reference vs current", self.picker, self.picked, self.chart),
                section("Prediction distribution", self.predictions),
                section("Performance over time", self.performance),
                section("Monitoring windows", self.windows.widget()),
                section("Recent alerts", self.alerts),
                self.charts_ready,
                self.windows_ready,
                self.loader,
            ]
        )


def voila_command(port: int, notebook: Path = NOTEBOOK) -> list[str]:
    """Return the Voila command line: loopback only, no code, no other files, kernels culled."""
    voila = Path(sys.executable).with_name("voila")
    return [
        str(voila),
        str(notebook),
        f"--port={port}",
        "--no-browser",
        "--Voila.ip=127.0.0.1",
        "--VoilaConfiguration.strip_sources=True",
        "--VoilaConfiguration.show_tracebacks=False",
        "--VoilaConfiguration.file_allowlist=[]",
        "--VoilaConfiguration.file_denylist=['.*']",
        f"--VoilaConfiguration.extension_denylist={list(UNUSED_EXTENSIONS)}",
        # a kernel that has already run the dashboard waits for the next visitor; its refill
        # starts after the page is drawn, not during
        "--VoilaConfiguration.preheat_kernel=True",
        "--VoilaConfiguration.default_pool_size=1",
        "--VoilaKernelManager.fill_delay=10",
        f"--MappingKernelManager.cull_idle_timeout={CULL_IDLE_SECONDS}",
        "--MappingKernelManager.cull_interval=60",
        "--MappingKernelManager.cull_connected=True",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the dashboard (``make dashboard``) until interrupted."""
    from lib.core import startup

    parser = argparse.ArgumentParser(prog="python -m lib.monitoring.dashboard", description=__doc__)
    parser.add_argument("--port", type=int, default=8866)
    parser.add_argument("--results", help="monitoring results folder (default: from params)")
    startup.add_arguments(parser, "project.data_dir=/srv/quire/data")
    args = parser.parse_args(argv)

    def serve() -> int:
        startup.start_logging()
        folder = results_dir(args.results, args.params, args.overrides)
        if not (folder / LATEST).exists():
            return startup.fail(
                f"{folder / LATEST}: no monitoring results yet; run the monitor stage first "
                "(quire run --only monitor)",
                startup.EXIT_USAGE,
            )
        env = {**os.environ, **kernel_paths(), RESULTS_ENV: str(folder)}
        print(f"Quire drift dashboard: http://127.0.0.1:{args.port}/ (results from {folder})")
        sys.stdout.flush()
        os.execve(voila_command(args.port)[0], voila_command(args.port), env)
        return startup.EXIT_OK  # not reached: execve replaces this process

    return startup.guarded(serve)


if __name__ == "__main__":
    sys.exit(main())
