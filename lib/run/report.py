"""Standalone HTML reports of executed notebooks, and ``reports/index.html``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from lib.core.atomic import write_text
from lib.core.contracts.status import Status
from lib.core.layout import INDEX
from lib.core.paths import TEMPLATES_DIR
from lib.run.stages import STAGES

PLOTLY_MIME = "application/vnd.plotly.v1+json"


def _has_plotly(nb: Any) -> bool:
    return any(
        PLOTLY_MIME in output.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def render_html(notebook: Path, html: Path, *, banner: dict[str, Any], hide_code: bool) -> None:
    """Render an executed notebook to a standalone HTML file, atomically.

    plotly.js is embedded once in the page head when the notebook has plotly figures, so charts
    work offline; nothing is loaded from a CDN.

    Parameters
    ----------
    notebook
        The executed ``.ipynb``.
    html
        The report to write.
    banner
        Stage, status, duration, params digest, finish time and error line for the banner.
    hide_code
        Leave out code cells and prompts (stakeholder reports).
    """
    import nbformat  # nbconvert and nbformat take seconds to import: only when rendering
    from nbconvert import HTMLExporter
    from plotly.offline import get_plotlyjs

    nb = nbformat.read(notebook, as_version=4)
    exporter = HTMLExporter(
        template_name="quire",
        extra_template_basedirs=[str(TEMPLATES_DIR)],
        exclude_input=hide_code,
        exclude_input_prompt=hide_code,
        exclude_output_prompt=hide_code,
    )
    resources = {
        "quire": banner,
        "plotly_js": get_plotlyjs() if _has_plotly(nb) else "",
        "metadata": {"name": banner.get("stage", notebook.stem)},
    }
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    write_text(html, body)


def write_index(reports_dir: Path, status: Status) -> None:
    """Render ``index.html``: every stage's state and report, then the recent runs."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True, keep_trailing_newline=True
    )
    rows = []
    for stage in STAGES:
        saved = status.stages.get(stage.name)
        recorded = saved.model_dump(mode="json", exclude_unset=True) if saved else {}
        rows.append(
            {"stage": stage.name, "notebook": stage.notebook, "status": "pending", **recorded}
        )
    dumped = status.model_dump(mode="json", exclude_unset=True)
    html = env.get_template("index.html.j2").render(
        run=dumped.get("run", {}), stages=rows, history=dumped.get("history", [])
    )
    write_text(reports_dir / INDEX, html)
