"""The pipeline's stages, in order: each one's notebook, inputs, outputs and follow-ups.

A :class:`Stage` is everything run_all knows about a notebook: the params sections it receives,
what it reads, the outputs it writes (staged and promoted as one set), how to digest those
outputs and its outside inputs (:mod:`lib.run.digests`), and what to do after it succeeded.
Adding a stage or an artefact means changing its ``Stage`` here and its notebook.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lib.core.contracts.summary import read_summary
from lib.core.errors import ParamsError
from lib.core.layout import Layout
from lib.core.logs import get_logger
from lib.core.params import Params
from lib.run import digests

log = get_logger(__name__)

REPORT_SUFFIXES = (".html", ".ipynb", ".failed.html", ".failed.ipynb")


@dataclass(frozen=True)
class Followup:
    """What a stage's after-run hook asks of run_all.

    Parameters
    ----------
    alerts
        Alerts the stage fired (``--fail-on-alert`` turns them into exit code 3).
    rerun
        Stages to run next, in order (empty: none).
    force
        Which of ``rerun`` to run even if up to date.
    """

    alerts: tuple[str, ...] = ()
    rerun: tuple[str, ...] = ()
    force: tuple[str, ...] = ()


def _no_outputs(layout: Layout) -> tuple[Path, ...]:
    return ()


@dataclass(frozen=True)
class Stage:
    """One notebook of the pipeline: what it receives, reads and writes.

    Parameters
    ----------
    name
        Short name (``--only``, status.json).
    notebook
        The notebook's file name in the notebooks folder.
    sections
        The params sections papermill passes to it.
    reads
        What it reads, for people (``{model}`` is the registered model).
    outputs
        Its outputs given the project's published layout: run_all stages and promotes them, with
        its report files, as one set (``lib.run.staging``).
    aliases
        Registry aliases it may move, promoted with the files.
    digest
        The digest of its outputs as they are on disk (None: missing or damaged).
    outside
        The digest of what it reads that no earlier stage produces.
    after_run
        Called after it succeeded in a run: alerts and stages to run next.
    waits
        Why it has nothing to work on yet (None: it can run); run_all then skips it and says
        why, which is not a failure.
    """

    name: str
    notebook: str
    sections: tuple[str, ...]
    reads: tuple[str, ...] = ()
    outputs: Callable[[Layout], tuple[Path, ...]] = _no_outputs
    aliases: tuple[str, ...] = ()
    digest: Callable[[Params], str | None] | None = None
    outside: Callable[[Params], str] | None = None
    after_run: Callable[[Params], Followup] | None = None
    waits: Callable[[Params], str | None] | None = None

    @property
    def stem(self) -> str:
        """Notebook file name without ``.ipynb`` (the report's name)."""
        return self.notebook.removesuffix(".ipynb")

    def reports(self, layout: Layout) -> tuple[Path, ...]:
        """Return the stage's report files, good and failed (a good run removes the failed ones)."""
        return tuple(layout.report(self.stem, suffix) for suffix in REPORT_SUFFIXES)


def monitor_alerts(params: Params) -> tuple[str, ...]:
    """Return the messages of the alerts the latest monitor run fired."""
    summary = Layout.of(params, staged=False).monitoring_summary
    return tuple(f"{a.rule}: {a.message}" for a in read_summary(summary).alerts)


def after_monitor(params: Params) -> Followup:
    """Report the monitor's alerts, and retrain at once if asked to and labels came back.

    ``monitor.retrain_on_alert`` asks for it; the labelled served rows are what ingest adds.
    """
    from lib.data import feedback

    alerts = monitor_alerts(params)
    if not alerts or not params.monitor.retrain_on_alert:
        return Followup(alerts)
    folder = Layout.of(params, staged=False).feedback
    if not params.ingest.feedback or not feedback.label_files(folder):
        log.warning("retrain_skipped", reason=f"no labels in {folder} (or ingest.feedback off)")
        return Followup(alerts)
    log.warning("retrain_on_alert", alerts=list(alerts))
    return Followup(alerts, rerun=("ingest", "train", "evaluate"), force=("ingest",))


def monitor_waits(params: Params) -> str | None:
    """Return why the monitor has nothing to compare yet: no champion, or an empty log."""
    from lib.core import tracking
    from lib.core.contracts import predlog
    from lib.core.errors import ModelNotFoundError

    name = tracking.model_name(params)
    if params.monitor.reference == "champion":
        tracking.setup(params)
        try:
            tracking.version_by_alias(name, tracking.CHAMPION)
        except ModelNotFoundError:
            return (
                f"no champion yet: the evaluate stage promoted no version of {name} (its report "
                "says why); nothing to monitor"
            )
    if params.monitor_current() != "log":
        return None
    folder = Layout.of(params, model=name, staged=False).predictions
    if predlog.log_files(folder):
        return None
    return (
        f"no current data yet: the prediction log {folder} is empty; serve the champion "
        "(quire serve) and run again, or set monitor.current to a CSV/Parquet file"
    )


STAGES: tuple[Stage, ...] = (
    Stage(
        "ingest",
        "01_ingest.ipynb",
        ("project", "data", "generator", "ingest"),
        reads=("data.source files, or {data}/raw/ from the generator",),
        outputs=lambda layout: (layout.processed,),
        digest=digests.ingest_outputs,
        outside=digests.ingest_inputs,
    ),
    Stage(
        "train",
        "02_train.ipynb",
        ("project", "train", "mlflow"),
        reads=("{data}/processed/{dataset}",),
        # MLflow runs and a new model version: nothing points at them until the alias moves
        aliases=("challenger",),
        digest=digests.train_outputs,
    ),
    Stage(
        "evaluate",
        "03_evaluate.ipynb",
        ("project", "evaluate", "mlflow"),
        reads=("{data}/processed/{dataset}", "{model}@challenger", "{model}@champion"),
        outputs=lambda layout: (layout.references,),
        aliases=("champion",),
        digest=digests.evaluate_outputs,
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
        outputs=lambda layout: (layout.monitoring, layout.evidently_report),
        digest=digests.monitor_outputs,
        outside=digests.monitor_inputs,
        after_run=after_monitor,
        waits=monitor_waits,
    ),
)


def output_paths(stage: Stage, params: Params) -> list[Path]:
    """Return the stage's published outputs, its report files included, as absolute paths."""
    layout = Layout.of(params, staged=False)
    return [*stage.outputs(layout), *stage.reports(layout)]


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
