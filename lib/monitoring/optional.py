"""Optional outputs of a stage: built last, and a failure there is a warning, never a failed stage.

The monitor stage's own results (``latest/``, the history, the alerts) are what it exists for;
Evidently's HTML report and the figures are extras. A third-party library failing on an edge case
of the data (Evidently raises ``KeyError`` on a classification current set where a class never
occurs) must not throw away a run whose results are already saved. :func:`optional` is the one
boundary where such an exception is caught: it is logged with its traceback and returned as a
warning that the caller shows with the results.
"""

from __future__ import annotations

import functools
import html
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, ParamSpec, TypeVar

import plotly.graph_objects as go

from lib.core.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What an optional step gave: its value, or the warning that replaced it.

    Attributes
    ----------
    value
        The step's return value; None when it failed (or when the step itself returned None,
        e.g. turned off).
    warning
        A sentence naming the step, the error and what to do; None when the step succeeded.
    """

    value: T | None = None
    warning: str | None = None

    @property
    def ok(self) -> bool:
        """True when the step raised nothing."""
        return self.warning is None


def failure_text(name: str, exc: BaseException) -> str:
    """Return the warning shown in place of an optional output that raised ``exc``."""
    detail = str(exc).splitlines()[0] if str(exc) else ""
    error = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return (
        f"{name} was not built ({error}); the other results are saved and unaffected; the "
        "log has the traceback (report it as a bug if the data looks valid)"
    )


def optional(name: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Outcome[T]:
    """Call ``fn(*args, **kwargs)``; an exception becomes a logged, returned warning.

    Parameters
    ----------
    name
        What the step builds, as a reader knows it (``"Evidently's report"``): the warning and
        the log event name it.
    fn, args, kwargs
        The step and its arguments.

    Returns
    -------
    Outcome
        ``Outcome(value)`` on success, ``Outcome(None, warning)`` when ``fn`` raised an
        ``Exception`` (``KeyboardInterrupt`` and ``SystemExit`` still stop the stage).
    """
    try:
        return Outcome(value=fn(*args, **kwargs))
    except Exception as exc:  # the boundary of an optional output: recorded, not raised
        warning = failure_text(name, exc)
        # the traceback as plain text: structlog's renderers print every frame's locals, which
        # for the data frames of a report took most of a minute
        trace = "".join(traceback.format_exception(exc))
        log.warning("optional_output_failed", output=name, error=repr(exc), traceback=trace)
        return Outcome(value=None, warning=warning)


def note_figure(title: str, note: str) -> go.Figure:
    """Return an empty figure that shows ``note`` where a figure could not be drawn."""
    fig = go.Figure()
    fig.add_annotation(
        text=note, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, align="center"
    )
    fig.update_layout(
        title=f"{title} - not drawn",
        xaxis={"visible": False},
        yaxis={"visible": False},
        height=200,
        margin={"t": 50, "b": 20, "l": 20, "r": 20},
    )
    return fig


def optional_figure(fn: Callable[P, go.Figure]) -> Callable[P, go.Figure]:
    """Decorate a figure function: when it raises, return a figure holding the warning instead.

    One failing plot then leaves a visible note in its place (and a log warning) while the
    other figures and tables of the report or dashboard are still shown.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> go.Figure:
        name = fn.__name__.removesuffix("_figure").replace("_", " ") + " figure"
        outcome = optional(name, fn, *args, **kwargs)
        if outcome.value is not None:
            return outcome.value
        return note_figure(name, _wrapped(outcome.warning or f"{name} was not built"))

    return wrapper


def optional_html(fn: Callable[P, str]) -> Callable[P, str]:
    """Decorate a function that returns HTML: when it raises, return the warning instead.

    The HTML counterpart of :func:`optional_figure`, for the tables of the report and the
    dashboard (the drift heatmap, the quality table).
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> str:
        name = fn.__name__.removesuffix("_html").replace("_", " ")
        outcome = optional(name, fn, *args, **kwargs)
        if outcome.value is not None:
            return outcome.value
        warning = outcome.warning or f"{name} was not built"
        return f'<p class="quire-warning"><b>Not shown:</b> {html.escape(warning)}</p>'

    return wrapper


def _wrapped(text: str, width: int = 90) -> str:
    """Break ``text`` into lines of about ``width`` characters (plotly does not wrap)."""
    import textwrap

    return "<br>".join(textwrap.wrap(text, width))
