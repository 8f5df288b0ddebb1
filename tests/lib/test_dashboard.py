"""The Voila drift dashboard, served for real and driven in headless Chromium (Debian's package)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lib.core.params import load_params
from lib.monitoring import monitor
from lib.monitoring.dashboard import RESULTS_ENV, Dashboard
from lib.monitoring.dashboard_page import PLOTLY_BASIC, chart_html, plotly_source
from lib.monitoring.monitor_plots import drift_share_figure
from tests.conftest import monitor_overrides
from tests.lib.voila import voila_dashboard

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def results(monitored_root: Path) -> Path:
    params = load_params(overrides=monitor_overrides(monitored_root))
    monitor.run_monitor(params, webhook_url="")  # two runs: drift over time has two points
    return monitor.run_monitor(params, webhook_url="").out_dir


def test_widgets_build_from_saved_results_and_react(results):
    view = Dashboard(results)
    features = view.table["column"].tolist()
    assert "DRIFT" in view.status.value or "ALERTS" in view.status.value
    assert "trained in MLflow run" in view.status.value  # the monitored version's lineage
    assert "#/experiments/" in view.status.value
    # what the windows say happened, and why (the generator's batch: a covariate shift)
    diagnosis = re.search(r'<span class="quire-diagnosis">(.*?)</span>', view.status.value)
    assert diagnosis is not None and "<b>covariate shift</b> in 5 window(s)" in diagnosis[1]
    assert "Features that moved most: " in diagnosis[1]
    assert "quire-sampled" not in view.status.value  # every row was read
    assert view.table_html.value.count("<tr") == len(features) + 1  # header + one per feature
    view.sort_by.value = "column"
    first = view.table_html.value.index(f"<td>{sorted(features)[0]}</td>")
    last = view.table_html.value.index(f"<td>{sorted(features)[-1]}</td>")
    assert first < last
    view.order.value = "descending"
    assert view.table_html.value.index(
        f"<td>{sorted(features)[-1]}</td>"
    ) < view.table_html.value.index(f"<td>{sorted(features)[0]}</td>")
    view.picker.value = features[-1]
    assert view.figure.layout.title.text.startswith(features[-1])
    assert f'<span class="quire-picked">{features[-1]}</span>' in view.picked.value
    # charts wait for the page to ask (after its status is drawn): a placeholder until then
    assert "quire-pending" in view.chart.outputs[0]["data"]["text/html"]
    assert "quire-charts-ready" in view.loader.outputs[0]["data"]["text/html"]
    view.charts_ready.click()  # the page asks: plotly.js (the basic bundle), then the charts
    assert "plotly.js (basic - minified)" in view.loader.outputs[0]["data"]["text/html"]
    assert _titles(view.chart) == [view.figure.layout.title.text]
    view.picker.value = features[0]  # once shown, a pick redraws the chart at once
    assert _titles(view.chart) == [view.figure.layout.title.text]
    assert view.figure.layout.title.text.startswith(features[0])
    assert len(_titles(view.predictions)) >= 1 and len(_titles(view.history)) == 1


def _titles(out) -> list[str]:
    """Return the titles of the figures an Output widget draws (JSON inside its scripts)."""
    html = "".join(o["data"]["text/html"] for o in out.outputs)
    figures = re.findall(r"var figure = (.*);\n", html)
    return [json.loads(f.replace("<\\/", "</"))["layout"]["title"]["text"] for f in figures]


def test_charts_need_only_the_vendored_basic_plotly_bundle(results):
    """The vendored bundle matches the installed plotly's plotly.js and has every trace type."""
    import plotly.offline

    package = json.loads((PLOTLY_BASIC.parent / "package.json").read_text())
    assert package["version"] == plotly.offline.get_plotlyjs_version(), "run make vendor-plotly"
    assert PLOTLY_BASIC.read_text()[:200].count(f"v{package['version']}") == 1
    view = Dashboard(results)
    figures = [view.figure, drift_share_figure(view.data["history"])]
    figures += [view._distribution(n) for n in view.data["outputs"]["column"]]
    kinds = {trace.type for figure in figures for trace in figure.data}
    assert kinds and kinds <= {"bar", "pie", "scatter"}  # the basic bundle's trace modules
    source = plotly_source()  # embedded as the text of a script element in the page
    assert "</script" not in source.lower() and "<!--" not in source
    assert "</" not in "".join(re.findall(r"var figure = (.*);", chart_html(view.figure)))


def test_dashboard_redraws_when_a_new_monitor_run_lands(monitored_root, results):
    view = Dashboard(results)
    assert view.refresh() is False  # nothing new
    before = view.run_id
    params = load_params(overrides=monitor_overrides(monitored_root, "monitor.window_rows=300"))
    monitor.run_monitor(params, webhook_url="")
    assert view.refresh() is True and view.run_id != before
    assert "300 current rows" in view.status.value


@pytest.fixture(scope="module")
def served(results: Path) -> Iterator[str]:
    with voila_dashboard(results) as base:
        yield base


def test_voila_serves_no_files_and_no_code(served):
    secrets = {"/voila/files/04_monitor.ipynb": "04 · Monitor", "/voila/files/dashboard.ipynb":
               "from lib.monitoring.dashboard", "/voila/files/../params/base.yaml": "Quire defaults",
               "/voila/files/%2e%2e/README.md": "Notebook-first", "/files/README.md":
               "Notebook-first", "/tree": "04_monitor", "/api/contents": "04_monitor"}  # fmt: skip
    for path, text in secrets.items():
        answer = httpx.get(served + path, timeout=10, follow_redirects=True)
        assert answer.status_code >= 400 or text not in answer.text, path
    page = httpx.get(served + "/", timeout=60).text
    assert "from lib.monitoring.dashboard import" not in page
    # the page loads the widget manager, not the plotly extension's 4.5 MB plotly.js
    assert "@jupyter-widgets/jupyterlab-manager" in page and "jupyterlab-plotly" not in page


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package")
def test_dashboard_in_headless_chromium(served, results, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    features = Dashboard(results).table["column"].tolist()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 2400})
        page.goto(served + "/", timeout=90_000)
        status = page.locator(".quire-state")
        status.wait_for(timeout=60_000)
        assert status.inner_text() in ("DRIFT", "ALERTS")
        rows = page.locator("table.quire-table tbody tr")
        assert rows.count() == len(features)
        chart = page.locator(".js-plotly-plot .gtitle").filter(has_text=features[0])
        chart.first.wait_for(timeout=30_000)
        picker = page.locator(".widget-dropdown select").nth(1)  # [sort by, feature]
        picker.select_option(label=features[-1])
        expect(page.locator(".quire-picked")).to_have_text(features[-1], timeout=15_000)
        page.locator(".js-plotly-plot .gtitle").filter(has_text=features[-1]).first.wait_for(
            timeout=30_000
        )
        page.locator(".widget-dropdown select").first.select_option(label="column")
        first_cell = page.locator("table.quire-table tbody tr td").first
        expect(first_cell).to_have_text(sorted(features)[0], timeout=15_000)
        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_results_folder_follows_the_params_layers(tmp_path, monkeypatch):
    """make dashboard ARGS="--params FILE -p ..." shows that project's champion's results."""
    from lib.monitoring.dashboard import main, results_dir

    monkeypatch.delenv(RESULTS_ENV, raising=False)
    preset = tmp_path / "preset.yaml"
    preset.write_text("project:\n  name: penguins\n")
    folder = results_dir(None, [str(preset)], [f"project.data_dir={tmp_path / 'd'}"])
    assert folder == tmp_path / "d" / "monitoring" / "quire-penguins"
    assert main(["-p", f"project.data_dir={tmp_path / 'd'}", "--params", str(preset)]) == 2
    assert main(["-p", "project.nam=x"]) == 2  # a bad parameter: named, no traceback


def test_the_status_says_what_a_bounded_run_sampled():
    from lib.monitoring.dashboard import _sampled_html

    assert _sampled_html(1_500, None) == _sampled_html(1_500, 1_500) == ""
    assert "on a uniform sample of 1,000)" in _sampled_html(1_500, 1_000)
