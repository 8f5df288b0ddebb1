"""The pipeline's stages, in order: notebook, lib module and the params sections each receives."""

from __future__ import annotations

from dataclasses import dataclass

from lib.errors import ParamsError


@dataclass(frozen=True)
class Stage:
    """One notebook of the pipeline."""

    name: str
    notebook: str
    sections: tuple[str, ...]

    @property
    def stem(self) -> str:
        """Notebook file name without ``.ipynb`` (the report's name)."""
        return self.notebook.removesuffix(".ipynb")


STAGES: tuple[Stage, ...] = (
    Stage("ingest", "01_ingest.ipynb", ("project", "data", "generator", "ingest")),
    Stage("train", "02_train.ipynb", ("project", "train", "mlflow")),
    Stage("evaluate", "03_evaluate.ipynb", ("project", "evaluate", "mlflow")),
    Stage("monitor", "04_monitor.ipynb", ("project", "data", "monitor", "mlflow")),
)


def get_stage(name: str) -> Stage:
    """Return the stage called ``name`` (``ingest`` or ``01_ingest``)."""
    for stage in STAGES:
        if name in (stage.name, stage.stem, stage.notebook):
            return stage
    known = ", ".join(s.name for s in STAGES)
    raise ParamsError(f"unknown stage {name!r}; the stages are: {known}", key="stage")


def select_stages(only: list[str] | None = None, start: str | None = None) -> list[Stage]:
    """Return the stages to run: ``only`` those named, or all ``from`` one on, or all.

    Parameters
    ----------
    only
        Stage names to run (kept in pipeline order).
    start
        Run this stage and every later one.

    Returns
    -------
    list of Stage
        In pipeline order.
    """
    if only and start:
        raise ParamsError("use --only or --from, not both", key="stage")
    if only:
        wanted = {get_stage(n).name for n in only}
        return [s for s in STAGES if s.name in wanted]
    if start:
        first = STAGES.index(get_stage(start))
        return list(STAGES[first:])
    return list(STAGES)
