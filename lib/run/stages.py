"""The pipeline's stages, in order: notebook, lib module and the params sections each receives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lib.core.errors import ParamsError
from lib.core.layout import EVIDENTLY_REPORT


@dataclass(frozen=True)
class Stage:
    """One notebook of the pipeline: what it receives, reads and writes.

    ``reads`` and ``outputs`` are path templates over ``{data}`` and ``{reports}`` (the project's
    folders), ``{dataset}`` (``project.name``) and ``{model}`` (the registered model's name).
    ``outputs`` are the artefacts run_all stages and promotes as one set (``lib.run.staging``); the
    stage's report (``{reports}/<stem>.html`` and ``.ipynb``) always belongs to the set.
    ``aliases`` are the registry aliases it may move, promoted with the files.
    """

    name: str
    notebook: str
    sections: tuple[str, ...]
    reads: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    @property
    def stem(self) -> str:
        """Notebook file name without ``.ipynb`` (the report's name)."""
        return self.notebook.removesuffix(".ipynb")

    @property
    def reports(self) -> tuple[str, ...]:
        """The stage's report files, good and failed (a good run removes the failed ones)."""
        return tuple(
            f"{{reports}}/{self.stem}{suffix}"
            for suffix in (".html", ".ipynb", ".failed.html", ".failed.ipynb")
        )


STAGES: tuple[Stage, ...] = (
    Stage(
        "ingest",
        "01_ingest.ipynb",
        ("project", "data", "generator", "ingest"),
        reads=("data.source files, or {data}/raw/ from the generator",),
        outputs=("{data}/processed/{dataset}",),
    ),
    Stage(
        "train",
        "02_train.ipynb",
        ("project", "train", "mlflow"),
        reads=("{data}/processed/{dataset}",),
        outputs=(),  # MLflow runs and a new model version; nothing points at them until promoted
        aliases=("challenger",),
    ),
    Stage(
        "evaluate",
        "03_evaluate.ipynb",
        ("project", "evaluate", "mlflow"),
        reads=("{data}/processed/{dataset}", "{model}@challenger", "{model}@champion"),
        outputs=("{data}/reference/{model}",),
        aliases=("champion",),
    ),
    Stage(
        "monitor",
        "04_monitor.ipynb",
        ("project", "data", "monitor", "mlflow"),
        reads=(
            "{data}/reference/{model}",
            "{model}@champion",
            "monitor.current: {data}/predictions/{model} or files",
        ),
        outputs=("{data}/monitoring/{model}", f"{{reports}}/{EVIDENTLY_REPORT}"),
    ),
)


def output_paths(
    stage: Stage, data_dir: Path, reports_dir: Path, dataset: str, model: str
) -> list[Path]:
    """Return the stage's outputs (its report files included) as absolute paths."""
    names = {"data": str(data_dir), "reports": str(reports_dir), "dataset": dataset, "model": model}
    return [Path(t.format(**names)) for t in (*stage.outputs, *stage.reports)]


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
