"""Plotly set-up for notebooks: interactive in JupyterLab, self-contained in HTML reports."""

from __future__ import annotations

import sys
import warnings
from typing import Any

import pandas as pd
import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer, PlotlyRenderer

from lib.core.logs import configure_logging, kernel_log_file, warnings_to_file

RENDERER = "quire"
TEMPLATE = "plotly_white"


class QuireRenderer(MimetypeRenderer):  # type: ignore[misc]
    """Emit both plotly's mimetype (JupyterLab, Voila) and an HTML div without plotly.js.

    The HTML report embeds plotly.js once in its head, so each figure's div stays small and
    the report works offline.
    """

    def to_mimebundle(self, fig_dict: dict[str, Any]) -> dict[str, Any]:
        """Return the display bundle of one figure."""
        bundle: dict[str, Any] = PlotlyRenderer().to_mimebundle(fig_dict)
        bundle["text/html"] = pio.to_html(
            fig_dict,
            include_plotlyjs=False,
            full_html=False,
            validate=False,
            config={"displaylogo": False, "responsive": True},
        )
        return bundle


def setup_notebook() -> None:
    """Make the Quire renderer and a clean template the defaults; widen pandas tables.

    Also sends lib's structured log events to the cell output as plain text, and third
    parties' log events and Python warnings (deprecations, dtype notes and the like) to
    run_all's log file only (``QUIRE_LOG_FILE``), never to the cell output: they would land in
    the HTML report.
    """
    configure_logging("INFO", kernel_log_file(), stream=sys.stdout, own_only=True)
    warnings_to_file(kernel_log_file())
    # Libraries that report progress with tqdm.auto warn once per kernel without ipywidgets.
    warnings.filterwarnings("ignore", message="IProgress not found")
    pio.renderers[RENDERER] = QuireRenderer()
    pio.renderers.default = RENDERER
    pio.templates.default = TEMPLATE
    pd.set_option("display.max_columns", 60)
    pd.set_option("display.width", 200)
