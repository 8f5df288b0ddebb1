"""The dashboard page's side: the HTML and scripts that draw its charts in the browser.

The kernel sends each chart as an Output widget's HTML (:func:`chart_html`): a placeholder div and
a script that queues its figure; plotly.js (its basic bundle, vendored) is sent once, when the page
asks for charts (:func:`plotly_js`), and :data:`CHARTS_LOADER` is what asks.
"""

from __future__ import annotations

import functools
import uuid
from pathlib import Path
from typing import Any

# plotly.js's basic bundle (bar, pie and scatter traces: all the dashboard draws), vendored from
# npm's plotly.js-basic-dist-min at the plotly.js version of the installed plotly package
# (``make vendor-plotly``): 1.1 MB against the full bundle's 4.5 MB, which the plotly JupyterLab
# extension would load and the browser needs seconds to evaluate on a busy machine.
PLOTLY_BASIC = Path(__file__).parents[1] / "vendor" / "plotly-basic" / "plotly-basic.min.js"


def html_outputs(text: str) -> tuple[dict[str, Any], ...]:
    """Return Output-widget outputs showing one piece of HTML."""
    return ({"output_type": "display_data", "data": {"text/html": text}, "metadata": {}},)


# Runs in the page (an Output widget's outputs are trusted, so their scripts run). Queues one
# figure; once plotly.js is there, the queue draws one chart at a time, the topmost first (the
# status, then the charts a visitor sees first), each when the page is idle: a visitor's clicks
# and the kernel's answers to them come first. The kernel sends plotly.js only when the page asks
# for charts. A drawn chart's ``data-ready`` is when it was drawn and answering the mouse, in ms
# since navigation (what the browser test measures).
CHART_JS = """<div id="%(id)s" class="quire-chart" style="height:%(height)dpx"></div>
<script>
(function () {
  var div = document.getElementById("%(id)s");
  if (!div) { return; }
  var figure = %(figure)s;
  div.quireFigure = figure;
  var q = window.quireCharts = window.quireCharts || {queue: [], busy: false, tries: 0};
  q.queue.push(div);
  q.drain = q.drain || function () {
    if (q.busy) { return; }
    q.queue = q.queue.filter(function (d) { return d.isConnected; });
    if (!q.queue.length) { return; }
    q.busy = true;
    if (!window.Plotly) {
      if (q.tries++ < 1200) { setTimeout(function () { q.busy = false; q.drain(); }, 25); }
      else { q.queue.forEach(function (d) {
        d.textContent = "the chart library did not load: reload the page"; }); }
      return;
    }
    (window.requestIdleCallback || setTimeout)(function () {
      q.queue = q.queue.filter(function (d) { return d.isConnected; });
      q.queue.sort(function (a, b) {
        return a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1;
      });
      var next = q.queue.shift();
      if (!next) { q.busy = false; return; }
      var fig = next.quireFigure;
      delete next.quireFigure;
      window.Plotly.newPlot(next, fig.data, fig.layout, {responsive: true, displaylogo: false})
        .then(function () { next.dataset.ready = Math.round(performance.now()); })
        .finally(function () { q.busy = false; q.drain(); });
    }, {timeout: 300});
  };
  q.drain();
})();
</script>"""


def chart_html(figure: Any) -> str:
    """Return the HTML that draws one plotly figure in the page."""
    import plotly.io as pio

    return CHART_JS % {
        "id": f"quire-chart-{uuid.uuid4().hex}",
        "height": figure_height(figure),
        "figure": pio.to_json(figure, validate=False).replace("</", "<\\/"),
    }


def figure_height(figure: Any) -> int:
    """Return a figure's height in pixels (plotly's default when unset)."""
    return int(figure.layout.height or 360)


def pending_html(height: int) -> str:
    """Return a placeholder as tall as the charts it stands for (the page does not jump)."""
    return (
        f'<div class="quire-pending" style="height:{height}px;color:#777;padding:8px">'
        "loading chart</div>"
    )


def plotly_js() -> str:
    """Return HTML that loads the page's plotly.js (its basic bundle, vendored) when idle.

    The source travels as inert text; an async script made from it is compiled off the main
    thread, so the page stays responsive while it loads.
    """
    return (
        f'<script type="text/plain" class="quire-plotly-src">{plotly_source()}</script>'
        "<script>(window.requestIdleCallback || setTimeout)(function () {"
        'var source = document.querySelector(".quire-plotly-src");'
        'var script = document.createElement("script"); script.async = true;'
        'var blob = new Blob([source.textContent], {type: "text/javascript"});'
        "script.src = URL.createObjectURL(blob);"
        "document.head.appendChild(script); source.remove();"
        "}, {timeout: 1000});</script>"
    )


@functools.cache
def plotly_source() -> str:
    """Return the vendored plotly.js basic bundle's source (read once)."""
    return PLOTLY_BASIC.read_text(encoding="utf-8")


# Runs in the page: once the status banner is drawn and painted, it clicks the hidden button that
# asks the kernel for plotly.js and the charts, so that evaluating plotly.js (about 0.2 s on an
# idle machine, a second under load) never holds back the status, the table and the controls.
# Once the first chart is drawn (or after 5 s), it asks for the windows section's charts and
# heatmap, further down the page: their 200 kB do not hold back the first chart either.
CHARTS_LOADER = """<script>
(function () {
  var idle = window.requestIdleCallback || setTimeout;
  function windows(tries) {
    var button = document.querySelector(".quire-windows-ready");
    if (button && (document.querySelector(".quire-chart[data-ready]") || tries > 100)) {
      idle(function () { button.click(); }, {timeout: 1000});
    } else { setTimeout(function () { windows(tries + 1); }, 50); }
  }
  (function ask() {
    var button = document.querySelector(".quire-charts-ready");
    if (!button || !document.querySelector(".quire-status")) { setTimeout(ask, 50); return; }
    idle(function () { button.click(); windows(0); }, {timeout: 1000});
  })();
})();
</script>"""
